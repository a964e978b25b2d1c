"""Fixtures for the REST API tests: a real uvicorn server on a free loopback port, serving a
`Conveyor` on the parametrised database (SQLite and PostgreSQL), driven with httpx.

The server runs in a thread of the test process so that a test can also run a worker on the
same app (`app.run_burst()`, or `running_worker` for jobs that must be seen running).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

import conveyor
from conveyor.api import create_app

from . import handlers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


@dataclass
class Served:
    """A running API: its app, base URL and an httpx client (add headers per request)."""

    app: conveyor.Conveyor
    url: str
    client: httpx.Client

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(app: conveyor.Conveyor, **api_options: Any) -> Iterator[Served]:
    """Serve `app` with uvicorn on 127.0.0.1 until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        create_app(app, **api_options),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    poll(lambda: server.started or not thread.is_alive(), what="uvicorn start")
    assert server.started, "uvicorn did not start"
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Served(app, url, client)
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def make_served(
    make_app: Callable[..., conveyor.Conveyor], fast_settings: dict[str, Any]
) -> Iterator[Callable[..., Served]]:
    """Build and serve apps on the parametrised database; all stopped at teardown.

    Keyword arguments go to `Conveyor(...)`, except `require_auth` (to `create_app`)."""
    stack: list[Any] = []

    def build(require_auth: bool | None = None, **options: Any) -> Served:
        options.setdefault("plugins", [handlers])
        options.setdefault("entry_points", False)
        app = make_app(**{**fast_settings, **options})
        context = serving(app, require_auth=require_auth)
        served = context.__enter__()
        stack.append(context)
        return served

    yield build
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def served(make_served: Callable[..., Served]) -> Served:
    """An API with authentication off (no admin token, no tokens)."""
    return make_served()


@contextmanager
def running_worker(app: conveyor.Conveyor, **options: Any) -> Iterator[Any]:
    """A worker running in a thread until the block ends."""
    options.setdefault("concurrency", 4)
    worker = app.worker(install_signal_handlers=False, **options)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), name="api-test-worker")
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(20)
        assert not thread.is_alive(), "worker did not stop"
