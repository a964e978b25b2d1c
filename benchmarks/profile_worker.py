"""Profile one Conveyor worker draining noop jobs, with py-spy (all threads, native time).

    .venv/bin/python benchmarks/profile_worker.py [--jobs 50000] [--redis] [--sqlite]

Prefills a scratch database (dropped afterwards), runs one burst worker under
`py-spy record --format raw` and prints the hottest functions by own time and by inclusive
time, per thread. py-spy comes from benchmarks/.peers (setup_peers.sh does not install it:
`benchmarks/.peers/bin/pip install py-spy`), or from PATH.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import systems as sysmod
from bench_conveyor import WORKER_CODE, prefill, sql_one

import conveyor


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--redis", action="store_true", help="Redis dispatch, PostgreSQL record")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (Python CPU)"
    )
    parser.add_argument("--out", type=Path, default=sysmod.HERE / "results" / "profile.raw")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy", path=f"{sysmod.PEERS_VENV / 'bin'}:{os.environ['PATH']}")
    if not pyspy:
        raise SystemExit("py-spy not found: benchmarks/.peers/bin/pip install py-spy")
    name = "conveyor_sqlite" if args.sqlite else "conveyor_redis" if args.redis else "conveyor_pg"
    system = next(s for s in sysmod.SYSTEMS if s.name == name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with sysmod.scratch(system, "profile") as space:
        url = space.pg_url or space.sqlite_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(
            CONVEYOR_DATABASE_URL=str(url), BENCH_CONCURRENCY=str(args.concurrency), BENCH_BURST="1"
        )
        if args.redis:
            env["CONVEYOR_BROKER_URL"] = str(space.redis_url)
        app = conveyor.Conveyor(str(url), space.redis_url if args.redis else None)
        prefill(app, args.jobs)
        began = time.perf_counter()
        subprocess.run(
            [
                pyspy,
                "record",
                "--format",
                "raw",
                "--threads",
                "--rate",
                str(args.rate),
                "--nonblocking",
                *(["--gil"] if args.gil else []),
                "-o",
                str(args.out),
                "--",
                sys.executable,
                "-c",
                WORKER_CODE,
            ],
            env=env,
            check=True,
            timeout=900,
            capture_output=True,
        )
        wall = time.perf_counter() - began
        done, first, last = sql_one(
            app,
            "SELECT count(*), min(started_at), max(finished_at) FROM jobs "
            "WHERE status = 'succeeded'",
        )
        app.close()
    print(
        f"{name}: {done} jobs, {done / (last - first):,.0f} jobs/s under py-spy "
        f"({wall:.1f}s with start-up)"
    )
    print(summarize(args.out, args.top))
    return 0


def summarize(path: Path, top: int) -> str:
    """Own and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = startup = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if any("_find_and_load" in f for f in frames):
            startup += count  # importing at start-up, not the steady state
            continue
        total += count
        threads[frames[0]] += count
        names = [_short(f) for f in frames[1:]]
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    out = [
        f"{total} samples in the steady state (CPU only, all threads); "
        f"{startup} more while importing at start-up",
        "",
        "by thread:",
    ]
    out += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common(8)]
    out += ["", "own time:"]
    out += [f"  {100 * c / total:5.1f}%  {n}" for n, c in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * c / total:5.1f}%  {n}" for n, c in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"; keeps one line per function.
    func, _, where = frame.partition(" (")
    module = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(module).parts
    keep = (
        "/".join(parts[-3:])
        if "site-packages" not in parts
        else "/".join(parts[parts.index("site-packages") + 1 :][:2])
    )
    return f"{func} ({keep})"


if __name__ == "__main__":
    sys.exit(main())
