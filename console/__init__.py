"""Billpost: the bill-delivery console. `create_app` builds the Flask application."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from console import config as config_module
from console import outbox
from console.db import make_engine, make_session_factory


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    root = config_module.PROJECT_ROOT
    app = Flask(
        __name__,
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
        instance_path=str(config_module.instance_path()),
    )
    app.config.from_mapping(config_module.from_environment())
    if test_config:
        app.config.update(test_config)

    engine = app.config.get("ENGINE") or make_engine(app.config["DATABASE_URL"])
    app.extensions["billpost.engine"] = engine
    app.extensions["billpost.engine_pid"] = os.getpid()  # jobs dispose of the pool in a forked child
    factory = app.config.get("SESSION_FACTORY") or make_session_factory(engine)
    app.extensions["billpost.session_factory"] = factory
    outbox.install(app, factory)  # jobs recorded by services go to RQ when their transaction commits

    from console import i18n, imports, logs, web

    logs.init_app(app)  # first: every later hook's log lines carry the request id
    i18n.init_app(app)
    web.init_app(app)
    imports.register_importers()
    _register_blueprints(app)

    from console.cli import register_commands

    register_commands(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from console.billing.routes import bp as billing_bp
    from console.customers.routes import bp as customers_bp
    from console.delivery.routes import bp as delivery_bp
    from console.imports import bp as imports_bp
    from console.ops.routes import bp as ops_bp
    from console.paper.routes import bp as paper_bp
    from console.portal.routes import bp as portal_bp
    from console.staff.routes import admin_bp, auth_bp, home_bp

    for blueprint in (auth_bp, home_bp, admin_bp, imports_bp, customers_bp, billing_bp, delivery_bp, paper_bp,
                      portal_bp, ops_bp):
        app.register_blueprint(blueprint)
    from console.inboxes.routes import BLUEPRINTS as inbox_blueprints

    for blueprint in inbox_blueprints:
        app.register_blueprint(blueprint)
