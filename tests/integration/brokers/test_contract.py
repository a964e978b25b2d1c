"""The broker contract: one suite that every broker passes. The database broker on SQLite and
on PostgreSQL, and the Redis broker (PostgreSQL record), subclass it below."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.core.brokers.base import Ready
from conveyor.core.reaper import Reaper
from conveyor.core.store import ClaimedJob

from .conftest import redis_url, running_worker, until


def fetch(
    app: conveyor.Conveyor,
    queues: Sequence[str] = ("default",),
    limit: int = 10,
    worker: str = "worker-1",
    lease: float = 30.0,
) -> list[ClaimedJob]:
    return app.broker.fetch(list(queues), limit, worker, lease)


def ids(claimed: Sequence[ClaimedJob]) -> list[str]:
    return [job.id for job in claimed]


def claim_soon(app: conveyor.Conveyor, **options: Any) -> list[ClaimedJob]:
    """Fetch right after a submit. Polls briefly: SQLite's clock has millisecond steps, so a
    job submitted this very millisecond may not be due yet by the database's clock."""
    return until(lambda: fetch(app, **options), timeout=2, what="claim")  # type: ignore[no-any-return]


def a_second_ago() -> str:
    return datetime.fromtimestamp(time.time() - 1, UTC).isoformat()


class BrokerContract:
    """What every broker promises. Subclasses provide `app` (with `reconcile_seconds` large,
    so nothing here passes thanks to a reconciler) and `broker_name`."""

    broker_name = ""

    @pytest.fixture
    def app(self, app_factory: Callable[..., conveyor.Conveyor]) -> conveyor.Conveyor:
        raise NotImplementedError

    def test_uses_the_broker_under_test(self, app: conveyor.Conveyor) -> None:
        assert app.broker.name == self.broker_name

    def test_a_submitted_job_is_claimed_once(self, app: conveyor.Conveyor) -> None:
        job = app.submit("task", {"n": 1})
        claimed = claim_soon(app)
        assert ids(claimed) == [job.id]
        assert claimed[0].lease_token == 1 and claimed[0].attempts == 1
        assert fetch(app, worker="worker-2") == []
        assert app.get(job.id).status == "running"

    def test_oldest_first_up_to_the_limit(self, app: conveyor.Conveyor) -> None:
        jobs = app.submit_many([{"type": "task", "payload": {"n": i}} for i in range(5)])
        first = claim_soon(app, limit=2)
        rest = fetch(app, limit=10)
        assert set(ids(first)) == {jobs[0].id, jobs[1].id}
        assert set(ids(rest)) == {job.id for job in jobs[2:]}

    def test_high_before_medium_before_low(self, app: conveyor.Conveyor) -> None:
        low = app.submit("task", {}, priority="low", run_at=a_second_ago())
        medium = app.submit("task", {}, run_at=a_second_ago())
        high = app.submit("task", {}, priority="high", run_at=a_second_ago())
        order = [ids(fetch(app, limit=1)) for _ in range(3)]
        assert order == [[high.id], [medium.id], [low.id]]

    def test_a_worker_hears_only_its_queues(self, app: conveyor.Conveyor) -> None:
        mine = app.submit("task", {}, run_at=a_second_ago())
        theirs = app.submit("other_task", {}, run_at=a_second_ago())
        assert ids(fetch(app, queues=["other"])) == [theirs.id]
        assert ids(fetch(app, queues=["default"])) == [mine.id]
        assert fetch(app, queues=["default", "other"]) == []

    def test_a_delayed_job_is_claimed_once_due(self, app: conveyor.Conveyor) -> None:
        submitted = time.monotonic()
        job = app.submit("task", {}, delay=0.4)
        assert fetch(app) == []
        claimed = until(lambda: fetch(app), timeout=5, what="delayed job claimed")
        assert ids(claimed) == [job.id]
        assert time.monotonic() - submitted >= 0.35

    def test_a_retry_runs_after_its_backoff(self, app: conveyor.Conveyor) -> None:
        job = app.submit("flaky", {"fail_times": 1})
        with running_worker(app):
            until(lambda: app.get(job.id).terminal, timeout=10, what="flaky job finished")
        done = app.get(job.id)
        assert done.status == "succeeded" and done.attempts == 2
        first, second = done.executions
        assert first.outcome == "retryable_error" and second.outcome == "succeeded"
        assert second.started_at is not None and first.finished_at is not None
        assert (second.started_at - first.finished_at).total_seconds() >= 0.25

    def test_duplicate_announcements_are_harmless(self, app: conveyor.Conveyor) -> None:
        job = app.submit("task", {})
        entry = Ready(job.id, job.queue, 1, time.time() - 1)
        for _ in range(3):
            app.broker.dispatched([job.id], [job.queue])
            app.broker.dispatched([job.id], [job.queue], [entry])
        assert ids(claim_soon(app)) == [job.id]
        assert fetch(app, worker="worker-2") == []
        assert fetch(app, worker="worker-3") == []
        assert app.get(job.id).attempts == 1

    def test_concurrent_fetches_claim_each_job_once(self, app: conveyor.Conveyor) -> None:
        jobs = app.submit_many(
            [{"type": "task", "payload": {"n": i}, "run_at": a_second_ago()} for i in range(120)]
        )
        claims: list[str] = []
        lock = threading.Lock()

        def drain(worker: str) -> None:
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 0.3:
                got = fetch(app, limit=7, worker=worker)
                if got:
                    idle_since = time.monotonic()
                    with lock:
                        claims.extend(ids(got))

        threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert Counter(claims) == Counter(job.id for job in jobs)

    def test_a_rescued_job_is_dispatched_again(self, app: conveyor.Conveyor) -> None:
        job = app.submit("task", {})
        assert ids(claim_soon(app, lease=0.1)) == [job.id]
        until(lambda: Reaper(app).run_once(), timeout=5, what="lease rescued")
        again = until(lambda: fetch(app, worker="worker-2"), timeout=5, what="claimed again")
        assert ids(again) == [job.id]
        assert again[0].lease_token == 3 and again[0].attempts == 2

    def test_a_released_job_is_dispatched_again(self, app: conveyor.Conveyor) -> None:
        job = app.submit("pause", {"seconds": 0})
        with running_worker(app, grace_seconds=0.05):
            until(lambda: app.get(job.id).status == "running", what="job running")
        assert app.get(job.id).status == "queued"
        claimed = until(lambda: fetch(app), timeout=5, what="released job claimed")
        assert ids(claimed) == [job.id] and claimed[0].attempts == 1

    def test_a_released_dependent_is_dispatched(self, app: conveyor.Conveyor) -> None:
        parent = app.submit("task", {"n": 1})
        child = app.submit("task", {"n": 2}, depends_on=[parent.id])
        assert app.get(child.id).status == "waiting"
        started = time.monotonic()
        with running_worker(app):
            until(lambda: app.get(child.id).status == "succeeded", timeout=10, what="child done")
        assert time.monotonic() - started < 5  # the reconciler (60 s here) had no part in it

    def test_wait_returns_once_a_job_is_submitted(self, app: conveyor.Conveyor) -> None:
        # A worker's first wait sets up its listener (LISTEN on PostgreSQL); a submit racing
        # that very first wait is the reconciler's or the next poll's to notice.
        app.broker.wait(["default"], 0.01)
        woke: list[float] = []
        waiter = threading.Thread(
            target=lambda: (app.broker.wait(["default"], 5.0), woke.append(time.monotonic()))
        )
        waiter.start()
        submitted = time.monotonic()
        job = app.submit("task", {})
        waiter.join(10)
        assert woke and woke[0] - submitted < 1.0
        assert ids(until(lambda: fetch(app), timeout=2, what="claim")) == [job.id]


# --- the brokers under contract ----------------------------------------------------------

SLOW_RECONCILE: dict[str, Any] = {"reconcile_seconds": 60.0}


class TestDatabaseBrokerSQLite(BrokerContract):
    broker_name = "database"

    @pytest.fixture
    def app(self, app_factory: Callable[..., conveyor.Conveyor], tmp_path: Path) -> Any:
        return app_factory(f"sqlite:///{tmp_path / 'contract.db'}", **SLOW_RECONCILE)


@pytest.mark.postgres
class TestDatabaseBrokerPostgres(BrokerContract):
    broker_name = "database"

    @pytest.fixture
    def app(self, app_factory: Callable[..., conveyor.Conveyor], pg_database: str) -> Any:
        return app_factory(pg_database, **SLOW_RECONCILE)


@pytest.mark.postgres
@pytest.mark.redis
class TestRedisBroker(BrokerContract):
    broker_name = "redis"

    @pytest.fixture
    def app(
        self, app_factory: Callable[..., conveyor.Conveyor], pg_database: str, redis_prefix: str
    ) -> Any:
        return app_factory(pg_database, broker_url=redis_url(redis_prefix), **SLOW_RECONCILE)
