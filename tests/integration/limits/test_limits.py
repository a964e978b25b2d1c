"""Fairness and limits, on each backend: rates per type never exceeded across workers, tenant
concurrency held while other tenants proceed, deferrals that cost no attempt and write no
execution row, slots a killed worker held coming back within a lease, and 429s that snooze a
job without using an attempt and slow its type down for everyone."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conveyor
from conveyor.core.limits import limiter_for

from .conftest import (
    FAST,
    HERE,
    Backend,
    all_done,
    most_at_once,
    most_in_window,
    running_workers,
    until,
)

AppFactory = Callable[..., conveyor.Conveyor]

#: Seconds between a job's admission (at claim) and its handler's recorded start.
SKEW = 0.1


def starts(app: conveyor.Conveyor, ids: list[str]) -> list[float]:
    return [
        e.started_at.timestamp()
        for job in app.store.get_many(ids, with_executions=True)
        for e in job.executions
        if e.started_at is not None
    ]


def spans(app: conveyor.Conveyor, ids: list[str]) -> list[tuple[float, float]]:
    found = []
    for job in app.store.get_many(ids, with_executions=True):
        for e in job.executions:
            assert e.started_at is not None and e.finished_at is not None
            found.append((e.started_at.timestamp(), e.finished_at.timestamp()))
    return found


# --- rates -------------------------------------------------------------------------------


def test_a_type_rate_is_never_exceeded_across_two_workers(make_app: AppFactory):
    first, second = make_app(), make_app()
    jobs = first.submit_many([{"type": "limited", "payload": {}} for _ in range(50)])
    ids = [job.id for job in jobs]
    with running_workers(first, second, concurrency=10):
        until(lambda: all_done(first, ids), timeout=20, what="50 limited jobs done")
    done = first.store.get_many(ids, with_executions=True)
    assert {job.status for job in done} == {"succeeded"}
    # Deferrals used no attempt and left no execution row: one attempt, one row each.
    assert {job.attempts for job in done} == {1}
    assert {len(job.executions) for job in done} == {1}
    began = starts(first, ids)
    # "20/s": at most 20 admitted in any one second. Admission happens at claim time, the
    # recorded start when the handler begins; a batch admitted just before a window closes
    # may begin just after it, so the check allows that scheduling skew (SKEW seconds).
    assert most_in_window(began, 1.0 - SKEW) <= 20
    # ... and the limit was the brake: 50 jobs need three windows.
    assert max(began) - min(began) >= 2.0


def test_a_tenant_rate_applies_per_tenant_with_overrides(make_app: AppFactory):
    app = make_app(tenant_rate_limit="5/s,vip=50/s")
    plain = app.submit_many(
        [{"type": "tenant_work", "payload": {}, "tenant": "plain"} for _ in range(12)]
    )
    vip = app.submit_many(
        [{"type": "tenant_work", "payload": {}, "tenant": "vip"} for _ in range(12)]
    )
    untenanted = app.submit_many([{"type": "tenant_work", "payload": {}} for _ in range(12)])
    ids = [job.id for job in plain + vip + untenanted]
    with running_workers(app, concurrency=20):
        until(lambda: all_done(app, ids), timeout=20, what="jobs done")
    plain_starts = starts(app, [job.id for job in plain])
    assert most_in_window(plain_starts, 1.0 - SKEW) <= 5
    assert max(plain_starts) - min(plain_starts) >= 2.0  # 12 at 5/s: three windows
    vip_starts = starts(app, [job.id for job in vip])
    free_starts = starts(app, [job.id for job in untenanted])
    # The override and the jobs of no tenant are not held to 5/s.
    assert max(vip_starts) - min(vip_starts) < 1.0
    assert max(free_starts) - min(free_starts) < 1.0


# --- concurrency -------------------------------------------------------------------------


def test_tenant_concurrency_holds_while_other_tenants_proceed(make_app: AppFactory):
    first = make_app(tenant_concurrency="2,vip=6")
    second = make_app(tenant_concurrency="2,vip=6")
    batches = {
        name: first.submit_many(
            [{"type": "tenant_work", "payload": {"seconds": 0.25}, **tenant} for _ in range(6)]
        )
        for name, tenant in [
            ("a", {"tenant": "a"}),
            ("b", {"tenant": "b"}),
            ("vip", {"tenant": "vip"}),
            ("none", {}),
        ]
    }
    ids = [job.id for jobs in batches.values() for job in jobs]
    with running_workers(first, second, concurrency=8):
        until(lambda: all_done(first, ids), timeout=30, what="jobs done")
    assert {job.status for job in first.store.get_many(ids)} == {"succeeded"}
    at_once = {
        name: most_at_once(spans(first, [job.id for job in jobs])) for name, jobs in batches.items()
    }
    assert at_once["a"] <= 2 and at_once["b"] <= 2
    assert at_once["vip"] > 2 and at_once["none"] > 2  # an override; nobody's jobs
    # Tenant b was not queued behind tenant a's backlog.
    a_spans, b_spans = (spans(first, [j.id for j in batches[n]]) for n in ("a", "b"))
    assert min(s for s, _ in b_spans) < max(e for _, e in a_spans)
    assert max(e for _, e in a_spans) - min(s for s, _ in a_spans) >= 0.7  # 6 jobs, 2 at once


def test_a_deferred_job_keeps_its_attempts_and_writes_no_execution(make_app: AppFactory):
    app = make_app()
    holder = app.submit("exclusive", {"seconds": 1.5}, tenant="t")
    with running_workers(app, concurrency=4):
        until(lambda: app.get(holder.id).status == "running", what="holder running")
        waiting = app.submit("exclusive", {"seconds": 0}, tenant="t")
        other = app.submit("exclusive", {"seconds": 0}, tenant="u")
        until(lambda: app.get(waiting.id).status == "scheduled", what="deferral")
        deferred = app.get(waiting.id)
        assert deferred.attempts == 0 and deferred.executions == []
        assert deferred.started_at is None
        # Another tenant's job of the same type runs meanwhile.
        until(lambda: app.get(other.id).status == "succeeded", what="other tenant's job")
        assert app.get(holder.id).status == "running"
        until(lambda: all_done(app, [holder.id, waiting.id]), timeout=10, what="both done")
    done = app.get(waiting.id)
    assert done.status == "succeeded" and done.attempts == 1
    assert [e.outcome for e in done.executions] == ["succeeded"]
    assert done.started_at is not None
    assert done.started_at >= app.get(holder.id).finished_at  # type: ignore[operator]


def test_a_killed_workers_tenant_slots_come_back(
    make_app: AppFactory, backend: Backend, tmp_path: Path
):
    app = make_app(tenant_concurrency="1")
    hog = app.submit("hog", {}, tenant="t")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(backend.env())
    env.update({f"CONVEYOR_{k.upper()}": str(v) for k, v in FAST.items()})
    env.update(
        CONVEYOR_PLUGINS="limit_handlers",
        CONVEYOR_TENANT_CONCURRENCY="1",
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
    )
    log = (tmp_path / "worker.log").open("wb")
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--concurrency", "4"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        until(lambda: app.get(hog.id).status == "running", timeout=20, what="hog running")
        time.sleep(0.6)  # one heartbeat: on Redis, the slot lease was renewed at least once
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        quick = app.submit("tenant_work", {}, tenant="t")
        with running_workers(app, concurrency=4):
            until(
                lambda: all_done(app, [hog.id, quick.id]),
                timeout=15,
                what="the tenant's jobs done after its slot holder was killed",
            )
            recovered = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    assert app.get(quick.id).status == "succeeded"
    rescued = app.get(hog.id)
    assert rescued.status == "succeeded" and rescued.attempts == 2
    # Within about one lease (2 s) plus the reaper's and the deferral's own delays.
    assert recovered < 2.0 + 5.0, (tmp_path / "worker.log").read_text()


# --- upstream throttling -----------------------------------------------------------------


def test_a_429_snoozes_without_an_attempt_and_slows_the_type(make_app: AppFactory):
    app = make_app(throttle_recovery_seconds=600.0)
    job = app.submit("provider_call", {"throttles": 2, "retry_after": 0.3})
    with running_workers(app, concurrency=4):
        until(lambda: app.get(job.id).terminal, timeout=10, what="throttled job done")
    done = app.get(job.id)
    assert done.status == "succeeded" and done.attempts == 1
    outcomes = [(e.attempt, e.outcome, e.error_type) for e in done.executions]
    assert outcomes == [
        (1, "retryable_error", "Throttled"),
        (1, "retryable_error", "Throttled"),
        (1, "succeeded", None),
    ]
    assert "acme-api" in (done.executions[0].error or "")
    first, second, _ = done.executions
    assert second.started_at is not None and first.finished_at is not None
    assert (second.started_at - first.finished_at).total_seconds() >= 0.25  # retry_after

    limiter = limiter_for(app)
    assert limiter is not None
    factor = limiter.factor("provider_call")
    assert factor <= 0.5  # two 429s, each halving: at most half of 20/s is left
    # Everyone's jobs of the type now start at the slower pace: 24 jobs at "20/s" would all
    # start within about a second; at half the rate or less, 20 per two seconds at most.
    more = app.submit_many([{"type": "provider_call", "payload": {}} for _ in range(24)])
    ids = [j.id for j in more]
    with running_workers(app, make_app(throttle_recovery_seconds=600.0), concurrency=10):
        until(lambda: all_done(app, ids), timeout=30, what="24 jobs done")
    began = starts(app, ids)
    assert max(began) - min(began) >= 1.9
    assert most_in_window(began, 1.0 / factor - SKEW) <= 20
    assert {j.attempts for j in app.store.get_many(ids)} == {1}


def test_no_limits_means_no_limiter(make_app: AppFactory, backend: Backend):
    """Without limits, a worker makes no extra call per job (the type "tenant_work" has none,
    but the suite's other handlers declare some, so they are left out here)."""
    app = conveyor.Conveyor(
        backend.database_url, backend.broker_url, plugins=[_NoLimits], entry_points=False
    )
    try:
        assert limiter_for(app) is None
        assert app.worker(install_signal_handlers=False)._limiter is None
    finally:
        app.close()


class _NoLimits:
    @staticmethod
    @conveyor.hookimpl
    def conveyor_handlers() -> list[Any]:
        from .limit_handlers import tenant_work

        return [tenant_work]
