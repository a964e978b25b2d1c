"""Shared fixtures: a private PostgreSQL database per run, apps on SQLite and PostgreSQL.

Services are checked once at start: without PostgreSQL or Redis the run stops with one line
saying what is missing and how to start it (in CI too: a missing service is a failure)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import conveyor
from conveyor.core.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "CONVEYOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST = os.environ.get("CONVEYOR_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("CONVEYOR_TEST_REDIS_PORT", "6379"))

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = []
    if not _reachable("127.0.0.1", 5432):
        missing.append("PostgreSQL")
    if not _reachable(REDIS_HOST, REDIS_PORT):
        missing.append("Redis")
    if missing:
        hints = "; ".join(f"{name}: {HOW_TO_START[name]}" for name in missing)
        pytest.exit(
            f"missing service(s) on 127.0.0.1: {', '.join(missing)} (start with: {hints})",
            returncode=3,
        )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"conveyor_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {names}"))
        else:
            for table in metadata.sorted_tables:
                conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on the run's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    url: str = request.getfixturevalue("pg_url")
    conveyor.Conveyor(url, entry_points=False).store.migrate()
    truncate_all(url)
    return url


@pytest.fixture
def fast_settings() -> dict[str, Any]:
    """Shrunk lease, heartbeat and reaper intervals so crash tests take seconds."""
    return {
        "lease_seconds": 2.0,
        "heartbeat_seconds": 0.5,
        "reaper_seconds": 0.3,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "poll_seconds": 0.2,
    }


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., conveyor.Conveyor]]:
    """Build apps on the parametrised database; closed at teardown."""
    apps: list[conveyor.Conveyor] = []

    def build(**options: Any) -> conveyor.Conveyor:
        options.setdefault("database_url", database_url)
        app = conveyor.Conveyor(**options)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()
