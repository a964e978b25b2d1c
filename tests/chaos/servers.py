"""Private servers for fault tests: a `redis-server` and a PostgreSQL cluster of the test's
own, on free loopback ports, that a test may pause, flush, kill and restart without touching
the shared services. Each is stopped by its PID at the end.

PostgreSQL refuses to run as root, so the cluster runs as the `postgres` user (`runuser`).
`initdb` costs seconds, so it runs once per test session into a template that every cluster
copies.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chaos_handlers
import redis
from harness import FAST_ENV, Processes, read_lines, subprocess_env, wait_for
from sqlalchemy import func, select

import conveyor
from conveyor.core.jobs import Execution, Job
from conveyor.core.store.tables import jobs

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
PG_USER = "postgres"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _poll(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --- Redis -------------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` without persistence: a restart on the same port comes back empty."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A control connection (its own pool) for the test to inspect and break Redis."""
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.starts += 1
        log = (self.workdir / f"redis-{self.starts}.log").open("wb")
        with log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        ping = self.client()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            try:
                return bool(ping.ping())
            except redis.RedisError:
                return False

        try:
            _poll(ready, 10, f"redis-server on port {self.port}")
        finally:
            ping.close()

    def kill(self) -> None:
        """SIGKILL by PID: everything in memory is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


@contextmanager
def private_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- PostgreSQL --------------------------------------------------------------------------


def _as_postgres(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["runuser", "-u", PG_USER, "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}{result.stderr}"
        )
    return result


def _private_tempdir(prefix: str) -> Path:
    # Under /tmp itself: pytest's tmp_path is root's 0700 tree, which postgres cannot enter.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(path, PG_USER, PG_USER)
    return path


_template: Path | None = None


def _template_data_dir() -> Path:
    """A freshly initdb'd data directory, made once per process and removed at exit."""
    global _template
    if _template is None:
        if PG_BIN is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        root = _private_tempdir("conveyor-pg-template-")
        atexit.register(shutil.rmtree, root, True)
        data = root / "data"
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        _template = data
    return _template


class PostgresCluster:
    """A PostgreSQL cluster of its own (fsync off, loopback only, socket in its directory)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = _private_tempdir("conveyor-pg-")
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        _as_postgres("cp", "-a", str(_template_data_dir()), str(self.data))
        _as_postgres("mkdir", str(self.sockets))

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{PG_USER}"

    @property
    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        # fsync off is safe here: a stop, even `immediate`, kills processes, not the OS page
        # cache. synchronous_commit stays on, or a commit a client saw could vanish.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets} "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`pg_ctl stop`; `immediate` is a crash as far as clients can tell."""
        pid = self.pid
        if pid is None or not _pid_alive(pid):
            return
        try:
            _as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            if _pid_alive(pid):  # pg_ctl gave up: end the postmaster by its PID
                os.kill(pid, signal.SIGKILL)
        _poll(lambda: not _pid_alive(pid), 15, f"postmaster {pid} to exit")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


# --- a test's world: both servers, an app, worker processes, and the audit ---------------

#: Lease 2 s, heartbeat 0.5 s, reaper 0.3 s (harness.FAST_ENV) and a reconciler every 0.5 s.
RIG_ENV = {**FAST_ENV, "CONVEYOR_RECONCILE_SECONDS": "0.5"}


@dataclass
class Rig:
    """One fault test's private Redis and PostgreSQL, an app that submits through Redis
    dispatch, and the `conveyor worker` processes it started."""

    redis: RedisServer
    pg: PostgresCluster
    app: conveyor.Conveyor
    procs: Processes
    tmp: Path
    control: redis.Redis  # the test's own connection, to inspect and break Redis

    @property
    def effects(self) -> Path:
        return self.tmp / "effects.txt"

    @property
    def trace(self) -> Path:
        return self.tmp / "trace.jsonl"

    def effect_jobs(self, count: int, **payload: Any) -> list[Job]:
        body = {"effects": str(self.effects), "trace": str(self.trace), **payload}
        return self.app.submit_many([{"type": "chaos_effect", "payload": body}] * count)

    def worker(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.procs.conveyor("worker", "--log-level", "INFO", *args, env=env)

    def counts(self, ids: Sequence[str] | None = None) -> dict[str, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        if ids is not None:
            query = query.where(jobs.c.id.in_(list(ids)))
        with self.app.store.engine.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(query).all()}

    def wait_terminal(self, count: int, timeout: float) -> dict[str, int]:
        """Poll until `count` jobs are terminal; fail with the logs past `timeout`."""

        def done() -> dict[str, int] | None:
            counts = self.counts()
            finished = sum(counts.get(s, 0) for s in ("succeeded", "dead", "cancelled"))
            return counts if finished >= count else None

        return wait_for(
            done,
            timeout,
            f"{count} terminal jobs (now {self.counts()})",
            every=0.2,
            on_timeout=self.diagnostics,
        )

    def diagnostics(self) -> str:
        return (
            f"{self.procs.all_logs()}\n--- redis ---\n{self.redis.log()[-2000:]}"
            f"\n--- postgres ---\n{self.pg.log()[-3000:]}"
        )

    def audit(self, ids: Sequence[str]) -> Audit:
        return audit(self.app, ids, self.effects)


@contextmanager
def rig(tmp: Path, **env: str) -> Iterator[Rig]:
    """Start a private Redis and PostgreSQL; stop every process and server at the end."""
    with private_postgres() as pg, private_redis(tmp / "redis") as server:
        app = conveyor.Conveyor(
            pg.url, broker_url=server.url, plugins=[chaos_handlers], entry_points=False
        )
        app.store.migrate()  # once, before workers start together and race to create it
        worker_env = subprocess_env(
            pg.url, plugins="chaos_handlers", **RIG_ENV, CONVEYOR_BROKER_URL=server.url, **env
        )
        procs = Processes(worker_env, tmp / "logs")
        control = server.client()
        try:
            yield Rig(redis=server, pg=pg, app=app, procs=procs, tmp=tmp, control=control)
        finally:
            procs.stop_all()
            app.close()
            control.close()


@dataclass
class Audit:
    """What the effects file, the ledger and the jobs say about side effects."""

    jobs: dict[str, Job]
    duplicated: list[str] = field(default_factory=list)  # effect lines written twice
    strays: list[str] = field(default_factory=list)  # lines that belong to no job
    missing: list[str] = field(default_factory=list)  # succeeded jobs without a line
    # job -> the attempt that began the effect and never marked it done (None if unlogged)
    uncertain: dict[str, Execution | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def unexplained_missing(self) -> list[str]:
        """Missing effects not reported as uncertain: the one thing that must never be."""
        return [job_id for job_id in self.missing if job_id not in self.uncertain]


def audit(app: conveyor.Conveyor, ids: Sequence[str], effects_file: Path) -> Audit:
    """Check every `chaos_effect` job against the effects file and the ledger.

    A `done` key must have exactly one line; an `uncertain` key zero or one, and must be
    listed in the job's `uncertain_effects`; no line may appear twice."""
    found = {job.id: job for job in app.store.get_many(list(ids), with_executions=True)}
    result = Audit(jobs=found)
    lines = Counter(read_lines(effects_file))
    result.duplicated = sorted(k for k, n in lines.items() if n > 1)
    result.strays = sorted(k for k in lines if k not in found)
    ledger = {row["job_id"]: row for row in app.store.effects_of(list(ids))}
    for job_id, job in found.items():
        row = ledger.get(job_id)
        written = lines.get(job_id, 0)
        if job.status == "succeeded" and not written:
            result.missing.append(job_id)
        if row is None:
            if job.status == "succeeded" or written:
                result.problems.append(f"{job_id} ({job.status}, {written} line) has no ledger key")
            continue
        key = f"effect:{job_id}"
        if row["state"] == "done":
            if written != 1:
                result.problems.append(f"{job_id}: key done but {written} line(s)")
        elif row["state"] == "uncertain":
            began = next((e for e in job.executions if e.attempt == row["attempt"]), None)
            result.uncertain[job_id] = began
            reported = (job.result or {}).get("uncertain_effects", [])
            if job.status == "succeeded" and key not in reported:
                result.problems.append(f"{job_id}: uncertain effect not in its result")
        elif job.terminal:
            result.problems.append(f"{job_id} is {job.status} with its key {row['state']}")
    return result
