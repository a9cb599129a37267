from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from expense_audit.vocabulary import ROLES

from ..choices import choices


def _roles_field() -> SelectMultipleField:
    return SelectMultipleField(
        _l("Roles"),
        choices=choices((r, r) for r in ROLES),
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


class UserForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    language = SelectField(
        _l("Language"), choices=choices([("vi", "Tiếng Việt"), ("en", "English")])
    )
    password = PasswordField(
        _l("First password"), validators=[DataRequired(), Length(min=8, max=200)]
    )
    roles = _roles_field()


class RolesForm(FlaskForm):
    roles = _roles_field()


class ConfirmForm(FlaskForm):
    pass
