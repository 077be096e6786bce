"""The in-page confirmation of irreversible actions (console/web/confirm.py), on one real action — a
bill recipient deactivated: the box asked for, a POST without it, with a token of another action or
user, an expired one, the same token twice (also two at once, on real commits) and a refused action
whose token stays good. The actions' own figures are tested in their domains' test_confirm.py."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from console.models import AuditEvent, Recipient
from console.models.staff import UsedConfirmation
from tests.confirming import HX, ask, confirmed_post, token_of
from tests.conftest import PASSWORD


def _customer_with_recipients(make_customer):  # noqa: ANN001, ANN202
    return make_customer(recipients=[
        {"name": "李娜", "relation": "proxy", "channel": "email", "address": "lina@qq.com"},
        {"name": "王强", "relation": "tenant", "channel": "email", "address": "wq@163.com"},
    ])


def _recipients(db, customer):  # noqa: ANN001, ANN202
    db.expire_all()
    return db.scalars(select(Recipient).where(Recipient.customer_id == customer.id).order_by(Recipient.id)).all()


def _audits(db, customer) -> int:  # noqa: ANN001
    return db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity_type == "customer",
                                                            AuditEvent.entity_id == str(customer.id)))


def _url(customer, recipient) -> str:  # noqa: ANN001
    return f"/customers/{customer.id}/recipients/{recipient.id}/active"


def test_the_first_click_asks_in_the_page_and_the_box_is_a_fragment_or_a_page(client, login_as, make_customer, db):
    login_as("clerk")
    customer = _customer_with_recipients(make_customer)
    first, _second = _recipients(db, customer)
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    opener = f'hx-get="{_url(customer, first)}/confirm"'
    assert opener in page and 'hx-target="next [data-confirm-slot]"' in page and "data-confirm-slot" in page

    box = ask(client, _url(customer, first), {"active": "0"})
    html = box.get_data(as_text=True)
    assert box.status_code == 200 and "<html" not in html and 'role="alertdialog"' in html
    assert "李娜" in html and "lina@qq.com" in html and customer.name in html  # who, where, whose
    assert 'class="danger"' in html and "确认停用" in html and "取消" in html
    assert f'hx-post="{_url(customer, first)}"' in html and 'hx-target="#recipients"' in html
    # without JavaScript: a page of its own, whose form posts plainly and whose cancel goes back
    plain = client.get(f"{_url(customer, first)}/confirm?active=0").get_data(as_text=True)
    assert "<html" in plain and "hx-post" not in plain.split('role="alertdialog"', 1)[1]
    assert f'href="/customers/{customer.id}" data-confirm-cancel' in plain
    assert all(r.active for r in _recipients(db, customer))  # asking changed nothing


def test_a_post_without_a_valid_token_does_nothing(app, client, login_as, make_customer, make_user, db):
    login_as("clerk")
    customer = _customer_with_recipients(make_customer)
    first, second = _recipients(db, customer)
    before = _audits(db, customer)

    bare = client.post(_url(customer, first), data={"active": "0"}, headers=HX)
    assert bare.status_code == 422 and bare.headers["HX-Retarget"] == "#session-notice"
    assert 'data-confirm-notice="unconfirmed"' in bare.get_data(as_text=True)
    plain = client.post(_url(customer, first), data={"active": "0"})  # a plain form is asked first
    assert plain.status_code == 303 and plain.headers["Location"].endswith(f"{_url(customer, first)}/confirm?active=0")

    other_action = token_of(ask(client, _url(customer, second), {"active": "0"}).get_data(as_text=True))
    assert client.post(_url(customer, first), data={"active": "0", "confirm_token": other_action},
                       headers=HX).status_code == 422
    forged = other_action[:-3] + ("AAA" if not other_action.endswith("AAA") else "BBB")
    assert client.post(_url(customer, second), data={"active": "0", "confirm_token": forged},
                       headers=HX).status_code == 422

    other_user = make_user("clerk")
    theirs = app.test_client()
    theirs.post("/login", data={"username": other_user.username, "password": PASSWORD})
    not_mine = token_of(ask(theirs, _url(customer, first), {"active": "0"}).get_data(as_text=True))
    assert client.post(_url(customer, first), data={"active": "0", "confirm_token": not_mine},
                       headers=HX).status_code == 422

    assert all(r.active for r in _recipients(db, customer)) and _audits(db, customer) == before
    assert db.scalar(select(func.count()).select_from(UsedConfirmation)) == 0


@pytest.mark.parametrize("app", [{"CONFIRM_TOKEN_MINUTES": 0}], indirect=True)
def test_an_expired_confirmation_does_nothing(client, login_as, make_customer, db):
    login_as("clerk")
    customer = _customer_with_recipients(make_customer)
    first, _second = _recipients(db, customer)
    token = token_of(ask(client, _url(customer, first), {"active": "0"}).get_data(as_text=True))
    time.sleep(1.1)
    late = client.post(_url(customer, first), data={"active": "0", "confirm_token": token}, headers=HX)
    assert late.status_code == 422 and "过期" in late.get_data(as_text=True)
    assert all(r.active for r in _recipients(db, customer))


def test_the_same_confirmation_twice_is_done_once_and_told_already_done(client, login_as, make_customer, db):
    login_as("clerk")
    customer = _customer_with_recipients(make_customer)
    first, second = _recipients(db, customer)
    token = token_of(ask(client, _url(customer, first), {"active": "0"}).get_data(as_text=True))
    done = client.post(_url(customer, first), data={"active": "0", "confirm_token": token}, headers=HX)
    assert done.status_code == 200 and 'id="recipients"' in done.get_data(as_text=True)
    assert [r.active for r in _recipients(db, customer)] == [False, True]
    audits = _audits(db, customer)

    again = client.post(_url(customer, first), data={"active": "0", "confirm_token": token}, headers=HX)
    html = again.get_data(as_text=True)
    assert again.status_code == 200 and again.headers["HX-Retarget"] == "#session-notice"
    assert 'data-confirm-notice="done"' in html and "已处理" in html and "<html" not in html
    plain = client.post(_url(customer, first), data={"active": "0", "confirm_token": token,
                                                     "confirm_back": f"/customers/{customer.id}"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith(f"/customers/{customer.id}")
    assert "已处理" in client.get(f"/customers/{customer.id}").get_data(as_text=True)  # the flashed notice
    assert _audits(db, customer) == audits  # nothing recorded twice
    # a fresh confirmation of what the state already shows: nothing to do, told so as well
    assert ask(client, _url(customer, first), {"active": "0"}).status_code == 422  # not even offered
    stale = confirmed_post(client, _url(customer, second), {"active": "0"}, headers=HX)
    assert stale.status_code == 200
    assert [r.active for r in _recipients(db, customer)] == [False, False]


def test_a_refused_action_keeps_its_confirmation_good(client, login_as, make_user, db):
    login_as("admin")
    clerk = make_user("clerk")
    url = f"/admin/users/{clerk.id}/password"
    token = token_of(ask(client, url).get_data(as_text=True))
    weak = client.post(url, data={"password": "123", "confirm_token": token}, follow_redirects=True)
    assert "error" in weak.get_data(as_text=True)  # refused, rolled back: the token was not spent
    assert client.post(url, data={"password": "violet kettle meadow 42", "confirm_token": token}).status_code == 303
    assert db.scalar(select(func.count()).select_from(UsedConfirmation)) == 1
    assert "user.password_reset" in db.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_type == "user", AuditEvent.entity_id == str(clerk.id))).all()


def test_two_identical_submissions_at_once_do_it_once(committed_app):
    """Real commits, two clients at the same moment with one token: the primary key of the nonce lets
    one through; the other waits for its commit and is told "already done"."""
    from console.audit import Actor
    from console.models import Customer
    from console.staff.services import create_user

    app = committed_app
    factory = app.extensions["billpost.session_factory"]
    with factory() as session:
        user = create_user(session, "twin_clerk", PASSWORD, ["clerk"], Actor.system())
        customer = Customer(account_no="T990000001", name="并发客户", customer_type="residential", wants_ebill=True,
                            channel_portal=True, channel_email=True, channel_paper=False)
        session.add(customer)
        session.flush()
        recipient = Recipient(customer_id=customer.id, name="李娜", relation="proxy", channel="email",
                              address="twin@qq.com")
        session.add(recipient)
        session.commit()
        customer_id, recipient_id, user_id = customer.id, recipient.id, user.id
    url = f"/customers/{customer_id}/recipients/{recipient_id}/active"
    clients = [app.test_client(), app.test_client()]
    for one in clients:
        assert one.post("/login", data={"username": "twin_clerk", "password": PASSWORD}).status_code == 302
    token = token_of(clients[0].get(f"{url}/confirm?active=0", headers=HX).get_data(as_text=True))
    start, answers, errors = threading.Barrier(2), [], []

    def send(one) -> None:  # noqa: ANN001
        start.wait()
        try:
            answers.append(one.post(url, data={"active": "0", "confirm_token": token}, headers=HX))
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(one,)) for one in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(a.status_code for a in answers) == [200, 200]
    notices = [a for a in answers if a.headers.get("HX-Retarget") == "#session-notice"]
    assert len(notices) == 1 and "已处理" in notices[0].get_data(as_text=True)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(UsedConfirmation)) == 1
        assert session.scalar(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "recipient.deactivate", AuditEvent.actor_id == user_id)) == 1
