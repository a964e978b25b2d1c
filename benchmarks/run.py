"""Side-by-side benchmark: Conveyor and its peers, in one run, on the same Redis and PostgreSQL.

    .venv/bin/python benchmarks/run.py                 # 3 repeats, prints the table
    .venv/bin/python benchmarks/run.py --quick         # 1 repeat, fewer jobs
    .venv/bin/python benchmarks/run.py --only conveyor,saq,huey
    .venv/bin/python benchmarks/run.py --memory        # worker RSS at 10k vs 100k jobs

Each phase of each system runs in a fresh subprocess (Conveyor's driver in .venv, the peers'
in benchmarks/.peers, arq's in benchmarks/.peers-arq; `bash benchmarks/setup_peers.sh` makes
them and run.py calls it when they are missing) against its own PostgreSQL database and Redis
database number, both removed afterwards. Workers are subprocesses, stopped by process group.
Nothing here asserts a target: it measures and prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import report
import systems as sysmod
from systems import HERE, ROOT, System

RESULTS = HERE / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat and fewer jobs")
    parser.add_argument("--only", help="comma-separated systems or families (conveyor,saq,rq)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="measure Conveyor worker RSS after 10k and after --memory-jobs",
    )
    parser.add_argument("--memory-jobs", type=int, default=100_000)
    parser.add_argument(
        "--interval",
        type=float,
        default=0.02,
        help="seconds between submissions in the latency phase",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per phase, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    chosen = sysmod.select(only)
    if any(s.redis_broker for s in chosen) and not sysmod.redis_broker_available():
        say("conveyor.core.brokers.redis is not importable here: Redis dispatch left out")
        chosen = [s for s in chosen if not s.redis_broker]
    if args.memory:
        chosen = [s for s in chosen if not s.is_peer]
        if not only:
            chosen = [s for s in chosen if not s.sqlite]
    if any(s.is_peer for s in chosen):
        ensure_peers()
    if not chosen:
        say("nothing selected")
        return 2

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logs").mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    snapshot = snapshot_source()
    args.conveyor_path = str(snapshot)
    try:
        return measure(args, chosen, repeats, started)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def measure(
    args: argparse.Namespace, chosen: list[System], repeats: int, started: dt.datetime
) -> int:
    header = describe(args, repeats)
    say(header)
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in chosen}
    errors: list[str] = []
    loads: list[float] = []
    for rep in range(repeats):
        for system in chosen:
            values: dict[str, Any] = {}
            for phase, extra in phases(system, args):
                loads.append(os.getloadavg()[0])
                say(f"[{rep + 1}/{repeats}] {system.name} {phase} {' '.join(extra)}")
                try:
                    values.update(run_phase(system, phase, extra, args))
                except PhaseFailed as exc:
                    errors.append(f"{system.name} {phase}: {exc}")
                    say(f"  FAILED: {exc}")
            say(f"  {json.dumps(values)}")
            runs[system.name].append(values)

    rows = {name: report.medians(values) for name, values in runs.items() if values}
    body = report.memory_table(rows, chosen) if args.memory else report.table(rows, chosen)
    load_note = (
        f"Load average (1 min) at the start of the phases: median {harness.median(loads):.2f}, "
        f"max {max(loads):.2f} ({os.cpu_count()} cores, shared with anything else running)."
    )
    text = "\n".join([header, "", body, "", load_note, "", "Settings:", report.settings(chosen)])
    if errors:
        text += "\n\nFailed phases:\n" + "\n".join(f"- {e}" for e in errors)
    print(text)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{'memory' if args.memory else 'run'}-{stamp}.json"
    out.write_text(
        json.dumps(
            {"header": header, "runs": runs, "medians": rows, "loads": loads, "errors": errors},
            indent=2,
        )
    )
    say(f"raw results: {out.relative_to(ROOT)}")
    return 1 if errors else 0


def phases(system: System, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    jobs = system.quick_jobs if args.quick else system.jobs
    if args.memory:
        return [("memory", ["--jobs", str(args.memory_jobs)])]
    one = "200" if args.quick else "1000"
    latency_jobs = "50" if args.quick else "200"
    return [
        ("submit", ["--one", one, "--jobs", "10000"]),
        ("process", ["--jobs", str(jobs), "--workers", "1"]),
        ("process", ["--jobs", str(jobs), "--workers", "2"]),
        ("latency", ["--latency-jobs", latency_jobs, "--interval", str(args.interval)]),
    ]


class PhaseFailed(Exception):
    pass


def run_phase(
    system: System, phase: str, extra: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    log = RESULTS / "logs" / f"{system.name}-{phase}.log"
    common = [
        "--concurrency",
        str(system.concurrency),
        "--timeout",
        str(args.timeout),
        "--log",
        str(log),
        *extra,
    ]
    with sysmod.scratch(system, phase) as space:
        if system.is_peer:
            argv = [
                system.python(),
                str(HERE / "peers" / "driver.py"),
                system.name,
                phase,
                "--redis-url",
                str(space.redis_url),
            ]
            if space.pg_url:
                argv += ["--pg-url", space.pg_url]
        else:
            argv = [
                system.python(),
                str(HERE / "bench_conveyor.py"),
                phase,
                "--database-url",
                str(space.pg_url or space.sqlite_url),
            ]
            if system.redis_broker:
                argv += ["--broker-url", str(space.redis_url)]
        env = clean_env()
        if not system.is_peer:
            # Every phase imports the same Conveyor: the copy of src/ taken at start.
            env["PYTHONPATH"] = args.conveyor_path
        proc = subprocess.Popen(
            argv + common,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
            env=env,
        )
        try:
            out, err = proc.communicate(timeout=args.timeout + 120)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the driver unwinds and stops its workers
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            raise PhaseFailed(f"timed out after {args.timeout + 120:g}s") from None
    found = harness.parse_results(out)
    if proc.returncode != 0 or not found:
        tail = (err or out).strip().splitlines()[-1:] or ["no output"]
        raise PhaseFailed(f"exit {proc.returncode}: {tail[0][:300]}")
    return found


def clean_env() -> dict[str, str]:
    # The drivers choose their own servers; nothing from the caller's Conveyor settings leaks in.
    return {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


def snapshot_source() -> Path:
    """Copy src/ once, so that commits landing during a long run do not change what is
    measured halfway (the copy is the working tree as it was at start)."""
    target = Path(tempfile.mkdtemp(prefix="bench_src_"))
    shutil.copytree(
        ROOT / "src" / "conveyor",
        target / "conveyor",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return target


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def ensure_peers() -> None:
    wanted = [sysmod.PEERS_VENV, sysmod.ARQ_VENV]
    if all((venv / "bin" / "python").exists() for venv in wanted):
        return
    say("peers' virtualenvs missing: running benchmarks/setup_peers.sh")
    subprocess.run(["bash", str(HERE / "setup_peers.sh")], check=True, timeout=1200)


def describe(args: argparse.Namespace, repeats: int) -> str:
    versions = sysmod.server_versions()
    load = os.getloadavg()
    command = "python benchmarks/run.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if sys.argv else [])
    )
    return (
        f"Command: `{command}`  \n"
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; PostgreSQL {versions['postgresql']}, "
        f"Redis {versions['redis']} on 127.0.0.1; load average at start "
        f"{load[0]:.2f}; medians of {repeats} run(s); Conveyor at {code_version()} "
        f"(src/ as it was at start)."
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
