"""The builder thread of a send batch: messages in the batch's order, failures raised at their turn,
the thread stopped with the batch."""

from __future__ import annotations

import email
import sys
from email import policy as email_policy

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.db import utcnow
from console.delivery import build_ahead
from console.delivery.build_ahead import BuildAhead
from console.delivery.publish import publish_cycle
from console.models import Delivery, DeliveryAttempt
from tests.delivery.conftest import add_bill, new_customer


def _batch(app, size: int) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """`size` published e-mail deliveries with their (unsent) attempts, committed."""
    with app.extensions["billpost.session_factory"]() as session:
        bills = [add_bill(session, new_customer(session)) for _ in range(size)]
        session.commit()
        publish_cycle(session, bills[0].cycle_id, Actor.cli(), utcnow())
        session.commit()
        deliveries = session.scalars(
            select(Delivery)
            .where(Delivery.bill_id.in_([b.id for b in bills]), Delivery.channel == "email")
            .order_by(Delivery.id.desc())  # not the table's order: the builder must keep the given one
        ).all()
        attempts = [
            DeliveryAttempt(
                delivery_id=d.id, attempt_no=1, token=f"ahead{d.id}", envid=f"ahead{d.id}",
                message_id=f"<ahead{d.id}@bounces.test>", created_at=utcnow(),
            )
            for d in deliveries
        ]
        session.add_all(attempts)
        session.commit()
        return [d.id for d in deliveries], [a.id for a in attempts]


def test_messages_come_in_the_batch_order_each_with_its_attempt(committed):
    ids, attempt_ids = _batch(committed, 6)
    before = sys.getswitchinterval()
    ahead = BuildAhead(committed, ids, attempt_ids)
    try:
        built = list(ahead)
    finally:
        ahead.close()
    assert [delivery_id for delivery_id, _ in built] == ids
    for delivery_id, raw in built:
        message = email.message_from_bytes(raw, policy=email_policy.default)
        assert message["Message-ID"] == f"<ahead{delivery_id}@bounces.test>"
        assert message.get_body(("html",)) is not None
    assert not ahead.thread.is_alive() and sys.getswitchinterval() == before


def test_a_failed_build_is_raised_at_its_turn_and_close_stops_the_thread(committed, monkeypatch):
    ids, attempt_ids = _batch(committed, 8)
    real = build_ahead.build_message

    def breaks_on_the_second(session, delivery, attempt, config):  # noqa: ANN001, ANN202
        if delivery.id == ids[1]:
            raise RuntimeError("template broke")
        return real(session, delivery, attempt, config)

    monkeypatch.setattr(build_ahead, "build_message", breaks_on_the_second)
    ahead = BuildAhead(committed, ids, attempt_ids)
    messages = iter(ahead)
    assert next(messages)[0] == ids[0]
    with pytest.raises(RuntimeError, match="template broke"):
        next(messages)
    ahead.close()  # the sender stops here: the builder, blocked on a full queue, ends too
    assert not ahead.thread.is_alive()
