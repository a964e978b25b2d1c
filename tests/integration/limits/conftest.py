"""Fixtures of the limits suite: every test runs on three backends, the database dispatching
on SQLite and on PostgreSQL, and Redis dispatching (PostgreSQL record), as the broker contract
suite does. Workers run in threads of this process (one app each, so each has its own broker
connections, as separate processes would) or as `conveyor worker` subprocesses."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

import conveyor
from conveyor.core.store.tables import metadata

from . import limit_handlers

REDIS_HOST = os.environ.get("CONVEYOR_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("CONVEYOR_TEST_REDIS_PORT", "6379"))
HERE = Path(__file__).resolve().parent

#: Short leases so that a killed worker's slots come back in about two seconds.
FAST: dict[str, Any] = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.5,
    "reaper_seconds": 0.3,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "poll_seconds": 0.2,
}


@dataclass
class Backend:
    name: str
    database_url: str
    broker_url: str | None = None

    def env(self) -> dict[str, str]:
        """CONVEYOR_* variables a subprocess worker needs to use this backend."""
        found = {"CONVEYOR_DATABASE_URL": self.database_url}
        if self.broker_url:
            found["CONVEYOR_BROKER_URL"] = self.broker_url
        return found


def _emptied(url: str) -> str:
    conveyor.Conveyor(url, entry_points=False).store.migrate()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
    engine.dispose()
    return url


def _drop_prefix(prefix: str) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'limits.db'}")
        return
    url = _emptied(request.getfixturevalue("pg_url"))
    if request.param == "postgres":
        yield Backend("postgres", url)
        return
    prefix = f"conveyor-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield Backend("redis", url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}")
    finally:
        _drop_prefix(prefix)


@pytest.fixture
def make_app(backend: Backend) -> Iterator[Callable[..., conveyor.Conveyor]]:
    """Apps on the backend under test with the suite's handlers; closed at teardown."""
    apps: list[conveyor.Conveyor] = []

    def build(**settings: Any) -> conveyor.Conveyor:
        app = conveyor.Conveyor(
            backend.database_url,
            backend.broker_url,
            plugins=[limit_handlers],
            entry_points=False,
            **{**FAST, "reconcile_seconds": 1.0, **settings},
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


@contextmanager
def running_workers(*apps: conveyor.Conveyor, **options: Any) -> Iterator[list[Any]]:
    """One worker per app, each in a thread of its own, until the block ends."""
    options.setdefault("install_signal_handlers", False)
    workers = [app.worker(**options) for app in apps]
    threads = [threading.Thread(target=asyncio.run, args=(w.run(),), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(15)
        assert not any(t.is_alive() for t in threads), "a worker did not stop"


def all_done(app: conveyor.Conveyor, ids: list[str]) -> bool:
    return all(job.terminal for job in app.store.get_many(ids))


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, value in enumerate(ordered):
        while ordered[first] <= value - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at any moment."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    running = best = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        running += step
        best = max(best, running)
    return best
