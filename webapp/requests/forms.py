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
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from expense_audit.guards import check_tax_code
from expense_audit.limits import (
    MAX_AMOUNT_TEXT,
    MAX_BANK,
    MAX_BANK_ACCOUNT,
    MAX_COMMENT,
    MAX_DESCRIPTION,
    MAX_INVOICE_NUMBER,
    MAX_INVOICE_SERIES,
    MAX_PASSWORD,
    MAX_PAYEE,
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
    # The accountant's paperwork (issue 13): who is paid, and the invoice if already known.
    payee = StringField(_l("Payee"), validators=[Optional(), Length(max=MAX_PAYEE)])
    payee_kind = SelectField(
        _l("The payee is"),
        choices=[
            SelectChoice("", "—"),
            SelectChoice("organisation", _l("an organisation")),
            SelectChoice("person", _l("a person")),
        ],
        validators=[Optional()],
    )
    tax_code = StringField(_l("Tax code"), validators=[Optional(), Length(max=14)])
    bank_account = StringField(
        _l("Bank account"), validators=[Optional(), Length(max=MAX_BANK_ACCOUNT)]
    )
    bank = StringField(_l("Bank"), validators=[Optional(), Length(max=MAX_BANK)])
    invoice_number = StringField(
        _l("Invoice number"), validators=[Optional(), Length(max=MAX_INVOICE_NUMBER)]
    )
    invoice_series = StringField(
        _l("Invoice series"), validators=[Optional(), Length(max=MAX_INVOICE_SERIES)]
    )
    invoice_date = DateField(_l("Invoice date"), validators=[Optional()])

    def validate_tax_code(self, field: StringField) -> None:
        """10 digits, or 13 written 0123456789-001, with a correct check digit; a person's
        12-digit personal identification number."""
        person = self.payee_kind.data == "person"
        if field.data and not check_tax_code(field.data.strip(), person=person):
            raise ValidationError(
                _l(
                    "Not a valid tax code: 10 digits (or 13, written 0123456789-001); "
                    "for a person, the 12-digit personal identification number."
                )
            )


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
    # The invoice, when it was not known at proposal.
    invoice_number = StringField(
        _l("Invoice number"), validators=[Optional(), Length(max=MAX_INVOICE_NUMBER)]
    )
    invoice_series = StringField(
        _l("Invoice series"), validators=[Optional(), Length(max=MAX_INVOICE_SERIES)]
    )
    invoice_date = DateField(_l("Invoice date"), validators=[Optional()])


class RemoveAttachmentForm(FlaskForm):
    sha256 = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])
