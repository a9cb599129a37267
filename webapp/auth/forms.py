from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from expense_audit.limits import MAX_LOGIN, MAX_PASSWORD
from workflow.keys import MIN_SECRET_LENGTH
from workflow.passwords import MIN_PASSWORD

from ..choices import choices


class LoginForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=MAX_LOGIN)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)])


class LanguageForm(FlaskForm):
    language = SelectField(choices=choices([("vi", "Tiếng Việt"), ("en", "English")]))


class SigningSecretForm(FlaskForm):
    secret = PasswordField(
        _l("New signing secret"),
        validators=[DataRequired(), Length(min=MIN_SECRET_LENGTH, max=MAX_PASSWORD)],
    )
    confirm = PasswordField(
        _l("Repeat the signing secret"),
        validators=[DataRequired(), EqualTo("secret", message=_l("The two entries differ."))],
    )
    password = PasswordField(
        _l("Your password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)]
    )
    code = StringField(_l("One-time code from the admin"), validators=[Optional(), Length(max=40)])
    old_secret = PasswordField(
        _l("Your current signing secret"), validators=[Optional(), Length(max=MAX_PASSWORD)]
    )


class PasswordForm(FlaskForm):
    current = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)]
    )
    new = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)],
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("new", message=_l("The two entries differ."))],
    )


class PasskeyForm(FlaskForm):
    """The fields of a passkey registration (the page's script posts them as JSON)."""

    password = PasswordField(
        _l("Your password"), validators=[DataRequired(), Length(max=MAX_PASSWORD)]
    )
    code = StringField(_l("One-time code from the admin"), validators=[Optional(), Length(max=40)])
    old_secret = PasswordField(
        _l("Your current signing secret"), validators=[Optional(), Length(max=MAX_PASSWORD)]
    )
