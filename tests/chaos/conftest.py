"""Fixtures for fault tests: a fresh PostgreSQL database per test, subprocess workers with
shrunk lease/heartbeat/reaper intervals, each process stopped by its PID at teardown."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

import fault_handlers  # noqa: E402
from harness import FAST_ENV, Processes, fresh_database, subprocess_env  # noqa: E402

import conveyor  # noqa: E402


@dataclass
class Chaos:
    """One fault test's world: the database, an app to submit and inspect, the processes."""

    url: str
    app: conveyor.Conveyor
    procs: Processes
    tmp: Path

    @property
    def effects(self) -> Path:
        return self.tmp / "effects.txt"

    @property
    def trace(self) -> Path:
        return self.tmp / "trace.jsonl"


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    # A database per test, so that no worker of one test can see another test's jobs.
    with fresh_database("conveyor_chaos") as url:
        app = conveyor.Conveyor(url, plugins=[fault_handlers], entry_points=False)
        app.store.migrate()  # before several workers start at once and race to create it
        env = subprocess_env(url, plugins="fault_handlers", **FAST_ENV)
        procs = Processes(env, tmp_path / "logs")
        try:
            yield Chaos(url=url, app=app, procs=procs, tmp=tmp_path)
        finally:
            procs.stop_all()
            app.close()
