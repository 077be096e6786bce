from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l

from console.models import ROLES
from console.web.auth import guard_blueprint
from console.web.nav import add_nav_link

bp = guard_blueprint(Blueprint("customers", __name__, url_prefix="/customers"), roles=ROLES)
add_nav_link("customers.search", _l("Customers"), ROLES, order=10)


@bp.route("/")
def search():
    return render_template("customers/search.html")
