"""PostgreSQL, the system of record, stopped (`pg_ctl stop -m immediate`) for 10 s while
workers run and a client keeps submitting, then started again on the same port.

While it is down a submission must fail with `StoreUnavailable` (never report a job that did
not commit); workers must back off without crashing, and after the restart every job that was
acknowledged runs to the end with its side effect at most once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import wait_for
from servers import Rig, rig

from conveyor.core.errors import StoreUnavailable

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(90)]

OUTAGE = 10.0
WORK = 0.05


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Rig]:
    with rig(tmp_path) as started:
        yield started


@dataclass
class Submitter:
    """Submits one job at a time until stopped, noting what each submission answered."""

    world: Rig
    accepted: list[tuple[float, float, str]] = field(default_factory=list)  # (sent, answered, id)
    refused: list[tuple[float, StoreUnavailable]] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    slowest_refusal: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        payload = {"effects": str(self.world.effects), "work": WORK}
        while not self.stop.is_set():
            started = time.monotonic()
            sent = time.time()
            try:
                job = self.world.app.submit("chaos_effect", payload)
            except StoreUnavailable as exc:
                self.refused.append((time.time(), exc))
                self.slowest_refusal = max(self.slowest_refusal, time.monotonic() - started)
            except BaseException as exc:  # anything else is a finding
                self.unexpected.append(exc)
            else:
                self.accepted.append((sent, time.time(), job.id))
            self.stop.wait(0.05)


def test_postgres_stopped_for_ten_seconds_submits_fail_cleanly_and_workers_finish(world):
    before = [job.id for job in world.effect_jobs(500, work=WORK)]
    workers = [world.worker("--concurrency", "4") for _ in range(3)]
    wait_for(
        lambda: world.counts().get("succeeded", 0) >= 100,
        30,
        "a fifth of the jobs",
        on_timeout=world.diagnostics,
    )

    submitter = Submitter(world)
    thread = threading.Thread(target=submitter.run, name="submitter")
    thread.start()
    try:
        wait_for(lambda: len(submitter.accepted) >= 5, 10, "submissions before the outage")
        world.pg.stop("immediate")
        stopped_at = time.time()
        time.sleep(OUTAGE)  # the outage itself: its length is the point of the test
        assert all(proc.poll() is None for proc in workers), world.diagnostics()
        restarting_at = time.time()  # submissions may succeed before pg_ctl returns
        world.pg.start()
        restarted_at = time.time()
        wait_for(
            lambda: sum(sent > restarted_at for sent, _, _ in submitter.accepted) >= 20,
            15,
            "submissions to succeed after the restart",
            on_timeout=world.diagnostics,
        )
    finally:
        submitter.stop.set()
        thread.join(timeout=30)

    assert submitter.unexpected == [], submitter.unexpected
    # While the server was down every submission failed, promptly and saying why.
    false = [
        sent - stopped_at
        for sent, answered, _ in submitter.accepted
        if sent > stopped_at and answered < restarting_at
    ]
    assert not false, f"sent {false} s after the stop and accepted with the database down"
    down = [exc for at, exc in submitter.refused if stopped_at < at < restarting_at]
    assert len(down) >= 10
    assert all("database is unreachable" in str(exc) for exc in down), down[0]
    assert submitter.slowest_refusal < 3.0

    accepted = [job_id for _, _, job_id in submitter.accepted]
    ids = before + accepted
    counts = world.wait_terminal(len(ids), 50)
    assert counts == {"succeeded": len(ids)}, counts  # every acknowledged job exists and ran
    assert all(proc.poll() is None for proc in workers), world.diagnostics()
    logs = "".join(world.procs.log_of(proc) for proc in workers)
    assert "claim failed, backing off" in logs

    result = world.audit(ids)
    assert result.duplicated == [] and result.strays == [] and result.problems == []
    assert result.unexplained_missing == []
    # Uncertain only where the outage cut an attempt short inside its effect.
    for job_id, began in result.uncertain.items():
        assert began is not None, job_id
        assert began.outcome in ("lease_expired", "retryable_error"), (job_id, began)
    retried = sum(1 for job in result.jobs.values() if job.attempts > 1)
    print(
        f"\nPostgreSQL down {OUTAGE:g}s: {len(down)} submissions refused (slowest "
        f"{submitter.slowest_refusal * 1000:.0f} ms), {len(accepted)} accepted; "
        f"{retried} job(s) needed another attempt; uncertain effects: "
        f"{len(result.uncertain)} ({len(result.missing)} missing)"
    )
