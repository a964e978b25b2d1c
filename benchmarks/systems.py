"""What run.py measures: the systems, their settings, and the servers' scratch space each
measurement gets (a Redis database number and a PostgreSQL database of its own, or a SQLite
file in a temporary directory), created before and removed after every single phase."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = HERE / ".peers"
ARQ_VENV = HERE / ".peers-arq"

REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
#: Redis database numbers the benchmark may use; it takes one only while it is empty.
REDIS_DBS = range(15, 7, -1)
OWNER_KEY = "bench:owner"


@dataclass(frozen=True)
class System:
    """One column of settings for one queue under test."""

    name: str
    label: str
    kind: str  # "conveyor" or "peer"
    jobs: int  # jobs per processing run (full mode)
    quick_jobs: int
    concurrency: int
    setting: str  # how it runs, for the table's footnotes
    pg: bool = False  # needs a PostgreSQL database
    sqlite: bool = False
    redis_broker: bool = False  # Conveyor with CONVEYOR_BROKER_URL
    venv: Path = field(default=PEERS_VENV)

    @property
    def is_peer(self) -> bool:
        return self.kind == "peer"

    def python(self) -> str:
        if self.kind == "conveyor":
            venv_python = ROOT / ".venv" / "bin" / "python"
            return str(venv_python) if venv_python.exists() else "python"
        return str(self.venv / "bin" / "python")


SYSTEMS = [
    System(
        "conveyor_sqlite",
        "Conveyor, SQLite (database dispatch)",
        "conveyor",
        30_000,
        10_000,
        100,
        "embedded SQLite (WAL), async worker, concurrency 100",
        sqlite=True,
    ),
    System(
        "conveyor_pg",
        "Conveyor, PostgreSQL (database dispatch)",
        "conveyor",
        30_000,
        10_000,
        100,
        "PostgreSQL, SKIP LOCKED + LISTEN/NOTIFY, async worker, concurrency 100",
        pg=True,
    ),
    System(
        "conveyor_redis",
        "Conveyor, Redis dispatch + PostgreSQL record",
        "conveyor",
        30_000,
        10_000,
        100,
        "CONVEYOR_BROKER_URL=redis://, record in PostgreSQL, concurrency 100",
        pg=True,
        redis_broker=True,
    ),
    System("huey", "Huey (Redis)", "peer", 10_000, 3000, 8, "huey_consumer -k thread -w 8"),
    System(
        "dramatiq",
        "Dramatiq (Redis)",
        "peer",
        10_000,
        3000,
        8,
        "dramatiq --processes 1 --threads 8",
    ),
    System(
        "arq",
        "arq (Redis)",
        "peer",
        10_000,
        3000,
        300,
        "arq worker, max_jobs 300 (its read batch grows with it)",
        venv=ARQ_VENV,
    ),
    System("saq_redis", "SAQ (Redis)", "peer", 10_000, 3000, 10, "SAQ worker, concurrency 10"),
    System(
        "saq_pg",
        "SAQ (PostgreSQL queue)",
        "peer",
        5000,
        2000,
        10,
        "SAQ PostgresQueue, concurrency 10",
        pg=True,
    ),
    System(
        "celery",
        "Celery (Redis)",
        "peer",
        10_000,
        3000,
        8,
        "celery worker --pool threads --concurrency 8",
    ),
    System(
        "rq_simple",
        "RQ SimpleWorker (Redis)",
        "peer",
        3000,
        1000,
        1,
        "rq worker -w rq.SimpleWorker",
    ),
    System(
        "rq_fork",
        "RQ Worker, fork per job (Redis)",
        "peer",
        500,
        200,
        1,
        "rq worker (forks a work horse per job)",
    ),
]


def redis_broker_available() -> bool:
    """Whether this checkout has Conveyor's Redis broker yet."""
    probe = subprocess.run(
        [SYSTEMS[0].python(), "-c", "import conveyor.core.brokers.redis"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    return probe.returncode == 0


def select(only: list[str] | None) -> list[System]:
    chosen = []
    for system in SYSTEMS:
        if only and not any(
            system.name == o or system.name.startswith(o + "_") or system.name.startswith(o)
            for o in only
        ):
            continue
        chosen.append(system)
    return chosen


# --- scratch space ---------------------------------------------------------------------------

_counter = itertools.count(1)


@dataclass
class Scratch:
    redis_url: str | None = None
    pg_url: str | None = None
    sqlite_url: str | None = None


@contextmanager
def scratch(system: System, phase: str) -> Iterator[Scratch]:
    """Fresh servers' space for one phase of one system, removed afterwards."""
    space = Scratch()
    redis_db = None
    pg_name = None
    tmp = None
    try:
        if system.is_peer or system.redis_broker:
            redis_db = _claim_redis_db()
            space.redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
        if system.pg:
            pg_name = f"bench_{system.name}_{phase}_{os.getpid()}_{next(_counter)}"
            _pg_admin(f'CREATE DATABASE "{pg_name}"')
            space.pg_url = f"{PG_BASE}/{pg_name}"
        if system.sqlite:
            tmp = tempfile.mkdtemp(prefix=f"bench_{system.name}_")
            space.sqlite_url = f"sqlite:///{tmp}/conveyor.db"
        yield space
    finally:
        if redis_db is not None:
            _redis(redis_db).flushdb()
        if pg_name is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _redis(db: int):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)


def _claim_redis_db() -> int:
    for db in REDIS_DBS:
        client = _redis(db)
        # Only an empty database is ours to use, and so ours to flush afterwards.
        if client.dbsize() == 0 and client.set(OWNER_KEY, os.getpid(), nx=True):
            return db
    raise RuntimeError(f"no empty Redis database among {list(REDIS_DBS)} on {REDIS_HOST}")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def server_versions() -> dict[str, str]:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    info = _redis(0).info("server")
    return {"postgresql": str(pg).split()[0], "redis": str(info.get("redis_version"))}
