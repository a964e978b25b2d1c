"""The reconciler: rebuilds the Redis broker's view from the database, the system of record.

Redis only says who hears about a job first; losing it loses no job. Every interval one worker
(a Redis lock elects it) makes sure Redis knows every claimable job:

- Redis lost its data (FLUSHALL, a restart with no persistence, eviction of the epoch key):
  the `epoch` key is gone, so every claimable job is pushed again (a *rebuild*).
- A job whose row committed but whose push never arrived (the submitter crashed between the
  two, Redis was unreachable, or the job was submitted inside the caller's transaction): every
  transition into a claimable state sets `run_at` to the time of the transition or later, so
  a sweep of the jobs whose run_at passed since the previous sweep finds it (a *sweep*).
- Anything else (a key evicted under an `allkeys-*` policy, a transaction that stayed open
  longer than the sweep's overlap): a full pass every `full_seconds` catches it.

Pushes are idempotent (a ready id keeps its place), so restoring a job Redis still had is a
no-op, and a duplicate of a job just claimed is refused by the fenced claim.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from conveyor.core.brokers.base import Ready
from conveyor.core.jobs import CLAIMABLE
from conveyor.core.store.tables import jobs

if TYPE_CHECKING:
    from conveyor.core.brokers.redis import RedisBroker
    from conveyor.core.store import Store

log = logging.getLogger("conveyor.reconciler")

CLAIMABLE_VALUES = [status.value for status in CLAIMABLE]
PAGE = 5000
#: Jobs due more recently than this are left to their own push (in flight, or claimed any
#: moment): at high throughput, sweeping them would cost a read per job for nothing. A lost
#: push is found within one interval plus this.
LAG_SECONDS = 1.0


# --- reads of the system of record -------------------------------------------------------


def claimable_by_ids(store: Store, ids: Sequence[str]) -> list[Ready]:
    """The jobs among `ids` that are still claimable, with their routing."""
    if not ids:
        return []
    query = select(jobs.c.id, jobs.c.queue, jobs.c.priority, jobs.c.run_at).where(
        jobs.c.id.in_(list(ids)), jobs.c.status.in_(CLAIMABLE_VALUES)
    )
    with store.engine.connect() as conn:
        return [Ready(*row) for row in conn.execute(query)]


def claimable_pages(
    store: Store, since: float | None = None, until: float | None = None
) -> Iterator[list[Ready]]:
    """Every claimable job (with run_at in (since, until] when given), a page at a time.

    Each page is its own short read, keyed by id, so a long pass never holds a transaction
    (on SQLite every transaction takes the write lock)."""
    after = ""
    while True:
        query = (
            select(jobs.c.id, jobs.c.queue, jobs.c.priority, jobs.c.run_at)
            .where(jobs.c.status.in_(CLAIMABLE_VALUES), jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(PAGE)
        )
        if since is not None:
            query = query.where(jobs.c.run_at > since)
        if until is not None:
            query = query.where(jobs.c.run_at <= until)
        with store.engine.connect() as conn:
            page = [Ready(*row) for row in conn.execute(query)]
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1].id


# --- the reconciler ----------------------------------------------------------------------


class Reconciler:
    """Makes Redis agree with the database; `run_once` is called by every worker."""

    def __init__(self, broker: RedisBroker, interval: float, full_seconds: float | None = None):
        self.broker = broker
        self.store = broker.store
        self.interval = max(0.05, interval)
        self.full_seconds = full_seconds or max(60.0, 12 * self.interval)
        # A job's run_at may predate its commit (long transaction, clocks apart): look back.
        self.overlap = max(5.0, self.interval)
        self._token = f"{os.getpid()}:{id(self):x}"
        self._policy_checked = False

    def run_once(self, force: bool = False) -> int:
        """Reconcile if no other worker did this interval (or `force`); returns how many ids
        Redis did not know and got back."""
        if not self._policy_checked:
            self._policy_checked = True
            self.broker.warn_if_evicting()
        redis, keys = self.broker.redis, self.broker.keys
        lock_ms = max(10, int(self.interval * 800))
        if not redis.set(keys.reconcile_lock, self._token, nx=True, px=lock_ms) and not force:
            return 0
        epoch, mark = redis.mget(keys.epoch, keys.reconcile_mark)
        until = self.store.now() - LAG_SECONDS
        if epoch is None or mark is None:
            restored = self.rebuild()
            if epoch is None:
                log.log(
                    logging.WARNING if restored else logging.INFO,
                    "Redis holds no dispatch state (first start, FLUSHALL or a restart without "
                    "persistence): pushed %d claimable job(s) from the database",
                    restored,
                )
                redis.set(keys.epoch, f"{time.time():.6f}:{self._token}")
            redis.set(keys.reconcile_mark, repr(until))
            redis.set(keys.reconcile_full, "1", ex=max(1, int(self.full_seconds)))
            return restored
        if redis.set(keys.reconcile_full, "1", nx=True, ex=max(1, int(self.full_seconds))):
            restored = self.rebuild()
        else:
            restored = self._push(claimable_pages(self.store, float(mark) - self.overlap, until))
        redis.set(keys.reconcile_mark, repr(max(until, float(mark))))
        if restored:
            # Expected for jobs submitted inside a caller's transaction; otherwise a lost push.
            log.info("reconcile: pushed %d committed job(s) Redis did not know", restored)
        return restored

    def request_full_pass(self) -> None:
        """Make the next reconcile (by any worker) a full pass instead of a sweep."""
        self.broker.redis.delete(self.broker.keys.reconcile_full)

    def rebuild(self) -> int:
        """Push every claimable job; returns how many Redis did not have."""
        return self._push(claimable_pages(self.store))

    def _push(self, pages: Iterator[list[Ready]]) -> int:
        restored = 0
        for page in pages:
            missing = self.broker.missing(page)
            if missing:
                # Re-read before pushing: a job claimed since the page was read would only be
                # a duplicate for the fence to refuse, but there is no need to make one.
                still = claimable_by_ids(self.store, [job.id for job in missing])
                restored += self.broker.push(still)
        return restored


def eviction_warning(policy: str, maxmemory: int) -> str | None:
    """The warning to give for Redis's eviction settings, or None when keys are safe.

    Conveyor's keys carry no TTL, so `noeviction` and the `volatile-*` policies never evict
    them; an `allkeys-*` policy may, once `maxmemory` is reached."""
    if not policy.startswith("allkeys"):
        return None
    limit = f"maxmemory {maxmemory} bytes" if maxmemory else "no maxmemory set yet"
    return (
        f"Redis maxmemory-policy is {policy} ({limit}): Redis may evict Conveyor's dispatch "
        "keys, and evicted jobs stall until the next full reconcile. Set maxmemory-policy to "
        "noeviction (or a volatile-* policy) on this Redis."
    )


__all__ = ["Reconciler", "claimable_by_ids", "claimable_pages", "eviction_warning"]
