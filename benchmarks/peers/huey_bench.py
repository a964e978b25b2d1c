"""Huey on Redis: the noop task and a thread-pool consumer."""

from __future__ import annotations

import os
import sys
from typing import Any

import harness
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
_client: Any = None


@huey.task()
def noop(mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


class Peer:
    """Huey's consumer with `concurrency` threads (the way its docs run I/O-bound tasks)."""

    enqueue_bulk = None

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        assert redis_url == os.environ["BENCH_REDIS_URL"]
        self.concurrency = concurrency

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        noop(mark, t0)

    def worker_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "huey_bench.huey",
            "-k",
            "thread",
            "-w",
            str(self.concurrency),
            "-q",
        ]

    def close(self) -> None:
        pass
