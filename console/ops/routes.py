"""`/healthz` for the load balancer and `/metrics` for Prometheus: no sign-in, no session, no CSRF.

/healthz answers 200 or 503 with the four checks' names and results (no detail that helps an
attacker). /metrics answers only clients in METRICS_ALLOWED_NETWORKS or with METRICS_TOKEN."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request

from console.extensions import csrf, db
from console.ops import health, metrics

bp = Blueprint("ops", __name__)
csrf.exempt(bp)


@bp.route("/healthz")
def healthz():
    checks = health.health(current_app._get_current_object())
    ok = all(check.ok for check in checks)
    body = {"status": "ok" if ok else "fail", "checks": {check.name: check.ok for check in checks}}
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/metrics")
def metrics_page():
    config = current_app.config
    if not metrics.allowed(
        request.remote_addr, request.headers.get("Authorization", ""),
        config["METRICS_ALLOWED_NETWORKS"], config["METRICS_TOKEN"],
    ):
        abort(403)
    return Response(metrics.render(current_app._get_current_object(), db()), content_type=metrics.CONTENT_TYPE)
