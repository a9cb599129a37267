"""`python -m expense_audit.verify` runs audit-verify."""

import sys

from .cli import main

sys.exit(main())
