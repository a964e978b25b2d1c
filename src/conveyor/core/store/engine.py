"""Engines for the two stores: SQLite (embedded, WAL) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from conveyor.core.errors import ConfigurationError


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `postgres://` URLs and pin the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 5) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigurationError(f"database URL {url!r} is not a valid URL") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            # No pre-ping: it costs a round trip per transaction. A connection that died
            # with the server fails its next statement, which invalidates the pool; callers
            # retry (workers) or get StoreUnavailable (submits, after one retry).
            pool_recycle=300,
        )
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///path or postgresql://"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take over transaction control so that every transaction can BEGIN IMMEDIATE:
        # writers queue on the lock at the start instead of failing on upgrade.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
