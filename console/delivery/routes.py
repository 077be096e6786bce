from __future__ import annotations

from flask import Blueprint

from console.web.auth import guard_blueprint

bp = guard_blueprint(Blueprint("delivery", __name__, url_prefix="/delivery"), roles=["admin"])
import console.delivery.quarantine_views  # noqa: E402, F401 (mail-in admin pages)
from console.delivery import views  # noqa: E402, F401 (sending side admin pages)
