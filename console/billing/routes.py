from __future__ import annotations

from flask import Blueprint

from console.models import ROLES
from console.web.auth import guard_blueprint

bp = guard_blueprint(Blueprint("billing", __name__, url_prefix="/billing"), roles=ROLES)
