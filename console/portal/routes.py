"""The customers' own pages: public, with their own sign-in (not guarded by staff roles)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/my")
