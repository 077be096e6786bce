from __future__ import annotations

from flask import Blueprint

from console.delivery.status_text import status_meaning
from console.web.auth import guard_blueprint

bp = guard_blueprint(Blueprint("delivery", __name__, url_prefix="/delivery"), roles=["admin"])
bp.add_app_template_global(status_meaning, "status_meaning")  # work items in every inbox show it
import console.delivery.quarantine_views  # noqa: E402, F401 (mail-in admin pages)
from console.delivery import views  # noqa: E402, F401 (sending side admin pages)
