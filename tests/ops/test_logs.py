"""Worker log lines carry the RQ job id; e-mail addresses are never logged whole."""

from __future__ import annotations

import json
import logging

from console import logs


def test_a_jobs_log_lines_carry_its_id(app, redis_conn, capsys):
    from rq import SimpleWorker

    from console.queues import get_queue

    queue = get_queue("default", app)
    job = queue.enqueue("logging.warning", args=["line from a job"], job_id="log-test-job")
    SimpleWorker([queue], connection=redis_conn, serializer=queue.serializer).work(burst=True)
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if " WARNING root " in line and "line from a job" in line]
    assert f"[job {job.id}]" in line


def test_json_lines_have_the_job_id_field_and_masked_addresses(app, capsys):
    handler = logs.configure("json", "INFO")
    try:
        logging.getLogger("billpost.test").warning("sent to wang.fang@customers.test and li@example.cn")
        record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    assert handler is not None
    assert record["job_id"] is None
    assert "wang.fang@" not in record["message"] and "w***@customers.test" in record["message"]
    assert "l***@example.cn" in record["message"]


def test_masking_keeps_the_domain_and_ids_masked_too():
    text = logs.mask("a.b+tag@customers.test 320502199001011234 bounces+tok123@bounces.bills.test")
    assert text == "a***@customers.test 320502********1234 b***@bounces.bills.test"
