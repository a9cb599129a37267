from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from expense_audit.limits import (
    MAX_AMOUNT_TEXT,
    MAX_COMMENT,
    MAX_DESCRIPTION,
    MAX_PASSWORD,
    MAX_QUANTITY,
    MAX_TITLE,
    MAX_VOUCHER,
)


class RequestForm(FlaskForm):
    title = StringField(_l("What is it for?"), validators=[DataRequired(), Length(max=MAX_TITLE)])
    line = SelectField(_l("Budget line"), validators=[DataRequired()])
    quantity = IntegerField(
        _l("Quantity"), validators=[Optional(), NumberRange(min=1, max=MAX_QUANTITY)]
    )
    unit_price = StringField(
        _l("Unit price (đồng)"), validators=[Optional(), Length(max=MAX_AMOUNT_TEXT)]
    )
    amount = StringField(_l("Amount (đồng)"), validators=[Optional(), Length(max=MAX_AMOUNT_TEXT)])
    source = SelectField(_l("Funding source"), validators=[DataRequired()])
    budget_year = SelectField(_l("Budget year"), coerce=int)
    description = TextAreaField(_l("Details"), validators=[Optional(), Length(max=MAX_DESCRIPTION)])
    attachments = MultipleFileField(_l("Quotes and photos"))


class ActionForm(FlaskForm):
    trigger = HiddenField(validators=[DataRequired(), Length(max=30)])
    expected_seq = HiddenField()
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=MAX_COMMENT)])
    secret = PasswordField(
        _l("Signing secret"), validators=[DataRequired(), Length(max=MAX_PASSWORD)]
    )


class PayForm(ActionForm):
    voucher = StringField(
        _l("Voucher number"), validators=[DataRequired(), Length(max=MAX_VOUCHER)]
    )
    paid_on = DateField(_l("Payment date"), validators=[DataRequired()])
    amount_paid = StringField(
        _l("Amount paid (đồng)"), validators=[DataRequired(), Length(max=MAX_AMOUNT_TEXT)]
    )


class RemoveAttachmentForm(FlaskForm):
    sha256 = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])
