"""Redis faults under a running workload: FLUSHALL, a kill and an empty restart, a 5 s
CLIENT PAUSE. Redis only dispatches, so none of them may lose, repeat or strand a job.

Each test has its own `redis-server` and PostgreSQL cluster (tests/chaos/servers.py) and real
`conveyor worker` processes with lease 2 s, heartbeat 0.5 s, reaper 0.3 s, reconcile 0.5 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import wait_for
from servers import Rig, rig

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(90)]

WORK = 0.02  # seconds per side effect


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Rig]:
    with rig(tmp_path) as started:
        yield started


def succeeded(world: Rig) -> int:
    return world.counts().get("succeeded", 0)


def assert_clean(world: Rig, ids: list[str]) -> None:
    """Every job succeeded on its first attempt, with its effect exactly once."""
    result = world.audit(ids)
    assert len(result.jobs) == len(ids)
    assert {job.status for job in result.jobs.values()} == {"succeeded"}
    assert result.duplicated == [] and result.strays == [] and result.problems == []
    # No worker died, so nothing may be missing or uncertain.
    assert result.missing == [] and result.uncertain == {}
    assert {job.attempts for job in result.jobs.values()} == {1}


def test_flushall_mid_run_loses_nothing_and_dispatch_resumes_within_an_interval(world):
    before = [job.id for job in world.effect_jobs(900, work=WORK)]
    workers = [world.worker("--concurrency", "4") for _ in range(2)]
    wait_for(lambda: succeeded(world) >= 200, 30, "200 jobs", on_timeout=world.diagnostics)

    flushed_at = time.monotonic()
    world.control.flushall()
    done_at_flush = succeeded(world)
    # The reconciler notices the missing epoch and pushes every claimable job again.
    wait_for(
        lambda: world.control.exists("conveyor:epoch"),
        5,
        "the reconciler to rebuild Redis",
        on_timeout=world.diagnostics,
    )
    rebuilt = time.monotonic() - flushed_at
    # Workers drain what they held, then run jobs only the rebuild could have dispatched.
    wait_for(
        lambda: succeeded(world) >= done_at_flush + 100,
        10,
        "dispatch to resume",
        on_timeout=world.diagnostics,
    )
    resumed = time.monotonic() - flushed_at
    after = [job.id for job in world.effect_jobs(100, work=WORK)]

    world.wait_terminal(1000, 45)
    assert_clean(world, before + after)
    assert all(proc.poll() is None for proc in workers), world.diagnostics()
    assert rebuilt < 2.0, f"rebuilt {rebuilt:.2f}s after FLUSHALL (reconcile interval 0.5 s)"
    print(f"\nFLUSHALL: epoch back after {rebuilt:.2f}s, 100 more jobs done after {resumed:.2f}s")


def test_redis_killed_and_restarted_empty_mid_run(world):
    before = [job.id for job in world.effect_jobs(600, work=WORK)]
    workers = [world.worker("--concurrency", "4") for _ in range(2)]
    wait_for(
        lambda: succeeded(world) >= 150, 30, "a quarter of the jobs", on_timeout=world.diagnostics
    )

    world.redis.kill()
    # Submissions commit while Redis is down, promptly, and say so.
    during: list[str] = []
    slowest = 0.0
    for _ in range(50):
        started = time.monotonic()
        job = world.app.submit("chaos_effect", {"effects": str(world.effects), "work": WORK})
        slowest = max(slowest, time.monotonic() - started)
        during.append(job.id)
    assert world.counts(during) == {"queued": 50}
    assert slowest < 1.0, f"a submit took {slowest:.2f}s with Redis down"
    time.sleep(2)  # the outage: workers keep failing to reach Redis meanwhile
    assert all(proc.poll() is None for proc in workers), world.diagnostics()

    restarted_at = time.monotonic()
    world.redis.restart_empty()
    wait_for(
        lambda: world.control.exists("conveyor:epoch"),
        10,
        "the reconciler to rebuild Redis",
        on_timeout=world.diagnostics,
    )
    rebuilt = time.monotonic() - restarted_at
    after = [job.id for job in world.effect_jobs(50, work=WORK)]

    world.wait_terminal(700, 45)
    assert_clean(world, before + during + after)
    assert all(proc.poll() is None for proc in workers), world.diagnostics()
    print(
        f"\nRedis restarted empty: epoch back after {rebuilt:.2f}s, slowest submit while "
        f"down {slowest * 1000:.0f} ms"
    )


def test_client_pause_submissions_commit_and_dispatch_catches_up(world):
    before = [job.id for job in world.effect_jobs(400, work=WORK)]
    workers = [world.worker("--concurrency", "4") for _ in range(2)]
    wait_for(
        lambda: succeeded(world) >= 100, 30, "a quarter of the jobs", on_timeout=world.diagnostics
    )

    paused_at = time.monotonic()
    world.control.client_pause(5000, all=True)
    during: list[str] = []
    latencies: list[float] = []
    while time.monotonic() - paused_at < 4.5:
        started = time.monotonic()
        job = world.app.submit("chaos_effect", {"effects": str(world.effects), "work": WORK})
        latencies.append(time.monotonic() - started)
        during.append(job.id)
        # Committed: visible in the system of record before Redis answers anyone.
        assert world.app.get(job.id).status in ("queued", "running", "succeeded")
    unpaused = time.monotonic() - paused_at

    world.wait_terminal(len(before) + len(during), 45)
    assert_clean(world, before + during)
    assert all(proc.poll() is None for proc in workers), world.diagnostics()
    assert max(latencies) < 1.5, f"a submit blocked {max(latencies):.2f}s on a paused Redis"
    assert len(during) >= 5
    # Caught up: the last job submitted during the pause finished soon after it ended.
    pause_end = time.time() - (time.monotonic() - paused_at) + 5.0
    last = max(job.finished_at.timestamp() for job in world.app.store.get_many(during))
    assert last - pause_end < 10, (
        f"jobs submitted during the pause ran {last - pause_end:.1f}s late"
    )
    print(
        f"\nCLIENT PAUSE 5 s: {len(during)} submits in {unpaused:.1f}s, slowest "
        f"{max(latencies) * 1000:.0f} ms; the last of them done {last - pause_end:.1f}s "
        "after the pause ended"
    )
