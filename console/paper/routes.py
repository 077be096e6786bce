from __future__ import annotations

from flask import Blueprint

from console.web.auth import guard_blueprint

bp = guard_blueprint(Blueprint("paper", __name__, url_prefix="/paper"), roles=["clerk", "admin"])
