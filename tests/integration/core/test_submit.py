"""Submission: validation, options, idempotency, bulk, the caller's transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

import conveyor
from conveyor.core.errors import InvalidOption, InvalidPayload, UnknownJobType


def test_submit_returns_the_committed_job(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "a"}, priority="high", tenant="acme", max_attempts=2)
    assert job.status == "queued"
    assert (job.priority, job.tenant, job.max_attempts, job.attempts) == ("high", "acme", 2, 0)
    stored = app.get(job.id)
    assert stored.to_dict() | {"executions": []} == job.to_dict() | {"executions": []}
    assert set(job.to_dict()) >= {
        "id",
        "type",
        "queue",
        "priority",
        "status",
        "payload",
        "result",
        "error",
        "attempts",
        "max_attempts",
        "tenant",
        "idempotency_key",
        "run_at",
        "created_at",
        "started_at",
        "finished_at",
        "depends_on",
        "batch_id",
        "progress",
        "executions",
    }


def test_unknown_type_names_the_known_ones(app: conveyor.Conveyor) -> None:
    with pytest.raises(UnknownJobType, match=r"unknown job type 'recrod' \(known: .*record"):
        app.submit("recrod", {})


def test_invalid_payload_has_field_details(app: conveyor.Conveyor) -> None:
    with pytest.raises(InvalidPayload) as info:
        app.submit("flaky_test", {"fail_times": "many"})
    assert info.value.details[0]["loc"] == ["fail_times"]


@pytest.mark.parametrize(
    "options",
    [
        {"priority": "urgent"},
        {"max_attempts": 0},
        {"delay": -1},
        {"run_at": "tomorrow"},
        {"colour": "red"},
        {"delay": 1, "run_at": "2030-01-01T00:00:00Z"},
        {"timeout": 0},
    ],
)
def test_bad_options_are_refused_before_writing(app: conveyor.Conveyor, options: dict) -> None:
    with pytest.raises(InvalidOption):
        app.submit("record", {"tag": "x"}, **options)
    assert app.list_jobs()[0] == []


def test_delay_and_run_at_schedule(app: conveyor.Conveyor) -> None:
    delayed = app.submit("record", {"tag": "d"}, delay=60)
    at = app.submit("record", {"tag": "r"}, run_at="2099-01-01T00:00:00Z")
    assert delayed.status == at.status == "scheduled"
    assert at.run_at is not None and at.run_at.year == 2099
    assert app.run_burst() == 0  # nothing due


def test_idempotency_key_returns_the_existing_job(app: conveyor.Conveyor) -> None:
    first = app.submit("record", {"tag": "1"}, idempotency_key="k1")
    again = app.submit("record", {"tag": "2"}, idempotency_key="k1")
    other_tenant = app.submit("record", {"tag": "3"}, idempotency_key="k1", tenant="t2")
    assert again.id == first.id and again.payload == {"tag": "1"}
    assert other_tenant.id != first.id


def test_fifty_concurrent_submits_with_one_key_make_one_job(app: conveyor.Conveyor) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def submit() -> None:
        try:
            barrier.wait()
            ids.append(app.submit("record", {"tag": "c"}, idempotency_key="same").id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ids) == 50 and len(set(ids)) == 1
    assert len(app.list_jobs(limit=100)[0]) == 1


def test_submit_many_is_all_or_nothing(app: conveyor.Conveyor) -> None:
    good = [{"type": "record", "payload": {"tag": str(i)}} for i in range(5)]
    with pytest.raises(InvalidPayload, match=r"jobs\[5\]"):
        app.submit_many([*good, {"type": "flaky_test", "payload": {}}])
    assert app.list_jobs()[0] == []
    jobs = app.submit_many([*good, {"type": "record", "payload": {"tag": "p"}, "priority": "low"}])
    assert [j.payload["tag"] for j in jobs] == ["0", "1", "2", "3", "4", "p"]
    assert jobs[-1].priority == "low"
    assert app.run_burst() == 6


def test_bulk_submit_large(app: conveyor.Conveyor) -> None:
    jobs = app.submit_many(
        [{"type": "async_record", "payload": {"tag": str(i)}} for i in range(1500)]
    )
    assert len({j.id for j in jobs}) == 1500
    assert app.run_burst(concurrency=50) == 1500
    assert app.store.queue_stats() == {} or all(
        s["depth"] == 0 for s in app.store.queue_stats().values()
    )


def test_submit_inside_the_callers_transaction(app: conveyor.Conveyor) -> None:
    engine = app.store.engine
    with engine.connect() as conn:
        trans = conn.begin()
        job = app.submit("record", {"tag": "rolled back"}, connection=conn)
        trans.rollback()
    with pytest.raises(conveyor.ConveyorError):
        app.get(job.id)
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        kept = app.submit("record", {"tag": "kept"}, connection=conn)
    assert app.get(kept.id).status == "queued"
    assert app.run_burst() == 1
