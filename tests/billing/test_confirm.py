"""Running and publishing a cycle ask first, in the page (console/web/confirm.py), with the billing
domain's figures: the customers a run bills, and — from the review (billing/review.py) — the
recipients, e-mails and paper copies publishing sends. Without the confirmation, or with a used one,
nothing is generated, published or queued twice; "run" is not offered when there is nothing to run."""

from __future__ import annotations

from sqlalchemy import func, select

from console.models import Delivery
from console.models.billing import Cycle, CycleChunk
from tests.confirming import HX, ask, token_of
from tests.delivery.conftest import add_bill, new_customer


def test_publishing_names_the_recipients_and_is_done_once(client, login_as, db, redis_conn):
    login_as("admin")
    for n in range(3):
        customer = new_customer(db, email=f"pub{n}@customers.test", recipients=[
            {"name": "房东", "relation": "landlord", "channel": "email", "address": f"landlord{n}@customers.test"}]
            if n == 0 else None)
        add_bill(db, customer)
    shared = new_customer(db, email="pub0@customers.test")  # the same address as the first customer's
    add_bill(db, shared)
    db.commit()
    url = "/billing/cycles/2026-11/publish"
    review = client.get("/billing/cycles/2026-11/review").get_data(as_text=True)
    assert f'hx-get="{url}/confirm"' in review
    box = ask(client, url).get_data(as_text=True)
    assert "将向 4 个收件人发送电子账单（共 5 封邮件）" in box  # five e-mails, one address twice
    assert "4 张账单将放到网上营业厅" in box and "此操作无法撤销" in box and "确认发布" in box

    assert client.post(url, headers=HX).status_code == 422
    assert client.post(url).status_code == 303  # a plain form without it: sent to the confirmation
    db.expire_all()
    assert db.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "generated"
    assert db.scalar(select(func.count(Delivery.id))) == 0

    token = token_of(box)
    published = client.post(url, data={"confirm_token": token})
    assert published.status_code == 303 and published.headers["Location"].endswith("/billing/cycles/2026-11")
    db.expire_all()
    assert db.scalar(select(Cycle.status).where(Cycle.period == "2026-11")) == "published"
    jobs = set(redis_conn.keys("rq:job:*"))
    again = client.post(url, data={"confirm_token": token}, headers=HX)
    assert again.status_code == 200 and "已处理" in again.get_data(as_text=True)
    # and a fresh confirmation of a cycle with nothing left to publish is refused before it is asked
    assert ask(client, url).status_code == 422
    assert db.scalar(select(func.count(Delivery.id))) == 5 and set(redis_conn.keys("rq:job:*")) == jobs


def test_running_names_the_customers_and_is_not_offered_when_nothing_is_left(client, login_as, db, redis_conn,
                                                                              tariffs, make_customer):
    login_as("admin")
    client.post("/billing/cycles", data={"period": "2026-11"})
    make_customer()
    make_customer()
    url = "/billing/cycles/2026-11/run"
    assert f'hx-get="{url}/confirm"' in client.get("/billing/cycles/2026-11").get_data(as_text=True)
    box = ask(client, url).get_data(as_text=True)
    assert "将为 2 个客户生成 2026-11 的账单，分 1 个任务" in box and "确认生成" in box
    assert client.post(url, headers=HX).status_code == 422
    assert db.scalar(select(func.count(CycleChunk.id))) == 0

    token = token_of(box)
    assert client.post(url, data={"confirm_token": token}, headers=HX).status_code == 200
    assert "已处理" in client.post(url, data={"confirm_token": token}, headers=HX).get_data(as_text=True)
    assert db.scalar(select(func.count(CycleChunk.id))) == 1

    from rq import SimpleWorker

    from console.queues import get_queue

    queue = get_queue("billing", client.application)
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    page = client.get("/billing/cycles/2026-11").get_data(as_text=True)
    assert f"{url}/confirm" not in page  # generated, no customer without a bill: nothing to run
    assert ask(client, url).status_code == 422
    make_customer()  # a customer added since: running bills just them
    box = ask(client, url).get_data(as_text=True)
    assert "将为 1 个客户生成" in box and "已生成的账单不会重复生成" in box
