"""Worker processes dying, freezing and being killed by their own jobs, under Redis dispatch.

Each test has its own `redis-server` and PostgreSQL cluster (tests/chaos/servers.py) and real
`conveyor worker` processes with lease 2 s, heartbeat 0.5 s, reaper 0.3 s, reconcile 0.5 s.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import read_lines, read_trace, wait_for
from servers import Rig, rig

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(90)]

STORM_JOBS = 2000
STORM_WORKERS = 4


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Rig]:
    # No job may end dead just because the storm hit it often: the cap has its own test.
    with rig(tmp_path, CONVEYOR_MAX_CRASH_RECOVERIES="20") as started:
        yield started


def events(world: Rig, event: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in read_trace(world.trace)
        if e["event"] == event and all(e.get(k) == v for k, v in match.items())
    ]


def ran_by(worker_id: str | None, proc: subprocess.Popen[bytes]) -> bool:
    """Worker ids read host:pid:suffix."""
    return worker_id is not None and f":{proc.pid}:" in worker_id


def exit_code(world: Rig, proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"pid {proc.pid} still running after {timeout:g}s\n{world.procs.log_of(proc)}"
        ) from None


def test_sigkill_storm_over_two_thousand_jobs_loses_and_repeats_nothing(world):
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    ids = [job.id for job in world.effect_jobs(STORM_JOBS, work=0.1)]
    alive = [world.worker("--concurrency", "8") for _ in range(STORM_WORKERS)]
    killed: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    deadline = started + 75
    # Kill for 25 s at most and while most of the work is still ahead, so kills land inside
    # handlers; only workers already running jobs (a start-up takes seconds on a busy host).
    while (
        world.counts().get("succeeded", 0) < STORM_JOBS * 0.85 and time.monotonic() - started < 25
    ):
        time.sleep(chance.uniform(1.0, 2.5))
        working = {e["pid"] for e in events(world, "started")}
        candidates = [proc for proc in alive if proc.pid in working]
        if not candidates:
            continue
        victim = chance.choice(candidates)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL, world.procs.log_of(victim)
        alive.remove(victim)
        killed.append(victim)
        alive.append(world.worker("--concurrency", "8"))
        for proc in alive:  # the survivors never crash on their own
            assert proc.poll() is None, world.procs.log_of(proc)
    storm = time.monotonic() - started
    counts = world.wait_terminal(STORM_JOBS, max(5.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - started

    assert counts == {"succeeded": STORM_JOBS}, f"seed {seed}"
    result = world.audit(ids)
    assert result.duplicated == [], f"effects ran twice (seed {seed}): {result.duplicated}"
    assert result.strays == [] and result.problems == [], (result.strays, result.problems)
    # Missing only where a killed worker died inside the effect, and then reported.
    assert result.unexplained_missing == []
    for job_id, began in result.uncertain.items():
        assert began is not None and began.outcome == "lease_expired", (job_id, began)
        assert any(ran_by(began.worker, proc) for proc in killed), (job_id, began.worker)
    # Attempts: crashes first, then the one that succeeded; each counted and logged.
    rescued = 0
    for job in result.jobs.values():
        outcomes = [e.outcome for e in job.executions]
        assert outcomes[-1] == "succeeded" and set(outcomes[:-1]) <= {"lease_expired"}, outcomes
        assert job.attempts == len(outcomes)
        rescued += job.attempts > 1
    assert len(killed) >= 4 and rescued > 0
    print(
        f"\nseed {seed}: {len(killed)} SIGKILLs over {storm:.1f}s, {STORM_JOBS} jobs done in "
        f"{elapsed:.1f}s; {rescued} rescued, {len(result.uncertain)} uncertain effects "
        f"({len(result.missing)} missing)"
    )


def test_ids_a_dead_worker_popped_but_never_claimed_run_one_lease_later(world):
    worker = world.worker("--concurrency", "2")
    wait_for(
        lambda: world.control.exists("conveyor:epoch"),
        20,
        "the first reconcile",
        on_timeout=world.diagnostics,
    )
    # A worker popped two ids from Redis, claimed one, and died before claiming the other.
    # Written inside our own transaction, neither is pushed; due a minute ago, the lost one
    # is older than any sweep window, so only a full reconcile pass can find it again.
    body = {"effects": str(world.effects), "trace": str(world.trace)}
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with world.app.store.engine.begin() as conn:
        held = world.app.submit("chaos_effect", body, connection=conn)
        lost = world.app.submit("chaos_effect", body, connection=conn, run_at=a_minute_ago)
    died_at = time.monotonic()
    assert [job.id for job in world.app.store.claim_ids([held.id], "ghost:1:0", 2.0)] == [held.id]

    # Its expired lease tells the reaper a worker died, which asks for a full pass at once
    # (rather than at the periodic one, a minute apart at the least).
    done = world.app.wait(lost.id, timeout=20)
    waited = time.monotonic() - died_at
    assert (done.status, done.attempts) == ("succeeded", 1)
    assert waited < 8, f"the lost id waited {waited:.1f}s (lease 2 s, reconcile 0.5 s)"
    rescued = world.app.wait(held.id, timeout=10)
    assert [e.outcome for e in rescued.executions] == ["lease_expired", "succeeded"]
    assert worker.poll() is None
    print(f"\nthe id a dead worker popped ran {waited:.1f}s after its death (lease 2 s)")


def test_sigstop_past_the_lease_then_resumed_its_late_writes_are_fenced_out(world):
    release = world.tmp / "release"
    # The first attempt holds after its effect until released, so it is still running when
    # its frozen worker wakes; the second attempt does not hold.
    job = world.effect_jobs(1, hold=60, hold_attempts=1, release=str(release))[0]
    first = world.worker("--concurrency", "1")
    wait_for(
        lambda: events(world, "effect", job=job.id, attempt=1),
        15,
        "the first attempt's side effect",
        on_timeout=world.diagnostics,
    )
    second = world.worker("--concurrency", "1")

    os.kill(first.pid, signal.SIGSTOP)
    try:
        settled = world.app.wait(job.id, timeout=30)  # rescued, and finished by `second`
    finally:
        os.kill(first.pid, signal.SIGCONT)
    # The resumed worker heartbeats a lease it lost: refused, and it says so...
    wait_for(
        lambda: "lost the lease on job" in world.procs.log_of(first),
        10,
        "the resumed worker's heartbeat to be refused",
        on_timeout=world.diagnostics,
    )
    # ...then its stale attempt returns, and a graceful stop flushes that completion.
    release.touch()
    wait_for(
        lambda: events(world, "returned", job=job.id, attempt=1, pid=first.pid),
        10,
        "the resumed worker to finish its stale attempt",
        on_timeout=world.diagnostics,
    )
    os.kill(first.pid, signal.SIGTERM)
    assert exit_code(world, first, 15) == 0

    done = world.app.get(job.id)
    assert done.to_dict() == settled.to_dict()  # nothing the stale worker wrote got in
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert done.result == {"pid": second.pid, "attempt": 2}
    assert [(e.attempt, e.outcome) for e in done.executions] == [
        (1, "lease_expired"),
        (2, "succeeded"),
    ]
    assert ran_by(done.executions[0].worker, first)
    assert ran_by(done.executions[1].worker, second)
    assert read_lines(world.effects) == [job.id]
    assert [e["first"] for e in events(world, "effect", job=job.id)] == [True, False]


def test_a_poison_pill_ends_dead_after_the_crash_cap(world):
    env = {**world.procs.env, "CONVEYOR_MAX_CRASH_RECOVERIES": "2"}
    poison = world.app.submit("chaos_poison", {"trace": str(world.trace)}, priority="high")
    others = [job.id for job in world.effect_jobs(3)]

    deaths = 0
    worker = None
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline and deaths < 6:
        worker = world.worker("--concurrency", "1", env=env)

        def settled(proc: subprocess.Popen[bytes] = worker) -> bool:
            return proc.poll() is not None or world.app.get(poison.id).status == "dead"

        wait_for(
            settled,
            max(1.0, deadline - time.monotonic()),
            "a crash or a dead job",
            every=0.1,
            on_timeout=world.diagnostics,
        )
        if worker.poll() is None:
            break  # the pill is dead and this worker lives on
        assert worker.returncode == -signal.SIGKILL, world.procs.log_of(worker)
        deaths += 1

    dead = world.app.get(poison.id)
    assert dead.status == "dead", world.diagnostics()
    assert deaths == 3  # cap 2: the third crash is one too many
    assert dead.attempts == 3
    assert [(e.attempt, e.outcome) for e in dead.executions] == [
        (1, "lease_expired"),
        (2, "lease_expired"),
        (3, "lease_expired"),
    ]
    assert "lease expired" in (dead.error or "")
    assert len(events(world, "started", job=poison.id)) == 3

    # The survivor serves on: the other jobs succeed, each effect once.
    world.wait_terminal(4, 20)
    result = world.audit(others)
    assert {job.status for job in result.jobs.values()} == {"succeeded"}
    assert result.duplicated == [] and result.missing == [] and result.problems == []
    assert worker is not None and worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    assert exit_code(world, worker, 15) == 0
