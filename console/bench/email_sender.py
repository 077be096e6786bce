"""One sender process of `console bench email --senders W`: sends the delivery ids of its file in
batches (as its send jobs would) and prints its figures as JSON: sent, CPU seconds, and its start
and end on the wall clock (comparable between the processes, unlike perf_counter)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    from console import create_app
    from console.bench.email import send_in_batches

    app = create_app()
    ids = json.loads(Path(sys.argv[1]).read_text())
    with app.app_context():
        started, cpu = time.time(), time.process_time()
        sent = send_in_batches(app, app.extensions["billpost.session_factory"], ids, int(app.config["SEND_CONNECTIONS"]))
        ended, cpu = time.time(), time.process_time() - cpu
    print(json.dumps({"sent": sent, "cpu": cpu, "started": started, "ended": ended}))


if __name__ == "__main__":
    main()
