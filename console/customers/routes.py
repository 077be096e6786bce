from __future__ import annotations

from flask import Blueprint, render_template

from console.models import ROLES
from console.web.auth import guard_blueprint

bp = guard_blueprint(Blueprint("customers", __name__, url_prefix="/customers"), roles=ROLES)


@bp.route("/")
def search():
    return render_template("customers/search.html")
