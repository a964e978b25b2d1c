"""Test harness for tests that drive Conveyor as separate processes (chaos and e2e).

Importable from the test process (the chaos and e2e conftests put this folder on sys.path)
and deliberately free of pytest: fresh PostgreSQL databases, the environment a subprocess
worker needs, a process group that is always stopped by PID, and polling with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, text

SUPPORT_DIR = Path(__file__).resolve().parent
PG_ADMIN_URL = os.environ.get(
    "CONVEYOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

#: Shrunk intervals so that a lost worker is noticed in about two seconds.
FAST_ENV = {
    "CONVEYOR_LEASE_SECONDS": "2",
    "CONVEYOR_HEARTBEAT_SECONDS": "0.5",
    "CONVEYOR_REAPER_SECONDS": "0.3",
    "CONVEYOR_RETRY_BASE_SECONDS": "0.05",
    "CONVEYOR_RETRY_MAX_SECONDS": "0.2",
    "CONVEYOR_POLL_SECONDS": "0.2",
}

T = TypeVar("T")


@contextmanager
def fresh_database(prefix: str = "conveyor_t") -> Iterator[str]:
    """A PostgreSQL database of its own, dropped (with any leftover session) afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def subprocess_env(database_url: str, plugins: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `conveyor` subprocess: this interpreter's, minus any CONVEYOR_*
    setting of the caller's shell, plus the database and the support folder on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    path = [str(SUPPORT_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["CONVEYOR_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    if plugins:
        env["CONVEYOR_PLUGINS"] = plugins
    env.update(extra)
    return env


def conveyor_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor", *args]


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one `conveyor` command to completion, capturing its output."""
    return subprocess.run(
        conveyor_argv(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


class Processes:
    """Conveyor processes started by one test; `stop_all` ends each one by its PID."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def conveyor(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.logs / f"proc-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                conveyor_argv(*args),
                env=env or self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started.append((proc, log))
        return proc

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self.conveyor("worker", "--log-level", "INFO", *args)

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        for started, log in self.started:
            if started is proc:
                return log.read_text(errors="replace")
        return ""

    def all_logs(self) -> str:
        return "\n".join(
            f"--- pid {p.pid} (exit {p.poll()}) ---\n{log.read_text(errors='replace')[-4000:]}"
            for p, log in self.started
        )

    def stop_all(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)  # also ends a SIGSTOPped one
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def wait_for(
    probe: Callable[[], T],
    timeout: float,
    what: str,
    every: float = 0.05,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{detail}")
        time.sleep(every)


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def read_trace(path: Path) -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(line) for line in read_lines(path)]
