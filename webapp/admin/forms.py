from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from expense_audit.limits import MAX_EMAIL, MAX_LOGIN, MAX_NAME, MAX_PASSWORD
from expense_audit.vocabulary import ROLES
from workflow.passwords import MIN_PASSWORD

from ..choices import choices


def _roles_field() -> SelectMultipleField:
    return SelectMultipleField(
        _l("Roles"),
        choices=choices((r, r) for r in ROLES),
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


class UserForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=MAX_LOGIN)])
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=MAX_NAME)])
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=MAX_EMAIL)])
    language = SelectField(
        _l("Language"), choices=choices([("vi", "Tiếng Việt"), ("en", "English")])
    )
    password = PasswordField(
        _l("First password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)],
    )
    roles = _roles_field()


class RolesForm(FlaskForm):
    roles = _roles_field()


class ConfirmForm(FlaskForm):
    pass


class CodeForm(FlaskForm):
    purpose = SelectField(
        _l("For"),
        choices=choices(
            [("enrollment", _l("a first key")), ("recovery", _l("a new key after a loss"))]
        ),
        default="enrollment",
    )
    send_mail = BooleanField(_l("Also send the code to the person's e-mail"))
