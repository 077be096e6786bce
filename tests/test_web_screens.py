"""Screens every page shares: error pages in the reader's language and layout, one time zone for every time."""

from __future__ import annotations

HX = {"HX-Request": "true"}


def test_staff_404_and_403_are_branded_pages_in_chinese_then_english(client, login_as):
    login_as("phone_rep")
    missing = client.get("/customers/999999999")
    assert missing.status_code == 404
    html = missing.get_data(as_text=True)
    assert "找不到" in html and 'class="topbar"' in html and "Not Found" not in html
    refused = client.get("/admin/")
    assert refused.status_code == 403
    assert "无权" in refused.get_data(as_text=True)
    english = client.get("/customers/999999999?lang=en").get_data(as_text=True)
    assert "Not found" in english and "找不到" not in english


def test_htmx_gets_the_bare_message(client, login_as):
    login_as("clerk")
    response = client.get("/customers/999999999", headers=HX)
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "error-page" in html and "<html" not in html


def test_the_customer_web_page_has_its_own_layout_for_errors(client):
    response = client.get("/my/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "找不到" in html and 'class="topbar"' not in html and "portal" in html


def test_every_time_is_shown_in_the_display_time_zone(app):
    """Stored UTC; shown in DISPLAY_TIMEZONE (Asia/Shanghai by default) by the one filter, whatever the
    name a template uses."""
    from datetime import UTC, datetime

    from flask import render_template_string

    at = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    with app.test_request_context("/"):
        shown = render_template_string("{{ t|local_time }} {{ t|datetimeformat }}", t=at)
    assert shown == "2026-11-27 09:30 2026-11-27 09:30"
