"""Fixtures of the broker suite: a truncated PostgreSQL database, a private Redis key prefix,
and helpers to run a worker in a thread and to poll with a deadline."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

import conveyor
from conveyor.core.store.tables import metadata

REDIS_HOST = os.environ.get("CONVEYOR_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("CONVEYOR_TEST_REDIS_PORT", "6379"))

#: Short leases and backoff so that rescue and retry tests take a fraction of a second.
FAST = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.5,
    "reaper_seconds": 0.3,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "poll_seconds": 0.2,
}


def redis_url(prefix: str) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"


def drop_prefix(prefix: str) -> None:
    """Delete this prefix's keys: the shared server's other keys stay untouched."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"conveyor-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    drop_prefix(prefix)


@pytest.fixture
def pg_database(pg_url: str) -> str:
    """The run's PostgreSQL database, migrated and emptied for this test."""
    conveyor.Conveyor(pg_url, entry_points=False).store.migrate()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
    engine.dispose()
    return pg_url


@pytest.fixture
def app_factory() -> Iterator[Callable[..., conveyor.Conveyor]]:
    """Build apps with the suite's handlers; all closed at teardown."""
    from . import handlers

    apps: list[conveyor.Conveyor] = []

    def build(database_url: str, **options: Any) -> conveyor.Conveyor:
        settings = {**FAST, **options}
        app = conveyor.Conveyor(database_url, plugins=[handlers], entry_points=False, **settings)
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
def running_worker(app: conveyor.Conveyor, **options: Any) -> Iterator[Any]:
    """A worker running in a thread of its own until the block ends."""
    options.setdefault("install_signal_handlers", False)
    worker = app.worker(**options)
    thread = threading.Thread(target=asyncio.run, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "worker did not stop"
