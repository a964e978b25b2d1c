"""Running jobs: priorities, retries with backoff, classification, timeouts, the ledger."""

from __future__ import annotations

import asyncio
import threading
import time

import conveyor

from . import handlers


def test_success_is_logged_per_attempt(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "ok"})
    sync_job = app.submit("async_record", {"tag": "async"})
    assert app.run_burst() == 2
    done = app.get(job.id)
    assert done.status == "succeeded" and done.result == {"tag": "ok", "attempt": 1}
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    [run] = done.executions
    assert (run.attempt, run.outcome, run.error) == (1, "succeeded", None)
    assert run.worker and run.duration_ms is not None
    assert app.get(sync_job.id).result == {"tag": "async"}


def test_high_priority_runs_before_medium_before_low(app: conveyor.Conveyor) -> None:
    for tag, priority in [("low", "low"), ("medium", "medium"), ("high", "high")]:
        app.submit("record", {"tag": tag}, priority=priority)
    app.run_burst(concurrency=1)
    assert handlers.RAN == ["high", "medium", "low"]


def test_retry_recovers_with_backoff(app: conveyor.Conveyor) -> None:
    job = app.submit("flaky_test", {"fail_times": 2})
    deadline = time.monotonic() + 20
    while not app.get(job.id).terminal and time.monotonic() < deadline:
        app.run_burst()
        time.sleep(0.05)
    done = app.get(job.id)
    assert done.status == "succeeded" and done.attempts == 3
    assert [e.outcome for e in done.executions] == [
        "retryable_error",
        "retryable_error",
        "succeeded",
    ]
    assert done.executions[0].error_type == "RetryableError"


def test_attempts_exhausted_end_dead(app: conveyor.Conveyor) -> None:
    job = app.submit("flaky_test", {"fail_times": 9}, max_attempts=2)
    deadline = time.monotonic() + 20
    while not app.get(job.id).terminal and time.monotonic() < deadline:
        app.run_burst()
        time.sleep(0.05)
    done = app.get(job.id)
    assert done.status == "dead" and done.attempts == 2
    assert "gave up after 2 attempts" in (done.error or "")


def test_permanent_error_is_dead_at_once(app: conveyor.Conveyor) -> None:
    job = app.submit("flaky_test", {"fail_times": 1, "permanent": True})
    app.run_burst()
    done = app.get(job.id)
    assert done.status == "dead" and done.attempts == 1
    assert done.executions[0].outcome == "permanent_error"
    assert app.list_jobs(status="dead")[0][0].id == job.id


def test_default_classification(app: conveyor.Conveyor) -> None:
    value = app.submit("raises", {"tag": "value"})
    connection = app.submit("raises", {"tag": "connection"})
    app.run_burst()
    assert app.get(value.id).status == "dead"
    assert app.get(value.id).executions[0].outcome == "permanent_error"
    retried = app.get(connection.id)
    assert retried.status in ("retrying", "dead") and retried.attempts >= 1
    assert {e.outcome for e in retried.executions} == {"retryable_error"}


def test_classify_hook_overrides_defaults(make_app, fast_settings) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        plugins=[handlers, handlers.ClassifyLookupAsRetryable()],
        entry_points=False,
        **fast_settings,
    )
    job = app.submit("raises", {"tag": "custom"})
    app.run_burst()
    assert app.get(job.id).executions[0].outcome == "retryable_error"


def test_retry_after_wins_over_the_cap(app: conveyor.Conveyor) -> None:
    job = app.submit("flaky_test", {"fail_times": 1, "retry_after": 30})
    app.run_burst()
    stored = app.get(job.id)
    assert stored.status == "retrying"
    wait = stored.run_at.timestamp() - stored.executions[0].finished_at.timestamp()
    assert 29 < wait < 31  # the cap is 0.2 s in these tests


def test_timeout_is_recorded_and_retried(app: conveyor.Conveyor) -> None:
    job = app.submit("nap", {"seconds": 5}, timeout=0.3, max_attempts=1)
    started = time.monotonic()
    app.run_burst()
    assert time.monotonic() - started < 4
    done = app.get(job.id)
    assert done.status == "dead" and done.executions[0].outcome == "timeout"


def test_unknown_type_in_the_database_is_permanent(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "x"})
    with app.store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE jobs SET type = 'gone' WHERE id = :id"), {"id": job.id})
    app.run_burst()
    done = app.get(job.id)
    assert done.status == "dead" and "unknown job type 'gone'" in (done.error or "")


def test_once_runs_a_side_effect_at_most_once(app: conveyor.Conveyor) -> None:
    first = app.submit("effect", {"key": "mail:ada", "fail_after": True})
    deadline = time.monotonic() + 10
    while not app.get(first.id).terminal and time.monotonic() < deadline:
        app.run_burst()
    assert app.get(first.id).result == {"first": False}  # attempt 2 skipped it
    second = app.submit("effect", {"key": "mail:ada"})
    app.run_burst()
    assert app.get(second.id).result == {"first": False}
    assert handlers.RAN == ["mail:ada"]
    [row] = app.store.effects_of([first.id])
    assert row["state"] == "done"


def test_progress_is_written_by_heartbeats(app: conveyor.Conveyor) -> None:
    job = app.submit("progress", {"seconds": 1.2})
    app.run_burst()
    assert app.get(job.id).progress["done"] == 1


def test_cancel_a_running_job_cooperatively(app: conveyor.Conveyor) -> None:
    job = app.submit("nap", {"seconds": 20})
    worker = app.worker(install_signal_handlers=False)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while app.get(job.id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.cancel(job.id) == "requested"
        done = app.wait(job.id, timeout=10)
    finally:
        worker.stop()
        thread.join(10)
    assert done.status == "cancelled" and done.executions[-1].outcome == "cancelled"
