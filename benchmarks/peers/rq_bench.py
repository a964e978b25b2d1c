"""RQ: the noop task, enqueueing (one by one and `enqueue_many`), and its two worker classes."""

from __future__ import annotations

import os
import sys
from typing import Any

import harness

QUEUE = "bench"
_client: Any = None


def noop(mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


class Peer:
    """RQ with `rq.SimpleWorker` (jobs in the worker process) or `rq.Worker` (fork per job)."""

    worker_class = "rq.SimpleWorker"

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        from redis import Redis
        from rq import Queue

        self.redis_url = redis_url
        self.queue = Queue(QUEUE, connection=Redis.from_url(redis_url))

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        self.queue.enqueue(noop, mark, t0)

    def enqueue_bulk(self, marks: list[str | None]) -> None:
        from rq import Queue

        for start in range(0, len(marks), 1000):
            self.queue.enqueue_many(
                [Queue.prepare_data(noop, (m, None)) for m in marks[start : start + 1000]]
            )

    def worker_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "-q",
            "-u",
            self.redis_url,
            "-w",
            self.worker_class,
            QUEUE,
        ]

    def close(self) -> None:
        self.queue.connection.close()


class ForkPeer(Peer):
    worker_class = "rq.Worker"
