"""Role inboxes and the follow-up workflow: who sees what, and every action on a work item."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.inboxes import services
from console.models import AuditEvent, ContactRecord, Customer, Delivery, Recipient, WorkItem
from tests.confirming import ask, confirmed_post
from tests.inboxes.conftest import HX


def _ids_on_page(html: str) -> list[int]:
    import re

    return [int(x) for x in re.findall(r'data-item="(\d+)"', html)]


# ---- the inboxes ------------------------------------------------------------------------------------


def test_rep_inbox_lists_ordinary_customers_items_oldest_first_with_phone(sign_in, make_customer, make_item, make_user):
    manager = make_user("account_manager")
    ordinary = make_customer(phone="13912345678")
    key = make_customer(key_account=True, account_manager_id=manager.id, customer_type="commercial")
    newer = make_item(ordinary, age_minutes=10)
    older = make_item(ordinary, age_minutes=300)
    key_item = make_item(key)
    client, _rep = sign_in("phone_rep")
    page = client.get("/inbox/rep/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    ids = _ids_on_page(html)
    assert ids == [older.id, newer.id]
    assert key_item.id not in ids
    assert 'href="tel:13912345678"' in html
    assert "<html" in html  # a whole page


def test_htmx_poll_gets_the_fragment_only_and_sees_new_items(sign_in, make_customer, make_item):
    customer = make_customer()
    first = make_item(customer)
    client, _ = sign_in("phone_rep")
    fragment = client.get("/inbox/rep/", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="queue"' in fragment and 'hx-trigger="every' in fragment
    assert _ids_on_page(fragment) == [first.id]
    second = make_item(customer, age_minutes=1)
    again = client.get("/inbox/rep/", headers=HX).get_data(as_text=True)
    assert _ids_on_page(again) == [first.id, second.id]
    assert 'data-count="open">' in again and "<strong>2</strong>" in again


def test_account_manager_sees_only_own_accounts_and_gets_404_for_others(sign_in, make_customer, make_item, make_user):
    client, me = sign_in("account_manager")
    other = make_user("account_manager")
    mine = make_customer(key_account=True, account_manager_id=me.id, customer_type="industrial", collective_billing=True)
    theirs = make_customer(key_account=True, account_manager_id=other.id, customer_type="industrial")
    my_item = make_item(mine)
    their_item = make_item(theirs)
    ordinary_item = make_item(make_customer())
    html = client.get("/inbox/accounts/").get_data(as_text=True)
    assert _ids_on_page(html) == [my_item.id]
    assert mine.account_no in html and theirs.account_no not in html  # the accounts table: mine only
    assert client.get(f"/work-items/{my_item.id}").status_code == 200
    for foreign in (their_item, ordinary_item):
        assert client.get(f"/work-items/{foreign.id}").status_code == 404
        assert client.get(f"/work-items/{foreign.id}", headers=HX).status_code == 404
        assert client.post(f"/work-items/{foreign.id}/claim", headers=HX).status_code == 404
        assert ask(client, f"/work-items/{foreign.id}/close", {"reason": "x"}).status_code == 404
    assert their_item.status == "open"


def test_rep_cannot_open_account_manager_items_or_admin_pages(sign_in, make_customer, make_item, make_user):
    manager = make_user("account_manager")
    key_item = make_item(make_customer(key_account=True, account_manager_id=manager.id))
    client, _ = sign_in("phone_rep")
    assert client.get(f"/work-items/{key_item.id}").status_code == 404
    for url in ("/inbox/admin/", "/inbox/admin/jobs", "/inbox/accounts/", "/inbox/clerk/", "/admin/"):
        assert client.get(url).status_code == 403, url
        assert client.get(url, headers=HX).status_code == 403, url


def test_expired_session_on_htmx_requests_gets_hx_redirect(app, make_customer, make_item):
    item = make_item(make_customer())
    anonymous = app.test_client()
    for url in ("/inbox/rep/", "/inbox/accounts/", "/inbox/clerk/", "/inbox/admin/", f"/work-items/{item.id}"):
        response = anonymous.get(url, headers=HX)
        assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login"), url
    posted = anonymous.post(f"/work-items/{item.id}/claim", headers=HX)
    # an action sent after the session ended is refused without leaving the page (the input is kept):
    # a notice offers to send it again after signing in (console/web/expiry.py)
    assert posted.status_code == 401 and posted.headers["HX-Retarget"] == "#session-notice"
    assert "HX-Redirect" not in posted.headers


def test_each_role_lands_on_its_inbox(sign_in):
    for role, expected in [("phone_rep", "/inbox/rep/"), ("account_manager", "/inbox/accounts/"),
                           ("clerk", "/inbox/clerk/"), ("admin", "/inbox/admin/")]:
        client, _ = sign_in(role)
        landing = client.get("/")
        assert landing.status_code == 302 and landing.headers["Location"].endswith(expected), role
        assert client.get(expected).status_code == 200, role


def test_keyset_pages_walk_forward_and_back_without_gaps(db, sign_in, make_customer, make_item):
    customer = make_customer()
    items = [make_item(customer, age_minutes=1000 - i) for i in range(7)]
    viewer = services.Viewer(0, frozenset({"phone_rep"}))
    seen, cursor = [], None
    while True:
        page = services.list_items(db, viewer, services.InboxQuery("phone_rep", after=cursor, limit=3))
        seen += [r["id"] for r in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [i.id for i in items]
    back = services.list_items(db, viewer, services.InboxQuery("phone_rep", before=page.prev_cursor, limit=3))
    assert [r["id"] for r in back.rows] == [i.id for i in items[3:6]]
    newest = services.list_items(db, viewer, services.InboxQuery("phone_rep", order="newest", limit=3))
    assert [r["id"] for r in newest.rows] == [i.id for i in reversed(items)][:3]
    client, _ = sign_in("phone_rep")
    html = client.get("/inbox/rep/?order=newest&reason=email_failed").get_data(as_text=True)
    assert _ids_on_page(html)[0] == items[-1].id


def test_clerk_sees_bills_with_no_usable_recipient(sign_in, make_customer, make_item, db):
    nowhere = make_customer(email=None, channel_email=True, channel_portal=False)
    fine = make_customer()
    make_item(nowhere, address="x@nowhere.test")
    make_item(fine)
    client, _ = sign_in("clerk")
    html = client.get("/inbox/clerk/").get_data(as_text=True)
    assert nowhere.account_no in html and fine.account_no not in html
    assert 'data-count="unusable">1<' in html


def test_the_clerks_list_is_the_reviews_no_working_channel(app, sign_in, make_customer, make_item, db):
    """One rule for "reaches nobody" (console/billing/review.py): the web page counts as a channel, and
    paper only where it is allowed (key accounts only, by default)."""
    from console.billing import review

    no_address = make_customer(email=None, channel_email=True, channel_portal=False)
    on_the_web = make_customer(email=None, channel_email=True, channel_portal=True)
    paper_not_allowed = make_customer(channel_email=False, channel_portal=False, channel_paper=True)
    nothing = make_customer(wants_ebill=False, channel_email=False, channel_portal=False)
    for customer in (no_address, on_the_web, paper_not_allowed, nothing):
        make_item(customer, address="x@nowhere.test")
    client, _ = sign_in("clerk")
    html = client.get("/inbox/clerk/").get_data(as_text=True)
    cycle_id = _cycle_id(db)
    listed = review.no_working_channel(db, cycle_id, review.ReviewSettings.of(app.config))
    assert {b.account_no for b in listed.bills} == {no_address.account_no, paper_not_allowed.account_no,
                                                   nothing.account_no}
    for b in listed.bills:
        assert b.account_no in html and f'data-detail="{b.detail}"' in html
    assert on_the_web.account_no not in html
    assert f'data-count="unusable">{listed.count}<' in html
    assert "需要电子邮件，但未登记邮箱地址" in html and "未选择任何渠道" in html and "纸质账单仅限大客户" in html
    english = client.get("/inbox/clerk/?lang=en").get_data(as_text=True)
    assert "E-mail wanted, but no address on file" in english and "No channel chosen" in english
    assert "Paper wanted, but paper is for key accounts only" in english


def test_admin_dashboard_shows_the_cycle_funnel(sign_in, make_customer, make_item, db, redis_conn):
    item = make_item(make_customer())
    client, _ = sign_in("admin")
    html = client.get("/inbox/admin/").get_data(as_text=True)
    assert "2026-10" in html
    assert 'data-step="escalated"' in html and 'data-step="resent"' in html
    from console.inboxes.dashboard import funnel

    assert item.id
    counts = funnel(db, _cycle_id(db))
    assert counts["generated"] == 1 and counts["escalated"] == 1 and counts["resent"] == 1
    assert client.get("/inbox/admin/jobs", headers=HX).status_code == 200


def _cycle_id(db) -> int:  # noqa: ANN001
    from console.models import Cycle

    return db.scalar(select(Cycle.id).where(Cycle.period == "2026-10"))


# ---- the work item and its actions ----------------------------------------------------------------


def test_item_page_shows_customer_bill_attempts_and_contacts(sign_in, make_customer, make_item, db):
    customer = make_customer(id_number="320502199001011234")
    item = make_item(customer)
    client, _ = sign_in("phone_rep")
    html = client.get(f"/work-items/{item.id}").get_data(as_text=True)
    assert customer.name in html and customer.phone in html
    assert "Recipient address rejected" in html and "5.1.1" in html
    assert "320502********1234" in html and "320502199001011234" not in html
    fragment = client.get(f"/work-items/{item.id}", headers=HX).get_data(as_text=True)
    assert 'id="item"' in fragment and "<html" not in fragment


def test_claim_race_exactly_one_wins(db, make_customer, make_item, make_user):
    item = make_item(make_customer())
    first, second = make_user("phone_rep"), make_user("phone_rep")
    services.claim(db, services.Viewer.of(first), item.id, Actor.of_user(first))
    db.commit()
    with pytest.raises(services.ItemTaken):
        services.claim(db, services.Viewer.of(second), item.id, Actor.of_user(second))
    db.rollback()
    assert db.get(WorkItem, item.id).claimed_by_id == first.id


def test_claim_race_over_http_two_clients_one_winner(sign_in, make_customer, make_item, db):
    item = make_item(make_customer())
    (a, _), (b, _) = sign_in("phone_rep"), sign_in("phone_rep")
    results = [a.post(f"/work-items/{item.id}/claim", headers=HX).status_code,
               b.post(f"/work-items/{item.id}/claim", headers=HX).status_code]
    assert sorted(results) == [200, 422]
    claims = db.scalars(select(AuditEvent).where(AuditEvent.action == "work_item.claim",
                                                 AuditEvent.entity_id == str(item.id))).all()
    assert len(claims) == 1


def test_claim_race_with_threads_on_committed_data(committed_app):
    """Two sessions (two connections) race on the conditional UPDATE; exactly one wins."""
    from console.staff.services import create_user
    from tests.inboxes.conftest import build_item

    factory = committed_app.extensions["billpost.session_factory"]
    with factory() as session:
        users = [create_user(session, f"racer{i}", "correct horse battery", ["phone_rep"], Actor.system())
                 for i in range(2)]
        customer = Customer(account_no="RACE0001", name="竞争客户", customer_type="residential",
                            email="race@customers.test", phone="13800000000")
        session.add(customer)
        session.commit()
        item = build_item(session, customer)
        ids = [(u.id, u.username) for u in users]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker(user_id: int, username: str) -> None:
        with factory() as session:
            viewer = services.Viewer(user_id, frozenset({"phone_rep"}))
            barrier.wait()
            try:
                services.claim(session, viewer, item.id, Actor(username, user_id))
                session.commit()
                outcomes.append("won")
            except services.ItemTaken:
                session.rollback()
                outcomes.append("lost")

    threads = [threading.Thread(target=worker, args=pair) for pair in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["lost", "won"]


def test_call_outcome_writes_a_contact_record_and_audit(sign_in, make_customer, make_item, db):
    customer = make_customer()
    item = make_item(customer)
    client, rep = sign_in("phone_rep")
    bad = client.post(f"/work-items/{item.id}/call", data={"outcome": "shouted"}, headers=HX)
    assert bad.status_code == 422
    response = client.post(f"/work-items/{item.id}/call", data={"outcome": "no_answer", "note": "rang twice"},
                           headers=HX)
    assert response.status_code == 200 and response.headers.get("HX-Trigger") == "inbox-changed"
    record = db.scalar(select(ContactRecord).where(ContactRecord.customer_id == customer.id))
    assert record.channel == "phone" and record.actor_id == rep.id and record.bill_id == item.bill_id
    assert record.code == "call" and record.params == {"outcome": "no_answer"} and record.note == "rang twice"
    assert "rang twice" in response.get_data(as_text=True)  # the contact history shows it
    db.expire_all()
    assert db.get(WorkItem, item.id).status == "claimed"  # acting claims the item
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == str(item.id),
                                                         AuditEvent.entity_type == "work_item")).all()
    assert "work_item.call" in actions


def test_correcting_the_address_closes_the_item_and_queues_a_new_delivery(
    app, sign_in, make_customer, make_item, db, redis_conn
):
    customer = make_customer(email="wrong@customers.test")
    item = make_item(customer)
    client, _ = sign_in("phone_rep")
    invalid = ask(client, f"/work-items/{item.id}/email", {"email": "not an address"})
    assert invalid.status_code == 422
    response = confirmed_post(client, f"/work-items/{item.id}/email", {"email": "Right@Customers.test"}, headers=HX)
    assert response.status_code == 200, response.get_data(as_text=True)
    db.expire_all()
    closed = db.get(WorkItem, item.id)
    assert closed.status == "closed" and closed.close_reason == "address_corrected"
    assert db.get(Customer, customer.id).email == "Right@customers.test"
    old = db.get(Delivery, item.delivery_id)
    assert old.status == "cancelled"
    new = db.scalar(select(Delivery).where(Delivery.bill_id == item.bill_id, Delivery.id != old.id))
    assert new.address == "Right@customers.test" and new.channel == "email"
    assert new.status == "queued" and new.attempts_made == 0
    # The send is handed to the delivery domain's queue at once (after the commit).
    from console.queues import get_queue

    queue = get_queue("delivery", app)
    assert any(new.id in job.args[0] for job in queue.get_jobs()), "no send job queued"
    audited = set(db.scalars(select(AuditEvent.action)).all())
    assert {"customer.email", "delivery.cancel", "delivery.resend", "work_item.close"} <= audited


def test_correcting_a_recipients_address(sign_in, make_customer, make_item, db, redis_conn):
    customer = make_customer(recipients=[{"name": "房东", "relation": "landlord", "channel": "email",
                                          "address": "landlord@old.test"}])
    recipient = db.scalar(select(Recipient).where(Recipient.customer_id == customer.id))
    item = make_item(customer, recipient=recipient)
    client, _ = sign_in("phone_rep")
    assert confirmed_post(client, f"/work-items/{item.id}/email", {"email": "landlord@new.test"}).status_code == 303
    db.expire_all()
    assert db.get(Recipient, recipient.id).address == "landlord@new.test"
    assert db.get(Customer, customer.id).email == customer.email  # the holder's address is untouched
    new = db.scalar(select(Delivery).where(Delivery.bill_id == item.bill_id, Delivery.status == "queued"))
    assert new.recipient_id == recipient.id and new.address == "landlord@new.test"


def test_switch_to_paper_refused_for_ordinary_customer_allowed_for_key_account(
    sign_in, make_customer, make_item, db
):
    ordinary_item = make_item(make_customer())
    client, _ = sign_in("phone_rep")
    refused = ask(client, f"/work-items/{ordinary_item.id}/paper")
    assert refused.status_code == 422
    db.expire_all()
    assert db.get(WorkItem, ordinary_item.id).status != "closed"
    assert db.get(Customer, ordinary_item.customer_id).channel_paper is False

    manager_client, manager = sign_in("account_manager")
    key = make_customer(key_account=True, account_manager_id=manager.id, customer_type="commercial")
    key_item = make_item(key)
    allowed = confirmed_post(manager_client, f"/work-items/{key_item.id}/paper", headers=HX)
    assert allowed.status_code == 200
    db.expire_all()
    assert db.get(Customer, key.id).channel_paper is True and db.get(Customer, key.id).channel_email is False
    assert db.get(WorkItem, key_item.id).close_reason == "switched_to_paper"
    paper = db.scalar(select(Delivery).where(Delivery.bill_id == key_item.bill_id, Delivery.channel == "paper"))
    assert paper is not None and paper.status == "queued"


def test_reassign_and_close_are_audited(sign_in, make_customer, make_item, make_user, db):
    item = make_item(make_customer())
    other_rep = make_user("phone_rep")
    client, _ = sign_in("phone_rep")
    assert client.post(f"/work-items/{item.id}/reassign", data={"target": "user:999999"}, headers=HX).status_code == 422
    response = client.post(f"/work-items/{item.id}/reassign", data={"target": f"user:{other_rep.id}"}, headers=HX)
    assert response.status_code == 200
    db.expire_all()
    moved = db.get(WorkItem, item.id)
    assert moved.assigned_user_id == other_rep.id and moved.status == "open"
    assert ask(client, f"/work-items/{item.id}/close", {"reason": ""}).status_code == 422
    assert confirmed_post(client, f"/work-items/{item.id}/close", {"reason": "customer paid at the counter"},
                          headers=HX).status_code == 200
    db.expire_all()
    done = db.get(WorkItem, item.id)
    assert done.status == "closed" and done.close_reason == "customer paid at the counter" and done.closed_at
    events = db.scalars(select(AuditEvent).where(AuditEvent.entity_type == "work_item",
                                                 AuditEvent.entity_id == str(item.id))
                        .order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["work_item.reassign", "work_item.claim", "work_item.close"]
    assert events[0].after["assigned_user_id"] == other_rep.id
    # closed: no more actions
    assert client.post(f"/work-items/{item.id}/call", data={"outcome": "reached"}, headers=HX).status_code == 422


def test_someone_elses_claim_blocks_actions(sign_in, make_customer, make_item, db):
    item = make_item(make_customer())
    first, _ = sign_in("phone_rep")
    second, _ = sign_in("phone_rep")
    assert first.post(f"/work-items/{item.id}/claim").status_code == 303
    blocked = second.post(f"/work-items/{item.id}/call", data={"outcome": "reached"}, headers=HX)
    assert blocked.status_code == 422 and "其他人正在处理此事项" in blocked.get_data(as_text=True)
    assert db.scalar(select(ContactRecord.id)) is None


def test_account_manager_can_hand_an_item_to_the_rep_queue(sign_in, make_customer, make_item, db):
    client, manager = sign_in("account_manager")
    key = make_customer(key_account=True, account_manager_id=manager.id)
    item = make_item(key)
    handed = client.post(f"/work-items/{item.id}/reassign", data={"target": "phone_rep"}, headers=HX)
    assert handed.status_code == 204 and handed.headers["HX-Redirect"] == "/"  # gone from my queue: back to it
    rep_client, _ = sign_in("phone_rep")
    assert rep_client.get(f"/work-items/{item.id}").status_code == 200
    assert client.get(f"/work-items/{item.id}").status_code == 404  # no longer in the manager's queue


@pytest.mark.parametrize("lang,text", [("zh", "工单"), ("en", "Work items")])
def test_inbox_in_both_languages(sign_in, make_customer, make_item, lang, text):
    make_item(make_customer())
    client, _ = sign_in("phone_rep", language=lang)
    html = client.get("/inbox/rep/").get_data(as_text=True)
    assert text in html


def test_clerk_sees_print_batches_ready_and_dispatches_waiting(sign_in, make_customer, make_item, db):
    from console.models import Cycle
    from console.models.paper import PrintBatch

    make_item(make_customer())  # makes the 2026-10 cycle
    cycle = db.scalar(select(Cycle).where(Cycle.period == "2026-10"))
    db.add(PrintBatch(cycle_id=cycle.id, batch_no=7, status="ready", bills_count=12, copies_count=13))
    db.commit()
    client, _ = sign_in("clerk")
    html = client.get("/inbox/clerk/", headers=HX).get_data(as_text=True)
    assert 'id="clerk"' in html and "<html" not in html
    assert 'data-count="ready">1<' in html and "#7" in html
