"""Runs one benchmark phase for Conveyor, in the project's .venv; run.py calls it.

    python benchmarks/bench_conveyor.py PHASE --database-url URL [--broker-url redis://...]

Phases: `submit` (`app.submit` one by one, then one `app.submit_many`), `process` (prefill,
`--workers` burst worker processes, jobs/s from the first claim to the last durable
completion, read from the job rows), `latency` (one idle worker, one job every `--interval`
seconds, submit call to claim) and `memory` (one worker's RSS after 10k and after `--jobs`
processed jobs). Workers are subprocesses running the built-in async `noop` handler.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

import conveyor

SUBMIT_CHUNK = 10_000

WORKER_CODE = (
    "import asyncio, os, conveyor\n"
    "app = conveyor.Conveyor()\n"
    "worker = app.worker(concurrency=int(os.environ['BENCH_CONCURRENCY']),\n"
    "                    burst=os.environ.get('BENCH_BURST') == '1')\n"
    "asyncio.run(worker.run())\n"
    "app.close()\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["submit", "process", "latency", "memory"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--broker-url")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--one", type=int, default=1000, help="jobs submitted one by one")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    # run.py stops a driver that overruns with SIGTERM: unwind so `finally` stops the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    os.environ["CONVEYOR_DATABASE_URL"] = args.database_url
    if args.broker_url:
        os.environ["CONVEYOR_BROKER_URL"] = args.broker_url
    else:
        os.environ.pop("CONVEYOR_BROKER_URL", None)
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    app = conveyor.Conveyor(args.database_url, args.broker_url)
    try:
        {"submit": submit, "process": process, "latency": latency, "memory": memory}[args.phase](
            app, args
        )
    finally:
        app.close()


def submit(app: conveyor.Conveyor, args: argparse.Namespace) -> None:
    app.submit("noop")  # first use: connections, prepared statements
    began = time.perf_counter()
    for _ in range(args.one):
        app.submit("noop")
    harness.emit(submit_one=harness.rate(args.one, time.perf_counter() - began))
    jobs = [{"type": "noop"} for _ in range(args.jobs)]
    began = time.perf_counter()
    app.submit_many(jobs)
    harness.emit(submit_bulk=harness.rate(args.jobs, time.perf_counter() - began))


def prefill(app: conveyor.Conveyor, count: int) -> None:
    for start in range(0, count, SUBMIT_CHUNK):
        app.submit_many([{"type": "noop"}] * min(SUBMIT_CHUNK, count - start))


def start_worker(args: argparse.Namespace, burst: bool) -> Any:
    return harness.start(
        [sys.executable, "-c", WORKER_CODE],
        env={"BENCH_BURST": "1" if burst else "0"},
        log=args.log,
    )


def process(app: conveyor.Conveyor, args: argparse.Namespace) -> None:
    prefill(app, args.jobs)
    procs = [start_worker(args, burst=True) for _ in range(args.workers)]
    try:
        harness.wait_all(procs, args.timeout)
    finally:
        harness.stop(procs)
    row = sql_one(
        app,
        "SELECT count(*), min(started_at), max(finished_at) FROM jobs WHERE status = 'succeeded'",
    )
    done, first, last = row
    if done != args.jobs:
        raise SystemExit(f"only {done} of {args.jobs} jobs succeeded")
    harness.emit(**{f"process_{args.workers}": harness.rate(done, last - first)})


def latency(app: conveyor.Conveyor, args: argparse.Namespace) -> None:
    procs = [start_worker(args, burst=False)]
    try:
        warm = app.submit("noop")
        app.wait(warm.id, 60)
        called: dict[str, float] = {}
        returned: dict[str, float] = {}
        for _ in harness.paced(args.latency_jobs, args.interval):
            t0 = time.time()
            job_id = app.submit("noop").id
            called[job_id], returned[job_id] = t0, time.time()
        ids = list(called)
        harness.wait_until(lambda: succeeded(app, ids) >= len(ids), args.timeout, every=0.05)
    finally:
        harness.stop(procs)
    started = dict(sql_all(app, "SELECT id, started_at FROM jobs WHERE status = 'succeeded'"))
    harness.emit(**harness.latency_stats([started[i] - called[i] for i in ids]))
    # The same, counted from when submit returned (its commit done): how much is dispatch.
    after = harness.latency_stats([started[i] - returned[i] for i in ids])
    harness.emit(
        after_commit_p50_ms=after["latency_p50_ms"],
        after_commit_p99_ms=after["latency_p99_ms"],
        submit_call_p50_ms=harness.percentile([(returned[i] - called[i]) * 1000 for i in ids], 50),
    )


def memory(app: conveyor.Conveyor, args: argparse.Namespace) -> None:
    """RSS of one long-running worker after 10k and after `--jobs` processed jobs."""
    prefill(app, args.jobs)
    proc = start_worker(args, burst=False)
    checkpoints = sorted({min(10_000, args.jobs), args.jobs})
    seen: dict[int, float] = {}
    deadline = time.monotonic() + args.timeout
    try:
        while len(seen) < len(checkpoints) and time.monotonic() < deadline:
            done = sql_one(app, "SELECT count(*) FROM jobs WHERE status = 'succeeded'")[0]
            rss = harness.rss_mib(proc.pid)
            for mark in checkpoints:
                if done >= mark and mark not in seen and rss is not None:
                    seen[mark] = rss
            time.sleep(0.25)
    finally:
        harness.stop([proc])
    if len(seen) < len(checkpoints):
        raise SystemExit(f"memory: reached only {sorted(seen)} of {checkpoints}")
    low, high = seen[checkpoints[0]], seen[checkpoints[-1]]
    harness.emit(
        rss_10k_mib=low,
        rss_end_mib=high,
        rss_end_jobs=args.jobs,
        rss_growth_pct=(high - low) / low * 100,
    )


def succeeded(app: conveyor.Conveyor, ids: list[str]) -> int:
    return sum(1 for job in app.store.get_many(ids) if job.status == "succeeded")


def sql_one(app: conveyor.Conveyor, sql: str) -> Any:
    from sqlalchemy import text

    with app.store.engine.connect() as conn:
        return conn.execute(text(sql)).one()


def sql_all(app: conveyor.Conveyor, sql: str) -> list[Any]:
    from sqlalchemy import text

    with app.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


if __name__ == "__main__":
    main()
