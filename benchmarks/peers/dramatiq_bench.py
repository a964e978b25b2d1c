"""Dramatiq on Redis: the noop actor and a one-process worker with threads."""

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
import harness
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
dramatiq.set_broker(broker)
_client: Any = None


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


class Peer:
    """`dramatiq --processes 1 --threads N` (it forks one worker process under its parent)."""

    enqueue_bulk = None

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        assert redis_url == os.environ["BENCH_REDIS_URL"]
        self.concurrency = concurrency

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        noop.send(mark, t0)

    def worker_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dramatiq",
            "dramatiq_bench",
            "--processes",
            "1",
            "--threads",
            str(self.concurrency),
            "--queues",
            "bench",
        ]

    def close(self) -> None:
        broker.close()
