"""Every `console bench …` command, added to the bench group by console.cli."""

from __future__ import annotations

import click


def register(bench_group: click.Group) -> None:
    from console.bench.customers import bench_demo_data, bench_import, bench_search
    from console.bench.cycle import bench_cycle
    from console.bench.email import bench_email
    from console.bench.inbox import bench_inbox
    from console.bench.loop import bench_loop
    from console.bench.mailin import bench_mailin_command
    from console.bench.metrics import bench_metrics
    from console.bench.pdf import bench_pdf
    from console.bench.portal import bench_portal

    for command in (bench_demo_data, bench_import, bench_search, bench_cycle, bench_email, bench_mailin_command,
                    bench_pdf, bench_portal, bench_inbox, bench_metrics, bench_loop):
        bench_group.add_command(command)
