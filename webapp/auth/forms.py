from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ..choices import choices


class LoginForm(FlaskForm):
    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class LanguageForm(FlaskForm):
    language = SelectField(choices=choices([("vi", "Tiếng Việt"), ("en", "English")]))


class SigningSecretForm(FlaskForm):
    secret = PasswordField(
        _l("New signing secret"), validators=[DataRequired(), Length(min=6, max=200)]
    )
    confirm = PasswordField(
        _l("Repeat the signing secret"),
        validators=[DataRequired(), EqualTo("secret", message=_l("The two entries differ."))],
    )
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("new", message=_l("The two entries differ."))],
    )
