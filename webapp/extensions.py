"""Flask extensions, created once and bound in create_app.

NOTE: no flask-limiter: its storage is per process (memory://) or a server this deployment does
not run; limits that must hold across workers and app nodes are kept in the database
(workflow.signin).
"""

from __future__ import annotations

from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf import CSRFProtect

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
