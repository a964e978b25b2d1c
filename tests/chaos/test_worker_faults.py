"""Worker faults on PostgreSQL, with real `conveyor worker` processes.

Lease 2 s, heartbeat 0.5 s, reaper 0.3 s (see harness.FAST_ENV). The handlers live in
tests/support/fault_handlers.py; they write their side effect inside `ctx.once` to an effects
file and log each step, with their pid, to a trace file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pytest
from harness import read_lines, read_trace, wait_for
from sqlalchemy import func, select

from conveyor.core.store.tables import jobs as jobs_table

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(90)]


def events(chaos: Any, event: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in read_trace(chaos.trace)
        if e["event"] == event and all(e.get(k) == v for k, v in match.items())
    ]


def await_event(chaos: Any, event: str, what: str, timeout: float = 15, **match: Any) -> Any:
    """Wait until the trace shows `event` (matching `match`); fail with the workers' logs."""
    return wait_for(
        lambda: events(chaos, event, **match), timeout, what, on_timeout=chaos.procs.all_logs
    )


def held_lease_until(chaos: Any, job_id: str) -> float:
    with chaos.app.store.engine.connect() as conn:
        value = conn.execute(
            select(jobs_table.c.lease_until).where(jobs_table.c.id == job_id)
        ).scalar_one()
    assert value is not None, "the job holds no lease"
    return float(value)


def ran_by(worker_id: str | None, proc: subprocess.Popen[bytes]) -> bool:
    """Worker ids read host:pid:suffix."""
    return worker_id is not None and f":{proc.pid}:" in worker_id


def effect_job(chaos: Any, **payload: Any) -> Any:
    body = {"effects": str(chaos.effects), "trace": str(chaos.trace), **payload}
    return chaos.app.submit("fault_effect", body)


def wait_job(chaos: Any, job_id: str, timeout: float = 30) -> Any:
    try:
        return chaos.app.wait(job_id, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{chaos.procs.all_logs()}") from None


def exit_code(chaos: Any, proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"pid {proc.pid} still running after {timeout:g}s\n{chaos.procs.log_of(proc)}"
        ) from None


def test_sigkill_mid_job_another_worker_finishes_it_and_the_effect_happens_once(chaos):
    job = effect_job(chaos, hold=60)  # the first attempt holds its lease until killed
    first = chaos.procs.worker("--concurrency", "1")
    await_event(chaos, "effect", "the first attempt's side effect", job=job.id, attempt=1)
    second = chaos.procs.worker("--concurrency", "1")

    lease_until = held_lease_until(chaos, job.id)  # heartbeats may extend it further still
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL

    done = wait_job(chaos, job.id)
    assert done.status == "succeeded"
    assert done.attempts == 2
    assert done.result == {"pid": second.pid, "attempt": 2}  # no uncertain_effects either
    outcomes = [(e.attempt, e.outcome) for e in done.executions]
    assert outcomes == [(1, "lease_expired"), (2, "succeeded")]
    assert ran_by(done.executions[0].worker, first)
    assert ran_by(done.executions[1].worker, second)
    # The rescue (the lease_expired row's end) waited for the lease to run out.
    assert done.executions[0].finished_at.timestamp() >= lease_until

    ledger = chaos.app.store.effects_of([job.id])
    assert [(r["key"], r["state"], r["attempt"]) for r in ledger] == [
        (f"effect:{job.id}", "done", 1)
    ]
    assert read_lines(chaos.effects) == [job.id]
    assert [e["first"] for e in events(chaos, "effect", job=job.id)] == [True, False]


def test_sigstop_past_the_lease_then_resumed_the_late_completion_is_fenced_out(chaos):
    # Both attempts hold 2.5 s, so the stopped worker resumes while the second one runs.
    job = effect_job(chaos, hold=2.5, hold_attempts=2)
    first = chaos.procs.worker("--concurrency", "1")
    await_event(chaos, "effect", "the first attempt's side effect", job=job.id, attempt=1)
    second = chaos.procs.worker("--concurrency", "1")

    os.kill(first.pid, signal.SIGSTOP)
    try:
        took_over = "the second worker to take the job over"
        await_event(chaos, "started", took_over, job=job.id, attempt=2, pid=second.pid)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    # The resumed worker finishes its stale attempt and tries to record it...
    resumed = "the resumed worker to finish its stale attempt"
    await_event(chaos, "returned", resumed, timeout=10, job=job.id, attempt=1, pid=first.pid)
    # ...and a graceful stop flushes every completion it holds before exiting.
    os.kill(first.pid, signal.SIGTERM)
    assert exit_code(chaos, first, 15) == 0

    done = wait_job(chaos, job.id)
    assert done.status == "succeeded"
    assert done.attempts == 2
    assert done.result == {"pid": second.pid, "attempt": 2}
    assert [(e.attempt, e.outcome) for e in done.executions] == [
        (1, "lease_expired"),
        (2, "succeeded"),
    ]
    assert ran_by(done.executions[0].worker, first)
    assert ran_by(done.executions[1].worker, second)
    # The stale attempt really did finish: only the fence kept its result out.
    assert events(chaos, "returned", job=job.id, attempt=1, pid=first.pid)
    assert read_lines(chaos.effects) == [job.id]


def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest_queued(chaos):
    running = effect_job(chaos, hold=1.5)
    rest = [
        chaos.app.submit("fault_quick", {"trace": str(chaos.trace)}, priority="low")
        for _ in range(3)
    ]
    worker = chaos.procs.worker("--concurrency", "1")
    await_event(chaos, "effect", "the job to start", job=running.id)

    os.kill(worker.pid, signal.SIGTERM)
    assert exit_code(chaos, worker, 15) == 0

    done = chaos.app.get(running.id)
    assert (done.status, done.attempts) == ("succeeded", 1), chaos.procs.log_of(worker)
    assert [e.outcome for e in done.executions] == ["succeeded"]
    for job in rest:
        untouched = chaos.app.get(job.id)
        assert (untouched.status, untouched.attempts, untouched.executions) == ("queued", 0, [])
    assert {e["job"] for e in events(chaos, "started")} == {running.id}


def test_sigterm_releases_a_job_that_outlives_the_grace_period_without_an_attempt(chaos):
    release = chaos.tmp / "release"
    job = effect_job(chaos, hold=60, release=str(release))
    worker = chaos.procs.worker("--concurrency", "1", "--grace-seconds", "1")
    await_event(chaos, "effect", "the job to start", job=job.id)

    stopped_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    assert exit_code(chaos, worker, 15) == 0
    assert time.monotonic() - stopped_at < 8  # the grace period, not the 60 s job
    assert "released 1 unfinished job(s)" in chaos.procs.log_of(worker)

    released = chaos.app.get(job.id)
    assert (released.status, released.attempts, released.executions) == ("queued", 0, [])

    # The next worker runs it as attempt 1, and the ledger keeps the effect single.
    release.touch()
    assert exit_code(chaos, chaos.procs.worker("--burst"), 30) == 0
    done = chaos.app.get(job.id)
    assert (done.status, done.attempts) == ("succeeded", 1)
    assert [(e.attempt, e.outcome) for e in done.executions] == [(1, "succeeded")]
    assert read_lines(chaos.effects) == [job.id]


def test_a_thousand_jobs_across_four_worker_processes_have_each_effect_once(chaos):
    count = 1000
    submitted = chaos.app.submit_many(
        [{"type": "fault_effect", "payload": {"effects": str(chaos.effects)}}] * count
    )
    ids = {job.id for job in submitted}
    started = time.monotonic()
    # No fault here, so a lease long enough that no stall on this busy 2-core machine can
    # expire it: any second attempt would then mean two workers claimed the same job.
    env = {**chaos.procs.env, "CONVEYOR_LEASE_SECONDS": "15", "CONVEYOR_HEARTBEAT_SECONDS": "1"}
    workers = [
        chaos.procs.conveyor("worker", "--burst", "--concurrency", "8", env=env) for _ in range(4)
    ]
    for worker in workers:
        assert exit_code(chaos, worker, 50) == 0
    elapsed = time.monotonic() - started

    with chaos.app.store.engine.connect() as conn:
        counts = dict(
            conn.execute(
                select(jobs_table.c.status, func.count()).group_by(jobs_table.c.status)
            ).all()
        )
        attempts = set(conn.execute(select(jobs_table.c.attempts).distinct()).scalars())
        by_worker = dict(
            conn.execute(
                select(jobs_table.c.worker, func.count()).group_by(jobs_table.c.worker)
            ).all()
        )
    assert counts == {"succeeded": count}
    assert attempts == {1}, retried_report(chaos)
    ledger = chaos.app.store.effects_of(sorted(ids))
    assert len(ledger) == count
    assert {r["state"] for r in ledger} == {"done"}
    lines = read_lines(chaos.effects)
    assert len(lines) == count
    assert set(lines) == ids
    # Shared out, not one process doing it all (how evenly depends on start-up order).
    assert len(by_worker) >= 2, by_worker
    print(
        f"\n{count} jobs, 4 processes: {elapsed:.1f} s wall (incl. start-up); per worker "
        f"{sorted(by_worker.values(), reverse=True)}"
    )


def retried_report(chaos: Any) -> str:
    with chaos.app.store.engine.connect() as conn:
        ids = conn.execute(select(jobs_table.c.id).where(jobs_table.c.attempts > 1)).scalars()
        jobs = [chaos.app.get(job_id) for job_id in ids]
    lines = [
        f"{j.id}: {[(e.attempt, e.outcome, e.worker, e.error) for e in j.executions]}" for j in jobs
    ]
    return "\n".join(lines) + "\n" + chaos.procs.all_logs()


def test_a_poison_pill_ends_dead_after_the_crash_cap_and_workers_keep_going(chaos):
    env = {**chaos.procs.env, "CONVEYOR_MAX_CRASH_RECOVERIES": "2"}
    trace = str(chaos.trace)
    poison = chaos.app.submit("fault_poison", {"trace": trace}, priority="high")
    others = [chaos.app.submit("fault_quick", {"trace": trace}, priority="low") for _ in range(3)]

    deaths = 0
    worker = None
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline and deaths < 6:
        worker = chaos.procs.conveyor("worker", "--concurrency", "1", env=env)

        def settled(proc=worker):
            return proc.poll() is not None or chaos.app.get(poison.id).status == "dead"

        wait_for(
            settled,
            max(1.0, deadline - time.monotonic()),
            "a crash or a dead job",
            every=0.1,
            on_timeout=chaos.procs.all_logs,
        )
        if worker.poll() is None:
            break  # the pill is dead and this worker lives on
        assert worker.returncode == -signal.SIGKILL, chaos.procs.log_of(worker)
        deaths += 1

    dead = chaos.app.get(poison.id)
    assert dead.status == "dead", chaos.procs.all_logs()
    # Cap 2: the third crash is one too many. Every attempt was a crash.
    assert deaths == 3
    assert dead.attempts == 3
    assert [(e.attempt, e.outcome) for e in dead.executions] == [
        (1, "lease_expired"),
        (2, "lease_expired"),
        (3, "lease_expired"),
    ]
    assert "lease expired" in (dead.error or "")
    assert len(events(chaos, "started", job=poison.id)) == 3

    # The survivor still serves: the earlier jobs and a fresh one all succeed.
    late = chaos.app.submit("fault_quick", {"trace": trace})
    for job in [*others, late]:
        assert wait_job(chaos, job.id, timeout=15).status == "succeeded"
    assert chaos.app.get(late.id).result["pid"] == worker.pid
    worker.send_signal(signal.SIGTERM)
    assert exit_code(chaos, worker, 15) == 0
