from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from expense_audit.limits import MAX_AMOUNT_TEXT, MAX_COMMENT, MAX_PASSWORD

from ..choices import choices

MAX_LINES_TEXT = 400


class MandateForm(FlaskForm):
    """A mandate to grant: who, which role, KT. or TUQ., from when to when, optional scope."""

    delegate = SelectField(_l("Who signs for you"), validators=[DataRequired()])
    role = SelectField(_l("Role handed over"), validators=[DataRequired()])
    kind = RadioField(
        _l("Kind"),
        choices=choices(
            [
                ("KT", _l("KT. (ký thay): a deputy signs in the principal's place")),
                ("TUQ", _l("TUQ. (thừa ủy quyền): a written mandate, cannot be passed on")),
            ]
        ),
        default="KT",
        validators=[DataRequired()],
    )
    valid_from = DateField(_l("From"), validators=[DataRequired()])
    valid_to = DateField(_l("To (inclusive)"), validators=[DataRequired()])
    lines = StringField(
        _l("Only these budget lines (optional)"),
        validators=[Optional(), Length(max=MAX_LINES_TEXT)],
    )
    max_amount = StringField(
        _l("Up to this amount (đồng, optional)"),
        validators=[Optional(), Length(max=MAX_AMOUNT_TEXT)],
    )
    comment = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=MAX_COMMENT)])
    secret = PasswordField(_l("Signing secret"), validators=[Optional(), Length(max=MAX_PASSWORD)])


class RevokeForm(FlaskForm):
    """End a mandate early."""

    comment = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=MAX_COMMENT)])
    secret = PasswordField(_l("Signing secret"), validators=[Optional(), Length(max=MAX_PASSWORD)])
