"""Print batches: route order, merged PDF page counts (bills x copies), RQ rendering, idempotent re-runs."""

from __future__ import annotations

from pypdf import PdfReader
from rq import SimpleWorker
from sqlalchemy import func, select

from console.audit import Actor
from console.models import Bill, Delivery, Recipient
from console.models.paper import PrintBatch, PrintItem
from console.paper import batches
from console.paper.pdf import bill_pdf
from console.paper.rules import paper_allowed, paper_recipients


def _three_key_accounts(make_customer, make_bill, make_paper_delivery):  # noqa: ANN001, ANN202
    made = []
    for code, copies in (("215300", 2), ("215000", 1), ("215100", 3)):
        customer = make_customer(key_account=True, postal_code=code, postal_address=f"苏州市{code}号")
        bill = make_bill(customer)
        made.append((customer, bill, make_paper_delivery(bill, customer, copies=copies)))
    return made


def test_paper_goes_to_key_accounts_paper_recipients_with_their_copies(db, make_customer):
    plain = make_customer(channel_paper=True)
    assert not paper_allowed(plain) and paper_recipients(plain) == []
    assert paper_allowed(plain, key_accounts_only=False)
    key = make_customer(
        key_account=True, channel_paper=True, postal_code="215000",
        recipients=[
            {"name": "财务部", "relation": "finance", "channel": "paper", "address": "上海市 200001 中山路1号", "copies": 2},
            {"name": "租户", "relation": "tenant", "channel": "email", "address": "t@x.test", "copies": 1},
        ],
    )
    db.refresh(key)
    found = paper_recipients(key)
    assert [(r.name, r.copies, r.postal_code) for r in found] == [(key.name, 1, "215000"), ("财务部", 2, "200001")]
    assert found[1].recipient_id == db.scalar(select(Recipient.id).where(Recipient.name == "财务部"))


def test_batches_in_route_order_with_cover_and_copies_rendered_by_rq_jobs(
    app, db, cycle, make_customer, make_bill, make_paper_delivery, redis_conn
):
    made = _three_key_accounts(make_customer, make_bill, make_paper_delivery)
    refused_customer = make_customer(key_account=False)
    make_paper_delivery(make_bill(refused_customer), refused_customer)

    result = batches.gather_batches(db, "2026-11", Actor.cli(), size=2)
    db.commit()
    assert (len(result.batch_ids), result.deliveries, result.copies, result.refused) == (2, 3, 6, 1)
    first, second = (db.get(PrintBatch, i) for i in result.batch_ids)
    codes = [[item.postal_code for item in b.items] for b in (first, second)]
    assert codes == [["215000", "215100"], ["215300"]]  # postal code order, batches of 2

    from console import outbox
    from console.queues import get_queue

    with app.app_context():
        queue = get_queue("pdf")
        assert batches.queue_rendering(db, result.batch_ids, chunk_size=1) == 3
        db.commit()
        assert outbox.handed_over(db) == 3
        SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    db.expire_all()
    for batch in (first, second):
        assert batch.status == "ready", batch.status
        assert batches.batch_progress(db, batch.id).percent == 100
        with app.app_context():
            reader = PdfReader(batches.batch_file(batch))
        with app.app_context():
            files = {item.bill_id: bill_pdf(db, db.get(Bill, item.bill_id)) for item in batch.items}
        bill_pages = sum(len(PdfReader(files[item.bill_id]).pages) * item.copies for item in batch.items)
        assert len(reader.pages) == batch.pages_count == 1 + bill_pages
        assert "打印批次" in reader.pages[0].extract_text()  # the cover sheet
    assert second.pages_count == 1 + 2 * len(PdfReader(_file_of(app, db, second.items[0].bill_id)).pages)
    assert {b.bill_no for _c, b, _d in made} <= {
        line for batch in (first, second) for line in _bill_numbers(app, batch)
    }


def _file_of(app, db, bill_id):  # noqa: ANN001, ANN202
    with app.app_context():
        return bill_pdf(db, db.get(Bill, bill_id))


def _bill_numbers(app, batch):  # noqa: ANN001, ANN202
    with app.app_context():
        reader = PdfReader(batches.batch_file(batch))
    text = "\n".join(page.extract_text() for page in reader.pages[1:])
    return {word for word in text.split() if word.startswith("B202611")}


def test_rerunning_the_batch_command_creates_nothing_new(app, db, cycle, make_customer, make_bill,
                                                        make_paper_delivery, runner, redis_conn):
    _three_key_accounts(make_customer, make_bill, make_paper_delivery)
    first = runner.invoke(args=["print", "batch", "2026-11", "--now"])
    assert first.exit_code == 0, first.output
    assert "1 new batch(es), 3 bills, 6 copies" in first.output
    again = runner.invoke(args=["print", "batch", "2026-11", "--now"])
    assert again.exit_code == 0, again.output
    assert "0 new batch(es), 0 bills" in again.output
    assert db.scalar(select(func.count(PrintBatch.id))) == 1
    assert db.scalar(select(func.count(PrintItem.id))) == 3
    batch = db.scalar(select(PrintBatch))
    assert batch.status == "ready" and batch.pages_count == 1 + 6
    # A new paper delivery later in the cycle goes into a new batch, the old ones stay as they are.
    customer = make_customer(key_account=True, postal_code="215999")
    make_paper_delivery(make_bill(customer), customer)
    assert "1 new batch(es), 1 bills" in runner.invoke(args=["print", "batch", "2026-11", "--now"]).output
    assert db.scalar(select(func.count(PrintItem.id))) == 4
    assert db.scalar(select(func.count(Delivery.id)).where(Delivery.status == "queued")) == 4


def test_unknown_period_is_refused(runner):
    result = runner.invoke(args=["print", "batch", "1999-01"])
    assert result.exit_code != 0 and "1999-01" in result.output


def test_duplex_batches_pad_every_copy_to_an_even_number_of_pages(
    app, db, cycle, make_customer, make_bill, make_paper_delivery
):
    _three_key_accounts(make_customer, make_bill, make_paper_delivery)
    result = batches.gather_batches(db, "2026-11", Actor.cli())
    with app.app_context():
        batch = batches.render_batch_now(db, result.batch_ids[0], Actor.cli(), duplex=True)
        reader = PdfReader(batches.batch_file(batch))
        one = len(PdfReader(_file_of(app, db, batch.items[0].bill_id)).pages)
    padded = one + one % 2
    assert len(reader.pages) == batch.pages_count == 2 + padded * 6  # cover + blank back, 6 copies
