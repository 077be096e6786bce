"""`console bench email` end to end on a few messages (its figures are for the issue note, never
asserted as times): both modes, the receiver paused then continued, every message confirmed."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.postfix


@pytest.mark.skipif(os.geteuid() != 0, reason="the loopback Postfix runs as root")
def test_bench_email_runs_both_modes_and_confirms_everything(committed_app):
    committed_app.config.update(SMTP_HOST="")
    result = committed_app.test_cli_runner().invoke(
        args=["bench", "email", "--messages", "4", "--pdf", "off", "--reports", "both", "--runs", "2", "--wait", "60",
              "--connections", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    runs = [line for line in lines if "summary" not in line]
    summaries = [line for line in lines if "summary" in line]
    assert [r["reports"] for r in runs] == ["held while sending"] * 2 + ["received while sending"] * 2
    assert all(r["sent"] == 4 and r["confirmed"] == 4 for r in runs)
    assert all(r["messages_per_second"] > 0 and r["report_to_confirmation"]["p50_ms"] >= 0 for r in runs)
    assert "send_to_report" in runs[-1] and "confirmations_per_second" in runs[0]
    assert [s["summary"] for s in summaries] == ["2 runs", "2 runs"]
    # the floor beside each held run: Postfix's own smtp-source over one session, the same Postfix
    assert all(r["smtp_source_1_session_messages_per_second"] > 0 and r["ratio_to_smtp_source"] > 0
               for r in runs[:2])
    assert summaries[0]["ratio_to_smtp_source_median"] > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the loopback Postfix runs as root")
def test_bench_email_over_several_sender_processes_sends_each_message_once(committed_app):
    from sqlalchemy import func, select

    from console.models import DeliveryAttempt

    if committed_app.extensions["billpost.engine"].dialect.name == "sqlite":
        result = committed_app.test_cli_runner().invoke(args=["bench", "email", "--senders", "2"])
        assert result.exit_code != 0 and "need PostgreSQL" in result.output
        return
    committed_app.config.update(SMTP_HOST="", SEND_BATCH_SIZE=2)  # 4 messages: a batch for each process
    result = committed_app.test_cli_runner().invoke(
        args=["bench", "email", "--messages", "4", "--pdf", "off", "--reports", "held", "--wait", "60",
              "--senders", "2"]
    )
    assert result.exit_code == 0, result.output
    [run] = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert run["senders"] == 2 and run["sent"] == 4 and run["confirmed"] == 4
    assert run["sender_cpu_seconds"] > 0 and run["smtp_source_2_session_messages_per_second"] > 0
    with committed_app.extensions["billpost.session_factory"]() as session:
        sent = session.scalars(select(DeliveryAttempt.delivery_id).where(DeliveryAttempt.sent_at.is_not(None))).all()
        assert len(sent) == len(set(sent)) == session.scalar(select(func.count(DeliveryAttempt.id)))
