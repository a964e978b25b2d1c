"""`conveyor worker`: one worker, or a supervisor of several worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Any

import typer

from conveyor.cli.common import fail, get_app
from conveyor.core.engine import Conveyor


def run_worker(app: Conveyor, queues: list[str], **options: Any) -> int:
    """Run one worker in this process until stopped; returns jobs processed."""
    worker = app.worker(queues=queues or None, **options)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(worker.run())
    return worker.processed


def worker(
    ctx: typer.Context,
    queues: list[str] = typer.Option([], "--queue", "-q", help="Queue to serve (repeatable)."),
    concurrency: int = typer.Option(10, "--concurrency", "-c", min=1, max=10_000),
    processes: int = typer.Option(None, "--processes", min=1, max=256),
    autoscale: str = typer.Option(None, "--autoscale", help="MIN:MAX worker processes."),
    burst: bool = typer.Option(False, "--burst", help="Exit 0 once no job is ready or due."),
    max_jobs_per_child: int = typer.Option(
        None, "--max-jobs-per-child", min=1, help="Recycle a worker after this many jobs."
    ),
    max_memory_per_child: float = typer.Option(
        None, "--max-memory-per-child", min=1, help="Recycle a worker past this RSS, in MB."
    ),
    grace_seconds: float = typer.Option(
        30.0, "--grace-seconds", min=0, help="On SIGTERM, how long running jobs may finish."
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve this worker's Prometheus metrics."
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host"),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run jobs."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if processes and autoscale:
        fail("give --processes or --autoscale, not both")
    if processes or autoscale:
        from conveyor.cli.supervisor import supervise

        bounds = _parse_autoscale(autoscale) if autoscale else (processes, processes)
        code = supervise(sys.argv, bounds, get_app(ctx), queues)
        raise typer.Exit(code)
    app = get_app(ctx)
    if metrics_port:
        from conveyor.metrics import serve_metrics

        serve_metrics(app, metrics_port, metrics_host)
    run_worker(
        app,
        queues,
        concurrency=concurrency,
        burst=burst,
        max_jobs=max_jobs_per_child,
        max_memory_mb=max_memory_per_child,
        grace_seconds=grace_seconds,
    )
    app.close()
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.name.startswith("conveyor-job") and t.is_alive() for t in threading.enumerate()):
        # A handler thread that ignored cancellation would keep the process alive forever;
        # its job was already released, so leave without waiting for it.
        os._exit(0)


def _parse_autoscale(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit() or not 1 <= int(low) <= int(high):
        fail(f"--autoscale expects MIN:MAX with 1 <= MIN <= MAX, got {text!r}")
    return int(low), int(high)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
