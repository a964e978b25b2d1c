"""Fenced leases: heartbeats keep long jobs, the reaper rescues dead ones, stale writes fail."""

from __future__ import annotations

import time

import conveyor
from conveyor.core.reaper import Reaper
from conveyor.core.store import Completion


def _expire(app: conveyor.Conveyor, job_id: str) -> None:
    with app.store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE jobs SET lease_until = lease_until - 3600 WHERE id = :id"), {"id": job_id}
        )


def test_a_long_job_keeps_its_lease_by_heartbeat(app: conveyor.Conveyor) -> None:
    job = app.submit("nap", {"seconds": 3.0})  # lease is 2 s, heartbeat 0.5 s
    app.run_burst()
    done = app.get(job.id)
    assert done.status == "succeeded" and done.attempts == 1
    assert [e.outcome for e in done.executions] == ["succeeded"]


def test_reaper_rescues_an_expired_lease_and_counts_the_attempt(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "crash"})
    [claimed] = app.store.claim(["default"], 1, "dead-worker", 30)
    _expire(app, job.id)
    assert Reaper(app).run_once() == 1
    rescued = app.get(job.id)
    assert rescued.status == "retrying" and rescued.attempts == 1
    app.run_burst()
    done = app.get(job.id)
    assert done.status == "succeeded" and done.attempts == 2
    assert [e.outcome for e in done.executions] == ["lease_expired", "succeeded"]
    assert done.executions[0].worker == "dead-worker"
    assert claimed.lease_token < 10


def test_a_late_completion_is_refused_by_the_fence(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "late"})
    [stale] = app.store.claim(["default"], 1, "paused-worker", 30)
    _expire(app, job.id)
    Reaper(app).run_once()
    [fresh] = app.store.claim(["default"], 1, "new-worker", 30)
    assert fresh.lease_token > stale.lease_token
    late = Completion(
        id=job.id,
        lease_token=stale.lease_token,
        status="succeeded",
        outcome="succeeded",
        result='{"from": "stale"}',
        started_at=time.time(),
    )
    assert app.store.complete([late]) == []
    assert app.store.extend_leases([(job.id, stale.lease_token, None)], 30)[0] == set()
    ok = Completion(
        id=job.id,
        lease_token=fresh.lease_token,
        status="succeeded",
        outcome="succeeded",
        result='{"from": "fresh"}',
        started_at=time.time(),
    )
    assert app.store.complete([ok]) == [job.id]
    done = app.get(job.id)
    assert done.result == {"from": "fresh"}
    assert [e.worker for e in done.executions] == ["paused-worker", "new-worker"]


def test_crash_recoveries_are_capped(make_app, fast_settings) -> None:  # type: ignore[no-untyped-def]
    from . import handlers

    app = make_app(
        plugins=[handlers], entry_points=False, **{**fast_settings, "max_crash_recoveries": 2}
    )
    job = app.submit("record", {"tag": "poison"}, max_attempts=10)
    for _ in range(3):
        assert app.store.claim(["default"], 1, "doomed", 30)
        _expire(app, job.id)
        Reaper(app).run_once()
    done = app.get(job.id)
    assert done.status == "dead" and done.attempts == 3
    assert [e.outcome for e in done.executions] == ["lease_expired"] * 3
    assert "lease expired" in (done.error or "")


def test_an_uncertain_effect_is_reported_not_repeated(app: conveyor.Conveyor) -> None:
    job = app.submit("effect", {"key": "charge:42"})
    [claimed] = app.store.claim(["default"], 1, "dying-worker", 30)
    # The worker committed the key as started, then died inside the side effect.
    assert app.store.effect_begin("charge:42", job.id, claimed.attempts, repeat=False)[0]
    _expire(app, job.id)
    Reaper(app).run_once()
    assert app.store.effects_of([job.id])[0]["state"] == "uncertain"
    app.run_burst()
    done = app.get(job.id)
    assert done.status == "succeeded"
    assert done.result == {"first": False, "uncertain_effects": ["charge:42"]}
