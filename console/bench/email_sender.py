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
    from console.delivery.sender import send_batch_over_connections

    app = create_app()
    factory = app.extensions["billpost.session_factory"]
    ids = json.loads(Path(sys.argv[1]).read_text())
    size, connections = int(app.config["SEND_BATCH_SIZE"]), int(app.config["SEND_CONNECTIONS"])
    with app.app_context():
        started, cpu = time.time(), time.process_time()
        sent = sum(send_batch_over_connections(app, factory, ids[i : i + size], connections)["sent"]
                   for i in range(0, len(ids), size))
        ended, cpu = time.time(), time.process_time() - cpu
    print(json.dumps({"sent": sent, "cpu": cpu, "started": started, "ended": ended}))


if __name__ == "__main__":
    main()
