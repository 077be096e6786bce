"""deploy/ as shipped: the systemd units verify, the Postfix snippet is what the loopback Postfix
runs, and docs/deploy.md describes every file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.devtools.loopback_postfix import (
    DEPLOY_POSTFIX,
    LoopbackPostfix,
    deploy_snippet,
    main_cf_settings,
)

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("billpost-web.service", "billpost-mailin.service", "billpost-worker@.service", "billpost.target")


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("BILLPOST_REQUIRE_ALL") == "1":
            pytest.fail("systemd-analyze missing (scripts/install --test installs systemd)")
        pytest.skip("systemd-analyze not installed")
    return found


def _units_here(folder: Path) -> list[str]:
    """The units with /opt/billpost pointed at this checkout (whose .venv has the commands)."""
    names = []
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/billpost", str(ROOT))
        target = folder / (name.replace("@.", "@1.") if "@." in name else name)
        target.write_text(text)
        names.append(str(target))
    return names


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = _systemd_analyze()
    result = subprocess.run([analyze, "verify", "--man=no", *_units_here(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    analyze = _systemd_analyze()
    units = _units_here(tmp_path)
    broken = Path(units[0])
    broken.write_text(broken.read_text().replace(".venv/bin/gunicorn", ".venv/bin/no-such-gunicorn"))
    assert subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True).returncode != 0


def test_every_unit_restarts_and_the_worker_is_a_template():
    for name in UNITS[:3]:
        text = (DEPLOY / "systemd" / name).read_text()
        assert "Restart=always" in text and "EnvironmentFile=/etc/billpost/billpost.env" in text, name
    assert "%i" in (DEPLOY / "systemd" / "billpost-worker@.service").read_text()


def test_the_loopback_postfix_runs_the_documented_snippet(tmp_path):
    """Every setting of deploy/postfix/main.cf is in the loopback's main.cf with the same value (the
    two lists the tests extend start with the snippet's), and the transport map is the snippet's."""
    postfix = LoopbackPostfix(tmp_path, "bounces.bills.test", receiver_port=2599, sink_port=2598, smtp_port=2597)
    values = postfix._placeholders()
    snippet = main_cf_settings(deploy_snippet("main.cf", values))
    loopback = main_cf_settings(postfix._main_cf())
    for key, value in snippet.items():
        assert loopback[key] == value or loopback[key].startswith(value + ", "), key
    assert "smtpd_discard_ehlo_keywords" in snippet and snippet["smtpd_discard_ehlo_keywords"] == ""
    assert deploy_snippet("billpost_transport", values).splitlines()[-1] == "bounces.bills.test\tsmtp:[127.0.0.1]:2599"


def test_an_unfilled_placeholder_is_refused():
    with pytest.raises(ValueError, match="placeholder"):
        deploy_snippet("main.cf", {"BOUNCE_DOMAIN": "b.test"})


def test_docs_deploy_names_every_shipped_file_and_setting():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            assert str(path.relative_to(ROOT)) in doc, path
    for name in ("SESSION_COOKIE_SECURE", "TRUSTED_PROXIES", "METRICS_ALLOWED_NETWORKS", "METRICS_TOKEN",
                 "RETAIN_INBOUND_DAYS", "RETAIN_SANDBOX_DAYS", "RETAIN_PDF_YEARS", "console doctor", "pg_dump"):
        assert name in doc, name
    assert (DEPLOY_POSTFIX / "main.cf").exists()


def test_the_grafana_dashboard_asks_only_for_metrics_we_export():
    import json
    import re

    dashboard = json.loads((DEPLOY / "grafana" / "billpost-dashboard.json").read_text())
    source = (ROOT / "console" / "ops" / "metrics.py").read_text()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"billpost_[a-z_]+", target["expr"]):
                assert f'"{name.removesuffix("_total")}"' in source, name
