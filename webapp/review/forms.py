from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from expense_audit.limits import MAX_COMMENT, MAX_PASSWORD


class BulkApproveForm(FlaskForm):
    numbers = SelectMultipleField(
        _l("Requests"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[DataRequired()],
    )
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=MAX_COMMENT)])
    secret = PasswordField(
        _l("Signing secret"), validators=[DataRequired(), Length(max=MAX_PASSWORD)]
    )
