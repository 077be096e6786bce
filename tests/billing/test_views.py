"""The billing screens: bills for all staff; cycle control and campaigns for admins only."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from console.models import ROLES
from console.models.billing import Campaign, Cycle
from tests.confirming import ask, confirmed_post

ADMIN_URLS = [
    ("get", "/billing/cycles"), ("post", "/billing/cycles"), ("get", "/billing/cycles/2026-11"),
    ("get", "/billing/cycles/2026-11/progress"), ("post", "/billing/cycles/2026-11/run"),
    ("post", "/billing/cycles/2026-11/retry"), ("post", "/billing/cycles/2026-11/publish"),
    ("get", "/billing/cycles/2026-11/review"),
    ("get", "/billing/campaigns"), ("get", "/billing/campaigns/new"), ("post", "/billing/campaigns"),
    ("get", "/billing/campaigns/1"), ("post", "/billing/campaigns/1"),
]


@pytest.fixture
def bill(db, billing, make_customer):
    customer = make_customer(customer_type="industrial")
    point = billing.point(customer)
    billing.read(point, "2026-10-10", "10000", peak="4000", valley="3000", demand="80")
    billing.read(point, "2026-11-10", "11000", peak="4400", valley="3250", demand="120")
    billing.entry(point, "inspection", "200.00", "2026-11-15")
    (made,) = billing.run("2026-11")
    return made


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_cycle_control_and_campaigns_refuse_other_staff(client, login_as, bill, role):
    login_as(role)
    for method, url in ADMIN_URLS:
        assert getattr(client, method)(url).status_code == 403, (method, url)


@pytest.mark.parametrize("role", ROLES)
def test_every_staff_role_sees_bills(client, login_as, bill, role):
    login_as(role)
    page = client.get(f"/billing/bills/{bill.id}?lang=en").get_data(as_text=True)
    assert bill.bill_no in page and "Large industrial electricity bill" in page
    assert "Demand charge" in page and "4,800.00" in page and "2026-12-10" in page
    assert bill.bill_no in client.get("/billing/cycles/2026-11/bills").get_data(as_text=True)
    assert bill.bill_no in client.get(f"/billing/customers/{bill.customer_id}/bills").get_data(as_text=True)
    assert "2026-11" in client.get("/billing/").get_data(as_text=True)


def test_bill_list_fragment_for_htmx_filters_by_type(client, login_as, bill):
    login_as("clerk")
    fragment = client.get("/billing/cycles/2026-11/bills?type=final", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "<html" not in text and 'id="bill-rows"' in text and bill.bill_no not in text
    assert bill.bill_no in client.get("/billing/cycles/2026-11/bills?type=regular").get_data(as_text=True)


def test_admin_opens_a_cycle_and_sees_progress(client, login_as, db, redis_conn, tariffs, make_customer):
    login_as("admin")
    bad = client.post("/billing/cycles", data={"period": "2026-13"})
    assert bad.status_code == 422
    response = client.post("/billing/cycles", data={"period": "2026-11"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/billing/cycles/2026-11")
    assert db.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "open"
    make_customer()
    run = confirmed_post(client, "/billing/cycles/2026-11/run", headers={"HX-Request": "true"})
    text = run.get_data(as_text=True)
    assert run.status_code == 200 and 'id="cycle-progress"' in text and "<html" not in text
    assert 'hx-trigger="every 2s"' in text  # polling while the chunk waits for a worker
    from rq import SimpleWorker

    from console.queues import get_queue

    queue = get_queue("billing", client.application)
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    done = client.get("/billing/cycles/2026-11/progress", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "every 2s" not in done  # polling stops when done
    assert "/billing/cycles/2026-11/review" in done  # publishing goes through the review


def test_publish_without_a_generated_cycle_is_refused(client, login_as, db, tariffs):
    login_as("admin")
    client.post("/billing/cycles", data={"period": "2026-11"})
    assert ask(client, "/billing/cycles/2026-11/publish").status_code == 422  # refused in the box already
    response = client.post("/billing/cycles/2026-11/publish", headers={"HX-Request": "true"})
    assert response.status_code == 422  # not confirmed: nothing done
    assert db.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "open"


def test_admin_manages_campaigns(client, login_as, db):
    login_as("admin")
    form = {"name": "节能", "text_zh": "节约用电", "text_en": "Save power", "customer_types": ["residential"],
            "starts_on": "2026-11-01", "ends_on": "2026-10-01", "priority": "5", "active": "1"}
    bad = client.post("/billing/campaigns", data=form)
    assert bad.status_code == 422 and "Save power" in bad.get_data(as_text=True)
    form["ends_on"] = "2026-12-31"
    assert client.post("/billing/campaigns", data=form).status_code == 302
    campaign = db.scalar(select(Campaign))
    assert (campaign.customer_types, campaign.ends_on, campaign.priority) == (["residential"], date(2026, 12, 31), 5)
    assert "节能" in client.get("/billing/campaigns").get_data(as_text=True)
    form |= {"priority": "9", "customer_types": ["residential", "commercial"]}
    assert client.post(f"/billing/campaigns/{campaign.id}", data=form).status_code == 302
    db.refresh(campaign)
    assert campaign.priority == 9 and campaign.customer_types == ["residential", "commercial"]


def test_the_pdf_medium_renders_through_xhtml2pdf_with_the_whole_bill(app, db, bill, tmp_path):
    import subprocess

    from console.billing.document import render_bill_html

    with app.test_request_context():
        html = render_bill_html(db, bill, "pdf")
    assert "<script" not in html and "http" not in html  # no external resource, no script
    try:
        from console.paper.pdf import render_pdf_bytes
    except ImportError:
        pytest.skip("the paper domain's renderer is not there yet")
    pdf = tmp_path / "bill.pdf"
    pdf.write_bytes(render_pdf_bytes(f"<html><body>{html}</body></html>"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert bill.bill_no in text and "4,800.00" in text and "2026-12-10" in text


def test_a_batch_prefetch_renders_the_same_document(app, db, bill):
    """The e-mail sender prefetches deposits and marketing messages for its batch: same HTML."""
    from datetime import date
    from decimal import Decimal

    from console.billing.document import PREFETCH_KEY, prefetch_documents, render_bill_html
    from console.models.billing import BillMessage, Campaign, Deposit

    db.add(Deposit(customer_id=bill.customer_id, amount=Decimal("3000.00"), received_on=date(2024, 3, 1)))
    campaign = Campaign(name="c", text_zh="节约用电", text_en="Save power", customer_types=["industrial"],
                        starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31), priority=1)
    db.add(campaign)
    db.flush()
    db.add(BillMessage(bill_id=bill.id, campaign_id=campaign.id, position=1, text_zh="节约用电", text_en="Save power"))
    db.commit()
    with app.test_request_context():
        one_by_one = render_bill_html(db, bill, "email")
        prefetch_documents(db, [bill])
        assert PREFETCH_KEY in db.info
        assert render_bill_html(db, bill, "email") == one_by_one
    assert "节约用电" in one_by_one and "3,000.00" in one_by_one
