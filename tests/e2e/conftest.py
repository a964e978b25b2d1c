"""Fixtures for driving the `conveyor` command as a user would: each call a subprocess."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

from harness import FAST_ENV, Processes, fresh_database, run_cli, subprocess_env  # noqa: E402

Cli = Callable[..., CompletedProcess[str]]


def make_cli(env: dict[str, str], cwd: Path) -> Cli:
    def cli(*args: str, extra_env: dict[str, str] | None = None, timeout: float = 60):
        return run_cli(list(args), {**env, **(extra_env or {})}, timeout=timeout, cwd=cwd)

    return cli


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite file; no other CONVEYOR_* setting leaks in from the caller's shell."""
    return subprocess_env(f"sqlite:///{tmp_path / 'conveyor.db'}", COLUMNS="200", **FAST_ENV)


@pytest.fixture
def cli(sqlite_env: dict[str, str], tmp_path: Path) -> Cli:
    """`cli("submit", "echo")` runs `conveyor submit echo` on the test's SQLite file."""
    return make_cli(sqlite_env, tmp_path)


@pytest.fixture
def pg_env() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database (no schema yet), dropped afterwards."""
    with fresh_database("conveyor_e2e") as url:
        yield subprocess_env(url, COLUMNS="200", **FAST_ENV)


@pytest.fixture
def pg_cli(pg_env: dict[str, str], tmp_path: Path) -> Cli:
    return make_cli(pg_env, tmp_path)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Processes]]:
    """Background `conveyor` processes; every one is stopped by its PID at teardown."""
    made: list[Processes] = []

    def start(env: dict[str, str]) -> Processes:
        group = Processes(env, tmp_path / f"logs-{len(made)}")
        made.append(group)
        return group

    yield start
    for group in made:
        group.stop_all()
