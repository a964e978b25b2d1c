"""Runs one benchmark phase for one peer, in the peers' virtualenv; run.py calls it.

    python benchmarks/peers/driver.py PEER PHASE --redis-url URL [--pg-url URL] ...

Phases: `submit` (one by one, then bulk where the peer has it), `process` (prefill, start
`--workers` worker processes, jobs/s between the first and the last job's start) and `latency`
(one idle worker, one job every `--interval` seconds, submit-to-start p50/p99).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(PEERS_DIR.parent), str(PEERS_DIR)]

import harness  # noqa: E402

#: name -> (module, class)
PEERS = {
    "rq_simple": ("rq_bench", "Peer"),
    "rq_fork": ("rq_bench", "ForkPeer"),
    "arq": ("arq_bench", "Peer"),
    "saq_redis": ("saq_bench", "Peer"),
    "saq_pg": ("saq_bench", "PgPeer"),
    "dramatiq": ("dramatiq_bench", "Peer"),
    "celery": ("celery_bench", "Peer"),
    "huey": ("huey_bench", "Peer"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("phase", choices=["submit", "process", "latency"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--pg-url")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--one", type=int, default=1000, help="jobs submitted one by one")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    # run.py stops a driver that overruns with SIGTERM: unwind so `finally` stops the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # The task modules read these at import, in this process and in the workers.
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(PEERS_DIR), str(PEERS_DIR.parent), os.environ.get("PYTHONPATH", "")]
    ).rstrip(":")
    module_name, class_name = PEERS[args.peer]
    peer = getattr(importlib.import_module(module_name), class_name)(
        args.redis_url, args.pg_url, args.concurrency
    )
    client = harness.redis_client(args.redis_url)
    try:
        if args.phase == "submit":
            submit(peer, args)
        elif args.phase == "process":
            process(peer, client, args)
        else:
            latency(peer, client, args)
    finally:
        peer.close()


def submit(peer, args) -> None:
    began = time.perf_counter()
    for _ in range(args.one):
        peer.enqueue()
    harness.emit(submit_one=harness.rate(args.one, time.perf_counter() - began))
    if peer.enqueue_bulk is not None:
        marks = [None] * args.jobs
        began = time.perf_counter()
        peer.enqueue_bulk(marks)
        harness.emit(submit_bulk=harness.rate(args.jobs, time.perf_counter() - began))


def prefill(peer, count: int) -> None:
    marks = harness.markers_for(count)
    if peer.enqueue_bulk is not None:
        peer.enqueue_bulk(marks)
        return
    for mark in marks:
        peer.enqueue(mark)


def process(peer, client, args) -> None:
    prefill(peer, args.jobs)
    procs = [
        harness.start(peer.worker_argv(), log=args.log, cwd=PEERS_DIR) for _ in range(args.workers)
    ]
    try:
        measured = harness.processing_rate(client, args.jobs, args.timeout)
    finally:
        harness.stop(procs)
    harness.emit(**{f"process_{args.workers}": measured["rate"]})


def latency(peer, client, args) -> None:
    procs = [harness.start(peer.worker_argv(), log=args.log, cwd=PEERS_DIR)]
    try:
        peer.enqueue("warm")
        harness.wait_until(lambda: client.get(harness.WARM_KEY), 60, every=0.05)
        for _ in harness.paced(args.latency_jobs, args.interval):
            peer.enqueue(None, time.time())
        harness.wait_until(
            lambda: client.llen(harness.LATENCY_KEY) >= args.latency_jobs, args.timeout
        )
        samples = [float(v) for v in client.lrange(harness.LATENCY_KEY, 0, -1)]
    finally:
        harness.stop(procs)
    harness.emit(**harness.latency_stats(samples))


if __name__ == "__main__":
    main()
