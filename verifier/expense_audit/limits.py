"""Sizes of what people type: the engine, the verifier and the web forms use these numbers."""

from __future__ import annotations

MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_COMMENT = 2000
MAX_QUANTITY = 100_000
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # one photo or PDF of a quote
MAX_CODE = 32  # budget line and funding source codes
MAX_VOUCHER = 40
MAX_AMOUNT_TEXT = 40  # an amount as typed ("1.800.000 đồng"); parse_amount reads at most 32 of it
MAX_LOGIN = 64
MAX_NAME = 200
MAX_EMAIL = 254
MAX_PASSWORD = 200
# The accountant's paperwork (issue 13)
MAX_PAYEE = 200
MAX_BANK_ACCOUNT = 30  # Vietnamese bank account numbers are 6 to 19 digits; some carry letters
MAX_BANK = 120
MAX_INVOICE_NUMBER = 20  # e-invoices (Nghị định 123/2020) number up to 8 digits
MAX_INVOICE_SERIES = 12  # e.g. 1C24TAA
