"""Concurrency slots on Redis are leases: a holder that stops renewing loses its slot within
one lease, heartbeats keep it, a heartbeat puts it back after Redis lost its keys, and a
release frees it at once. Driven through the limiter directly, with leases of a fraction of
a second."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest

import conveyor
from conveyor.core.brokers.redis_limits import RedisLimiter
from conveyor.core.limits import Held, limiter_for
from conveyor.core.store import ClaimedJob, Completion

from .conftest import _drop_prefix, until

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["redis"], indirect=True),
]

LEASE = 0.4
_tokens = itertools.count(1)


@pytest.fixture
def limiter(make_app: Callable[..., conveyor.Conveyor]) -> RedisLimiter:
    found = limiter_for(make_app(tenant_concurrency="1"))
    assert isinstance(found, RedisLimiter)
    return found


def job(tenant: str = "t") -> ClaimedJob:
    return ClaimedJob(
        str(uuid.uuid4()),
        "tenant_work",
        "default",
        1,
        "{}",
        1,
        5,
        None,
        next(_tokens),
        tenant,
        None,
        time.time(),
        0,
    )


def admitted(limiter: RedisLimiter, claimed: ClaimedJob) -> bool:
    deferred = limiter.admit(limiter.requests([claimed]), LEASE, time.monotonic())
    return not deferred


def test_a_slot_whose_holder_stopped_renewing_frees_itself(limiter: RedisLimiter):
    assert admitted(limiter, job())  # ... and its worker dies: nobody renews or releases
    assert not admitted(limiter, job())
    assert admitted(limiter, job("other"))  # other tenants are not affected
    started = time.monotonic()
    until(lambda: admitted(limiter, job()), timeout=5, what="the slot back")
    assert time.monotonic() - started < LEASE + 0.3


def test_heartbeats_keep_a_slot(limiter: RedisLimiter):
    holder = job()
    assert admitted(limiter, holder)
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        limiter.refresh([holder.id], LEASE)
        assert not admitted(limiter, job())
        time.sleep(LEASE / 4)
    assert limiter.running("tenant:t") == 1


def test_a_heartbeat_restores_slots_redis_lost(limiter: RedisLimiter):
    holder = job()
    assert admitted(limiter, holder)
    _drop_prefix(limiter.base.removesuffix("{limits}:"))  # this test's FLUSHALL
    assert limiter.running("tenant:t") == 0
    limiter.refresh([holder.id], LEASE)
    assert limiter.running("tenant:t") == 1
    assert not admitted(limiter, job())


def test_a_release_frees_the_slot_at_once(limiter: RedisLimiter):
    holder = job()
    assert admitted(limiter, holder)
    assert not admitted(limiter, job())
    done = Completion(holder.id, holder.lease_token, "succeeded", "succeeded")
    limiter.finished([(holder, done)], time.monotonic())
    assert limiter.running("tenant:t") == 0
    assert admitted(limiter, job())


def test_a_late_release_by_a_dead_attempt_leaves_the_new_attempts_slot(limiter: RedisLimiter):
    """Slot members carry the lease token: the attempt that lost its lease can only remove
    its own member, never the one the rescued job's new attempt holds."""
    first = job()
    assert admitted(limiter, first)
    # Its worker froze: the slot runs out, the job is rescued and claimed again.
    until(lambda: limiter.running("tenant:t") == 0, timeout=5, what="lease expiry")
    again = replace(first, lease_token=first.lease_token + 2)
    assert admitted(limiter, again)
    # The frozen worker wakes up and releases the slot it believes it holds.
    slots = limiter.policy.checks("tenant_work", "t").slots
    limiter._release([Held(f"{first.id}:{first.lease_token}", slots, 0.0)], time.monotonic())
    assert limiter.running("tenant:t") == 1
