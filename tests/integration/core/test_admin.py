"""Operator actions: cancel, retry, the dead-letter queue, prune, queue stats."""

from __future__ import annotations

import pytest

import conveyor
from conveyor.core.errors import InvalidTransition, JobNotFound


def test_cancel_a_queued_job(app: conveyor.Conveyor) -> None:
    job = app.submit("record", {"tag": "x"})
    assert app.cancel(job.id) == "cancelled"
    assert app.get(job.id).status == "cancelled"
    assert app.run_burst() == 0
    with pytest.raises(InvalidTransition):
        app.cancel(job.id)
    with pytest.raises(JobNotFound):
        app.cancel("no-such-job")


def test_dead_letter_list_requeue_purge(app: conveyor.Conveyor) -> None:
    dead = [app.submit("flaky_test", {"fail_times": 1, "permanent": True}) for _ in range(3)]
    app.run_burst()
    assert {j.id for j in app.list_jobs(status="dead")[0]} == {j.id for j in dead}
    with pytest.raises(InvalidTransition):
        app.retry(app.submit("record", {"tag": "q"}).id)
    retried = app.retry(dead[0].id)
    assert retried.status == "queued" and retried.max_attempts >= 2
    app.run_burst()
    assert app.get(dead[0].id).status == "succeeded"  # attempt 2 is past fail_times
    assert app.store.retry(None) == 2
    app.run_burst()
    assert app.list_jobs(status="dead")[0] == []
    again = app.submit("flaky_test", {"fail_times": 1, "permanent": True})
    app.run_burst()
    assert app.store.purge_dead() == 1
    with pytest.raises(JobNotFound):
        app.get(again.id)


def test_prune_removes_old_finished_jobs(app: conveyor.Conveyor) -> None:
    old = app.submit("record", {"tag": "old"})
    pending = app.submit("record", {"tag": "later"}, delay=60)
    app.run_burst()
    assert app.store.prune(older_than_seconds=3600) == 0
    assert app.store.prune(older_than_seconds=-1) == 1
    with pytest.raises(JobNotFound):
        app.get(old.id)
    assert app.get(pending.id).status == "scheduled"


def test_queue_stats_and_pause(app: conveyor.Conveyor) -> None:
    app.submit("record", {"tag": "h"}, priority="high")
    app.submit("record", {"tag": "l"}, priority="low", queue="other")
    app.submit("record", {"tag": "s"}, delay=60)
    stats = app.store.queue_stats()
    assert stats["default"]["ready"] == {"high": 1, "medium": 0, "low": 0}
    assert stats["default"]["scheduled"] == 1
    assert stats["other"]["ready"]["low"] == 1
    app.store.set_paused("other", True)
    assert app.store.queue_stats()["other"]["paused"] is True


def test_list_jobs_paginates_newest_first(app: conveyor.Conveyor) -> None:
    ids = [app.submit("record", {"tag": str(i)}).id for i in range(5)]
    page, cursor = app.list_jobs(limit=2)
    assert [j.id for j in page] == ids[::-1][:2] and cursor
    rest, _ = app.list_jobs(limit=10, cursor=cursor)
    assert [j.id for j in rest] == ids[::-1][2:]
    assert [j.id for j in app.list_jobs(type_="record", status="queued")[0]] == ids[::-1]
