"""Shared helpers of the side-by-side benchmark, importable from any of its virtualenvs.

Standard library only: the Conveyor driver runs in the project's .venv and each peer's driver
in benchmarks/.peers (or .peers-arq), so nothing here may import a queue library. Redis and
psycopg are imported lazily by the few helpers that talk to a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "BENCH_RESULT "

#: Redis keys where the noop tasks of the peers leave their timestamps.
FIRST_KEY = "bench:first"
LAST_KEY = "bench:last"
WARM_KEY = "bench:warm"
LATENCY_KEY = "bench:latency"


# --- results -------------------------------------------------------------------------------


def emit(**values: Any) -> None:
    """Hand measured values back to run.py (one JSON line on stdout)."""
    print(RESULT_PREFIX + json.dumps(values), flush=True)


def parse_results(stdout: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            found.update(json.loads(line[len(RESULT_PREFIX) :]))
    return found


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


# --- processes -----------------------------------------------------------------------------


def start(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a worker in a session of its own, so that it and only the children it forks can
    be stopped by its process-group id."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the child
    try:
        return subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def _die_with_parent() -> None:
    # Linux: the worker gets SIGTERM if the driver that started it dies, even by SIGKILL,
    # so that an interrupted benchmark leaves nothing running.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stop(procs: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM each process group we started, then SIGKILL what is left after `grace`."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    for proc in procs:
        # The group may still hold forked children even when the leader is gone.
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def wait_until(check: Callable[[], Any], timeout: float, every: float = 0.01) -> Any:
    """Poll `check` until it returns something truthy; raises TimeoutError past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:g}s")
        time.sleep(every)


def wait_all(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.wait(max(0.1, deadline - time.monotonic()))


def rss_mib(pid: int) -> float | None:
    """Resident set size of one process, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the peers' marker protocol ----------------------------------------------------------


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def record_marker(client: Any, mark: str | None, t0: float | None) -> None:
    """Called by a peer's noop task: stamp the first/last job, or a pickup latency."""
    now = time.time()
    if mark == "first":
        client.set(FIRST_KEY, repr(now), nx=True)
    elif mark == "last":
        client.set(LAST_KEY, repr(now))
    elif mark == "warm":
        client.set(WARM_KEY, repr(now))
    if t0 is not None:
        client.rpush(LATENCY_KEY, repr(now - t0))


def markers_for(count: int) -> list[str | None]:
    """The mark of each of `count` prefilled jobs: the first and the last are stamped."""
    marks: list[str | None] = [None] * count
    marks[0] = "first"
    marks[-1] = "last"
    return marks


def processing_rate(client: Any, count: int, timeout: float) -> dict[str, float]:
    """Wait for the last prefilled job, then derive jobs/s between the first and last start."""
    wait_until(lambda: client.get(LAST_KEY), timeout, every=0.02)
    first = float(client.get(FIRST_KEY))
    last = float(client.get(LAST_KEY))
    return {"jobs": count, "seconds": last - first, "rate": rate(count - 1, last - first)}


def latency_stats(samples: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "latency_p50_ms": percentile(ms, 50),
        "latency_p99_ms": percentile(ms, 99),
        "latency_samples": len(ms),
    }


def paced(count: int, interval: float) -> Any:
    """Yield `count` times, one every `interval` seconds (on a fixed schedule, no drift)."""
    start_at = time.monotonic()
    for index in range(count):
        delay = start_at + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield index


def python_of(venv: Path) -> str:
    return str(venv / "bin" / "python")


def this_python() -> str:
    return sys.executable
