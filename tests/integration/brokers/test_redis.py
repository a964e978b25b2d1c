"""What the Redis broker promises beyond the contract: Redis is rebuildable from the database
(lost state, lost pushes), wake-ups block instead of polling, and refused ids do no harm.

Every test works under a key prefix of its own on the shared Redis; "FLUSHALL" here deletes
that prefix's keys, never the server's. Killing and restarting Redis is the chaos suite's."""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import conveyor
from conveyor.core.brokers.base import Ready
from conveyor.core.brokers.redis import RedisBroker, parse_url
from conveyor.core.errors import ConfigurationError
from conveyor.core.reconciler import eviction_warning

from .conftest import drop_prefix, redis_url, running_worker, until

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

AppFactory = Callable[..., conveyor.Conveyor]


@pytest.fixture
def app(app_factory: AppFactory, pg_database: str, redis_prefix: str) -> conveyor.Conveyor:
    return app_factory(pg_database, broker_url=redis_url(redis_prefix), reconcile_seconds=60.0)


def broker_of(app: conveyor.Conveyor) -> RedisBroker:
    broker = app.broker
    assert isinstance(broker, RedisBroker)
    return broker


def fetch(app: conveyor.Conveyor, queues: tuple[str, ...] = ("default",)) -> list[str]:
    return [job.id for job in app.broker.fetch(list(queues), 50, "worker-1", 30.0)]


# --- Redis is rebuildable ----------------------------------------------------------------


def test_lost_state_is_rebuilt_from_the_database(app: conveyor.Conveyor, redis_prefix: str):
    broker_of(app).reconciler.run_once(force=True)
    jobs = [app.submit("task", {"n": i}) for i in range(3)]
    scheduled = app.submit("task", {}, delay=60)
    drop_prefix(redis_prefix)  # this test's FLUSHALL
    assert fetch(app) == []
    assert broker_of(app).reconciler.run_once(force=True) == 4
    assert sorted(fetch(app)) == sorted(job.id for job in jobs)
    assert broker_of(app).depths(["default"])["default"]["delayed"] == 1
    assert app.get(scheduled.id).status == "scheduled"


def test_a_committed_job_whose_push_was_lost_is_dispatched(app: conveyor.Conveyor):
    broker = broker_of(app)
    broker.reconciler.run_once(force=True)  # Redis is up to date: the next pass is a sweep
    # Inside the caller's transaction nothing is pushed: the commit is the caller's.
    with app.store.engine.begin() as conn:
        job = app.submit("task", {}, connection=conn)
    assert fetch(app) == []
    # A job due this very moment may still have its push in flight: a pass later finds it.
    assert until(lambda: broker.reconciler.run_once(force=True), timeout=3, what="restore") == 1
    assert fetch(app) == [job.id]
    assert broker.reconciler.run_once(force=True) == 0


def test_submit_commits_while_redis_is_unreachable(
    app_factory: AppFactory, pg_database: str, redis_prefix: str, caplog: Any
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    offline = app_factory(
        pg_database, broker_url=f"redis://127.0.0.1:{port}/0?prefix={redis_prefix}"
    )
    with caplog.at_level(logging.WARNING, logger="conveyor.broker.redis"):
        job = offline.submit("task", {})
    assert "Redis unreachable" in caplog.text
    assert offline.get(job.id).status == "queued"  # committed, never a false failure
    online = app_factory(pg_database, broker_url=redis_url(redis_prefix))
    broker_of(online).reconciler.run_once(force=True)
    assert fetch(online) == [job.id]


@pytest.mark.slow
def test_dispatch_resumes_after_flushall_mid_run(
    app_factory: AppFactory, pg_database: str, redis_prefix: str
):
    app = app_factory(pg_database, broker_url=redis_url(redis_prefix), reconcile_seconds=0.5)
    jobs = app.submit_many([{"type": "pause", "payload": {"seconds": 0.02}} for _ in range(80)])
    with running_worker(app, concurrency=2):
        until(lambda: app.store.queue_stats()["default"].get("depth", 0) < 70, what="progress")
        drop_prefix(redis_prefix)
        flushed = time.monotonic()
        until(
            lambda: all(job.terminal for job in app.store.get_many([j.id for j in jobs])),
            timeout=30,
            what="every job finished",
        )
    finished = app.store.get_many([job.id for job in jobs])
    assert {job.status for job in finished} == {"succeeded"}
    assert {job.attempts for job in finished} == {1}  # no job ran twice
    assert time.monotonic() - flushed < 20


# --- wake-ups ----------------------------------------------------------------------------


def test_wait_blocks_until_a_push_wakes_it(app: conveyor.Conveyor):
    broker_of(app)  # built here, not in the waiter's thread
    woke: list[float] = []
    waiter = threading.Thread(
        target=lambda: (app.broker.wait(["default"], 5.0), woke.append(time.monotonic()))
    )
    waiter.start()
    time.sleep(0.3)  # let the waiter block: a poll-based wait would sleep through the push
    assert not woke
    pushed = time.monotonic()
    job = app.submit("task", {})
    waiter.join(10)
    assert woke and woke[0] - pushed < 0.2
    assert fetch(app) == [job.id]  # the id the blocking pop took is claimed first


def test_an_id_popped_by_a_wait_survives_close(
    app_factory: AppFactory, pg_database: str, redis_prefix: str
):
    first = app_factory(pg_database, broker_url=redis_url(redis_prefix))
    job = first.submit("task", {})
    first.broker.wait(["default"], 1.0)  # pops the id into the broker's hand
    assert broker_of(first).depths(["default"])["default"]["medium"] == 0
    first.close()  # never fetched: the id goes back
    second = app_factory(pg_database, broker_url=redis_url(redis_prefix))
    assert fetch(second) == [job.id]


def test_wait_times_out_when_nothing_arrives(app: conveyor.Conveyor):
    started = time.monotonic()
    app.broker.wait(["default"], 0.5)
    assert 0.45 <= time.monotonic() - started < 2.0


def test_wait_ends_when_a_delayed_job_falls_due(app: conveyor.Conveyor):
    job = app.submit("task", {}, delay=0.3)
    assert fetch(app) == []  # the fetch learns when the next delayed job is due
    started = time.monotonic()
    app.broker.wait(["default"], 5.0)
    assert time.monotonic() - started < 1.0
    assert until(lambda: fetch(app), timeout=2, what="claim") == [job.id]


def test_pickup_latency_without_polling(
    app_factory: AppFactory, pg_database: str, redis_prefix: str
):
    # poll_seconds=5: a worker that polled would take ~0.5 s to notice a job on average.
    app = app_factory(pg_database, broker_url=redis_url(redis_prefix), poll_seconds=5.0)
    latencies = []
    with running_worker(app, concurrency=1):
        until(lambda: app.store.live_workers(30), what="worker registered")
        for _ in range(15):
            job = app.submit("task", {})
            done = app.wait(job.id, timeout=10)
            assert done.started_at is not None and done.created_at is not None
            latencies.append((done.started_at - done.created_at).total_seconds())
    print(sorted(latencies))
    assert statistics.median(latencies) < 0.05, latencies


# --- refused ids, routing, settings ------------------------------------------------------


def test_refused_ids_are_dropped_or_deferred(app: conveyor.Conveyor):
    broker = broker_of(app)
    cancelled = app.submit("task", {})
    app.cancel(cancelled.id)
    later = app.submit("task", {}, delay=60)
    # Stale announcements: both look due to Redis.
    past = time.time() - 1
    broker.push([Ready(cancelled.id, "default", 1, past), Ready(later.id, "default", 1, past)])
    assert fetch(app) == []
    depths = broker.depths(["default"])["default"]
    assert depths["medium"] == 0  # the cancelled id is gone for good
    assert depths["delayed"] == 1  # the scheduled one waits for its time again
    assert app.get(later.id).status == "scheduled"


def test_a_worker_on_several_queues_takes_high_priority_first(app: conveyor.Conveyor):
    low = app.submit("task", {}, priority="low")
    high = app.submit("other_task", {}, priority="high")
    ids = [job.id for job in app.broker.fetch(["default", "other"], 1, "w", 30.0)]
    assert ids == [high.id]
    assert fetch(app) == [low.id]


def test_prefixes_keep_deployments_apart(
    app_factory: AppFactory, pg_database: str, redis_prefix: str
):
    one = app_factory(pg_database, broker_url=redis_url(redis_prefix + "one:"))
    two = app_factory(pg_database, broker_url=redis_url(redis_prefix + "two:"))
    job = one.submit("task", {})
    assert fetch(two) == []
    assert fetch(one) == [job.id]
    assert broker_of(one).keys.ready("default", 0) == f"{redis_prefix}one:{{default}}:ready:0"


def test_parse_url_takes_the_prefix_out():
    url, prefix = parse_url("redis://127.0.0.1:6379/2?prefix=app:&socket_keepalive=true")
    assert prefix == "app:" and url == "redis://127.0.0.1:6379/2?socket_keepalive=true"
    assert parse_url("redis://127.0.0.1:6379/0")[1] == "conveyor:"
    with pytest.raises(ConfigurationError):
        parse_url("redis://127.0.0.1/0?prefix={bad}")


def test_eviction_policy_warning(app: conveyor.Conveyor, caplog: Any):
    assert eviction_warning("noeviction", 0) is None
    assert eviction_warning("volatile-lru", 1 << 30) is None
    message = eviction_warning("allkeys-lru", 1 << 30)
    assert message and "noeviction" in message and "allkeys-lru" in message
    with caplog.at_level(logging.WARNING, logger="conveyor.broker.redis"):
        broker_of(app).warn_if_evicting()  # the test server runs noeviction
    policy = broker_of(app).redis.config_get("maxmemory-policy")["maxmemory-policy"]
    assert ("maxmemory-policy" in caplog.text) == policy.startswith("allkeys")
