"""Celery on Redis: the noop task and a one-process worker."""

from __future__ import annotations

import os
import sys
from typing import Any

import harness
from celery import Celery

app = Celery("celery_bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue="bench",
)
_client: Any = None


@app.task(name="noop")
def noop(mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


class Peer:
    """`celery worker --pool threads` in one process (prefork would add a child per slot)."""

    enqueue_bulk = None

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        assert redis_url == os.environ["BENCH_REDIS_URL"]
        self.concurrency = concurrency

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        noop.apply_async((mark, t0))

    def worker_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_bench",
            "worker",
            "-Q",
            "bench",
            "--pool",
            os.environ.get("BENCH_CELERY_POOL", "threads"),
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def close(self) -> None:
        app.close()
