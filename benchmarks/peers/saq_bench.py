"""SAQ on Redis and on its PostgreSQL queue: the noop coroutine, enqueueing and its worker."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import harness
from saq import Queue, Worker

_client: Any = None


async def noop(ctx: dict[str, Any], *, mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


def queue_url() -> str:
    return os.environ["BENCH_SAQ_URL"]


def run_worker() -> None:
    async def main() -> None:
        queue = Queue.from_url(queue_url(), name="bench")
        await queue.connect()
        worker = Worker(
            queue, functions=[noop], concurrency=int(os.environ.get("BENCH_CONCURRENCY", "10"))
        )
        await worker.start()

    asyncio.run(main())


class Peer:
    """SAQ on Redis; `PgPeer` below is the same on SAQ's PostgreSQL queue."""

    enqueue_bulk = None
    backend = "redis"

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        url = pg_url if self.backend == "postgres" else redis_url
        os.environ["BENCH_SAQ_URL"] = url  # the worker processes inherit it
        self.loop = asyncio.new_event_loop()
        self.queue = Queue.from_url(url, name="bench")
        self.loop.run_until_complete(self.queue.connect())

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        self.loop.run_until_complete(self.queue.enqueue("noop", mark=mark, t0=t0))

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-c", "import saq_bench; saq_bench.run_worker()"]

    def close(self) -> None:
        self.loop.run_until_complete(self.queue.disconnect())
        self.loop.close()


class PgPeer(Peer):
    backend = "postgres"
