"""Live while a cycle's mail goes out (issue 16): the figures of the cycle's e-mails in every state,
the rates and the time left, the chart drawn as SVG on the server, and the fragment that polls
only while something is queued or awaiting confirmation."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

from sqlalchemy import update

from console.db import utcnow
from console.delivery import chart
from console.delivery.counts import sending_progress
from console.delivery.policy import open_work_item
from console.models import Delivery, DeliveryAttempt
from console.sqltime import to_epoch_minute
from tests.delivery.conftest import add_bill

HX = {"HX-Request": "true"}
SVG = "{http://www.w3.org/2000/svg}"


class Mail:
    """E-mail deliveries of one cycle written straight into the database, in whatever state a test needs."""

    def __init__(self, db, make_customer, now):  # noqa: ANN001
        self.db, self.make_customer, self.now = db, make_customer, now
        self.cycle = None
        self.n = 0

    def delivery(self, status: str, sent_minutes_ago: list[int] = (), confirmed_minutes_ago: int | None = None,
                 confirmed_by: str | None = None, channel: str = "email") -> Delivery:
        customer = self.make_customer()
        bill = add_bill(self.db, customer, period="2026-11")
        self.cycle = bill.cycle_id
        self.n += 1
        delivery = Delivery(
            bill_id=bill.id, customer_id=customer.id, channel=channel,
            address=f"d{self.n}@customers.test" if channel == "email" else f"苏州市{self.n}号", recipient_name="客户",
            status=status, attempts_made=len(sent_minutes_ago), send_errors=0, created_at=self.now - timedelta(hours=1),
            confirmed_at=None if confirmed_minutes_ago is None else self.now - timedelta(minutes=confirmed_minutes_ago),
            confirmed_by=confirmed_by,
        )
        self.db.add(delivery)
        self.db.flush()
        for number, ago in enumerate(sent_minutes_ago, start=1):
            self.db.add(DeliveryAttempt(
                delivery_id=delivery.id, attempt_no=number, token=f"t{delivery.id}-{number}",
                envid=f"e{delivery.id}-{number}", message_id=f"<m{delivery.id}-{number}@bills.test>",
                dsn_requested=True, sent_at=self.now - timedelta(minutes=ago),
            ))
        self.db.flush()
        return delivery


def _every_state(db, make_customer, now):  # noqa: ANN001, ANN202
    mail = Mail(db, make_customer, now)
    mail.delivery("queued")
    mail.delivery("queued")
    mail.delivery("sent", [3])
    mail.delivery("sent", [12, 2])  # resent, awaiting confirmation of the resend
    mail.delivery("confirmed", [3], confirmed_minutes_ago=3, confirmed_by="delivered")
    mail.delivery("confirmed", [3], confirmed_minutes_ago=1, confirmed_by="delivered")
    mail.delivery("confirmed", [30], confirmed_minutes_ago=29, confirmed_by="relayed")
    mail.delivery("confirmed", [20], confirmed_minutes_ago=10, confirmed_by="portal_open")
    failed = mail.delivery("failed", [9])
    open_work_item(db, failed, "email_failed")
    mail.delivery("cancelled", [40])  # superseded: not counted
    mail.delivery("queued", channel="paper")  # paper: not an e-mail
    db.commit()
    return mail


def test_figures_of_a_cycle_with_deliveries_in_each_state(db, make_customer):
    now = utcnow()
    mail = _every_state(db, make_customer, now)
    s = sending_progress(db, mail.cycle, now)
    assert (s.deliveries, s.queued, s.awaiting, s.confirmed, s.failed) == (9, 2, 2, 4, 1)
    assert s.sent == 7 and s.resent == 1 and s.escalated == 1
    assert s.confirmed_by == {"delivered": 2, "relayed": 1, "expanded": 0, "portal_open": 1}
    # the last 5 minutes: messages sent 3, 2, 3, 3 minutes ago; confirmations 3 and 1 minutes ago
    # (no event near the window's edge: a request a moment later counts the same)
    assert s.rate_minutes == 5 and s.send_rate == 4 / 5 and s.confirm_rate == 2 / 5
    # 4 still queued or awaiting at 0.4 confirmations a minute: 10 minutes; the 2 queued at 0.8 a minute go sooner
    assert s.active and s.minutes_left == 10


def test_time_left_is_unknown_when_nothing_moved_lately_and_zero_when_done(db, make_customer):
    now = utcnow()
    mail = Mail(db, make_customer, now)
    mail.delivery("queued")
    mail.delivery("confirmed", [30], confirmed_minutes_ago=29, confirmed_by="delivered")
    db.commit()
    assert sending_progress(db, mail.cycle, now).minutes_left is None
    db.execute(update(Delivery).where(Delivery.status == "queued").values(status="failed"))
    db.commit()
    done = sending_progress(db, mail.cycle, now)
    assert not done.active and done.minutes_left == 0


def test_the_fragment_polls_while_mail_is_out_and_stops_when_nothing_is_left(client, login_as, db, make_customer):
    now = utcnow()
    mail = _every_state(db, make_customer, now)
    login_as("admin")
    url = f"/delivery/cycles/{mail.cycle}/sending"
    live = client.get(url, headers=HX).get_data(as_text=True)
    assert "<html" not in live and f'id="sending-{mail.cycle}"' in live
    assert f'hx-get="{url}" hx-trigger="every 3s"' in live
    for figure, value in {"sent": 7, "confirmed": 4, "resent": 1, "failed": 1, "escalated": 1, "queued": 2,
                          "awaiting": 2}.items():
        assert f'data-figure="{figure}">{value}<' in live, figure
    assert re.search(r'<span data-confirmed-by="delivered">[^<]+ 2</span>', live)
    assert re.search(r'<span data-confirmed-by="portal_open">[^<]+ 1</span>', live) and "expanded" not in live
    assert "预计还需约 10 分钟" in live and "每分钟发送 0.8 封、确认 0.4 封" in live
    english = client.get(url + "?lang=en", headers=HX).get_data(as_text=True)
    assert "About 10 minutes left." in english and "Escalated to a work item" in english

    db.execute(update(Delivery).where(Delivery.status.in_(("queued", "sent"))).values(status="failed"))
    db.commit()
    done = client.get(url, headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in done and "已无待发送或待确认的邮件" in done


def test_the_chart_is_well_formed_svg_with_a_point_per_minute_and_local_times(client, login_as, db, make_customer):
    now = utcnow()
    mail = _every_state(db, make_customer, now)
    login_as("admin")
    fragment = client.get(f"/delivery/cycles/{mail.cycle}/sending", headers=HX).get_data(as_text=True)
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", fragment, re.S).group(0))  # parses: well-formed XML
    assert svg.tag == f"{SVG}svg" and svg.find(f"{SVG}title").text == "确认数随时间变化"
    sent, confirmed = (svg.find(f"{SVG}polyline[@class='{name}']") for name in ("sent", "confirmed"))
    sent_points = [tuple(map(float, p.split(","))) for p in sent.get("points").split()]
    confirmed_points = [tuple(map(float, p.split(","))) for p in confirmed.get("points").split()]
    # from the first message (40 minutes ago, the cancelled one's) to now, one point per minute edge
    # (one more when the request's minute is already the next one)
    assert len(sent_points) == len(confirmed_points) and len(sent_points) in (42, 43)
    xs = [x for x, _y in confirmed_points]
    assert xs == sorted(xs) and xs[0] == chart.LEFT and xs[-1] == chart.WIDTH - chart.RIGHT
    ys = [y for _x, y in confirmed_points]
    assert ys == sorted(ys, reverse=True)  # cumulative: never falls (y grows downwards)
    legend = "".join(svg.find(f"{SVG}g[@class='legend']").itertext())
    assert "已发送邮件 9" in legend and "已确认 4" in legend  # 9 messages out (one a resend), 4 confirmed
    labels = svg.findall(f"{SVG}g[@class='x-labels']/{SVG}text[@data-time]")
    assert labels
    from datetime import datetime
    from zoneinfo import ZoneInfo

    for label in labels:  # the display time zone, through the one time filter
        at = datetime.fromisoformat(label.get("data-time")).astimezone(ZoneInfo("Asia/Shanghai"))
        assert label.text == at.strftime("%H:%M")
    english = client.get(f"/delivery/cycles/{mail.cycle}/sending?lang=en", headers=HX).get_data(as_text=True)
    assert "<title id=" in english and "Confirmations over time" in english and "Messages sent 9" in english


def test_the_chart_of_a_long_sending_keeps_its_points_bounded():
    start = 29_000_000
    sent = {start + m: 3 for m in range(0, 600, 2)}  # ten hours
    confirmed = {start + m + 1: 2 for m in range(0, 600, 2)}
    c = chart.progress_chart(sent, confirmed)
    assert len(c.sent) <= chart.MAX_POINTS + 1 and c.total_sent == 900 and c.total_confirmed == 600
    assert 2 <= len(c.x_ticks) <= chart.MAX_TIME_TICKS + 1 and c.y_ticks[-1].value >= 900
    assert chart.progress_chart({}, {}) is None
    live = chart.progress_chart({start: 1}, {}, until=start + 9)
    assert len(live.sent) == 11 and live.sent[-1][0] == chart.WIDTH - chart.RIGHT  # the axis runs to now


def test_the_cycle_page_shows_the_sending_of_a_published_cycle(client, login_as, db, make_customer):
    from console.models import Cycle

    now = utcnow()
    mail = _every_state(db, make_customer, now)
    cycle = db.get(Cycle, mail.cycle)
    cycle.status = "published"
    db.commit()
    login_as("admin")
    page = client.get(f"/billing/cycles/{cycle.period}").get_data(as_text=True)
    assert f'id="sending-{cycle.id}"' in page and 'hx-trigger="every 3s"' in page and "<svg" in page
    assert 'href="/delivery/deliveries"' in page and f'href="/paper/cycles/{cycle.period}"' in page
    dashboard = client.get("/inbox/admin/").get_data(as_text=True)
    card = dashboard.split(f'id="cycle-{cycle.id}"', 1)[1]
    assert card.split(">", 1)[0].count('hx-trigger="every 3s"') == 1  # the card polls, not the part inside it
    assert f'id="sending-{cycle.id}"' in card and 'data-figure="confirmed">4<' in card
    assert to_epoch_minute(now) > 0


def test_the_dashboard_shows_the_sending_of_the_newest_published_cycle_and_of_any_still_sending(db, make_customer):
    from datetime import date

    from console.inboxes.dashboard import cycles_overview
    from console.models import Cycle

    now = utcnow()
    older = Cycle(period="2026-09", bill_date=date(2026, 9, 25), status="published")
    oldest = Cycle(period="2026-08", bill_date=date(2026, 8, 25), status="published")
    db.add_all([older, oldest])
    db.flush()
    for cycle, status in ((older, "sent"), (oldest, "confirmed")):
        bill = add_bill(db, make_customer(), cycle)
        db.add(Delivery(bill_id=bill.id, customer_id=bill.customer_id, channel="email", address=f"{status}@x.test",
                        recipient_name="客户", status=status, attempts_made=1, send_errors=0, created_at=now))
    mail = _every_state(db, make_customer, now)
    db.get(Cycle, mail.cycle).status = "published"
    db.commit()
    cards = {card["cycle"].period: card for card in cycles_overview(db)}
    assert cards["2026-11"]["sending"].confirmed == 4  # the newest
    assert cards["2026-09"]["sending"].awaiting == 1 and cards["2026-09"]["live"]  # still awaiting a report
    assert cards["2026-08"]["sending"] is None and not cards["2026-08"]["live"]  # done long ago
