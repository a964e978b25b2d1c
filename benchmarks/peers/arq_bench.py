"""arq: the noop coroutine, enqueueing through an ArqRedis pool, and its worker."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import harness
from arq.connections import RedisSettings, create_pool

_client: Any = None


async def noop(ctx: dict[str, Any], mark: str | None = None, t0: float | None = None) -> None:
    """The job: nothing, except stamping markers for the harness."""
    if mark or t0 is not None:
        global _client
        _client = _client or harness.redis_client(os.environ["BENCH_REDIS_URL"])
        harness.record_marker(_client, mark, t0)


class WorkerSettings:
    """Read by `arq.run_worker`; `max_jobs` is its concurrency."""

    functions = [noop]
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))
    keep_result = 0


def run_worker() -> None:
    from arq import run_worker as run

    run(WorkerSettings)


class Peer:
    """arq has no bulk enqueue: jobs go one `enqueue_job` at a time."""

    enqueue_bulk = None

    def __init__(self, redis_url: str, pg_url: str | None, concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(redis_url)))

    def enqueue(self, mark: str | None = None, t0: float | None = None) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop", mark, t0))

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-c", "import arq_bench; arq_bench.run_worker()"]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()
