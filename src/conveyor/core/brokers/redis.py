"""Dispatch through Redis. The database stays the system of record and claims stay fenced
there (`store.claim_ids`); Redis only hands job ids to workers fast, so a duplicate id is
harmless and a lost one is pushed again by the reconciler.

Keys (prefix `conveyor:` unless the URL says `?prefix=`), each queue's under its hash tag so
that every per-queue operation is single-slot on Redis Cluster:

    {queue}:ready:0 | :1 | :2   sorted sets of due job ids per priority (high, medium, low),
                                scored by run_at: FIFO within a priority, no duplicates
    {queue}:delayed             sorted set of "<priority>|<id>" scored by run_at, for scheduled
                                and retrying jobs; fetch.lua moves the due ones to ready
    epoch, reconcile:*          the reconciler's bookkeeping (see core/reconciler.py)

Sorted sets rather than lists: a re-push is idempotent (the reconciler may push everything
again without creating duplicates) and popping keeps run_at order across pushes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError

from conveyor.core.brokers.base import Broker, Ready
from conveyor.core.errors import ConfigurationError
from conveyor.core.jobs import Priority
from conveyor.core.reconciler import Reconciler, claimable_by_ids, eviction_warning

if TYPE_CHECKING:
    from conveyor.core.settings import Settings
    from conveyor.core.store import ClaimedJob, Store

log = logging.getLogger("conveyor.broker.redis")

DEFAULT_PREFIX = "conveyor:"
PRIORITIES = tuple(int(p) for p in Priority)
#: Ids per ZADD; a bulk submit of 100k jobs becomes a few dozen commands in one pipeline.
PUSH_CHUNK = 5000
#: Due delayed jobs moved to ready per queue and fetch.
PROMOTE_LIMIT = 1000
#: Longest single blocking pop; stays under the socket timeout.
BLOCK_SLICE = 2.0
#: A popped id the fence refused although the job is still claimable (locked by a concurrent
#: claim, or due by this host's clock but not yet by the database's) comes back this late.
REFUSED_BACKOFF = 0.5
#: Socket timeout of announcements (the push after a submit commits, and requeues): a slow or
#: paused Redis must not hold a committed submit up; the reconciler pushes what times out.
ANNOUNCE_TIMEOUT = 0.5
#: After an announcement failed, later ones skip Redis this long (each would wait out the
#: timeout again) and are left to the reconciler.
ANNOUNCE_HOLD_OFF = 1.0


def parse_url(url: str) -> tuple[str, str]:
    """Split a broker URL into (URL for redis-py, key prefix)."""
    parts = urlsplit(url)
    prefix = DEFAULT_PREFIX
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            prefix = value
        else:
            rest.append((name, value))
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"broker key prefix {prefix!r} must not contain braces")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}epoch"
        self.reconcile_lock = f"{prefix}reconcile:lock"
        self.reconcile_mark = f"{prefix}reconcile:mark"
        self.reconcile_full = f"{prefix}reconcile:full"

    def ready(self, queue: str, priority: int) -> str:
        return f"{self.prefix}{{{queue}}}:ready:{priority}"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}{{{queue}}}:delayed"

    def of_queue(self, queue: str) -> list[str]:
        """The four keys fetch.lua takes per queue, in its order."""
        return [*(self.ready(queue, p) for p in PRIORITIES), self.delayed(queue)]


@dataclass(slots=True, frozen=True)
class Popped:
    id: str
    queue: str
    priority: int
    score: float


class RedisBroker(Broker):
    """Ready sets per queue and priority, one Lua call per batch fetch, blocking wake-ups."""

    name = "redis"

    def __init__(self, store: Store, settings: Settings, url: str) -> None:
        super().__init__(store, settings)
        client_url, prefix = parse_url(url)
        self.url = client_url
        self.keys = Keys(prefix)
        self.redis: redis.Redis = redis.Redis.from_url(
            client_url,
            decode_responses=True,
            socket_timeout=BLOCK_SLICE + 3.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )
        self._announcer: redis.Redis = redis.Redis.from_url(
            client_url,
            decode_responses=True,
            socket_timeout=ANNOUNCE_TIMEOUT,
            socket_connect_timeout=ANNOUNCE_TIMEOUT,
        )
        source = resources.files("conveyor.core.brokers").joinpath("fetch.lua").read_text()
        self._fetch_script = self.redis.register_script(source)
        # Ids a blocking pop took during `wait`; the next fetch claims them first.
        self._stash: list[Popped] = []
        self._stash_lock = threading.Lock()
        self._next_due: dict[tuple[str, ...], float | None] = {}
        self._push_failing = False
        self._announce_after = 0.0  # time.monotonic() before which announcements skip Redis

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(self, self.settings.reconcile_seconds)

    # --- fetch ---------------------------------------------------------------------------

    def _fetch(
        self, queues: Sequence[str], limit: int, worker_id: str, lease_seconds: float
    ) -> list[ClaimedJob]:
        popped = self._take_stash(queues, limit)
        if len(popped) < limit:
            popped += self._pop(queues, limit - len(popped))
        if not popped:
            return []
        try:
            claimed = self.store.claim_ids([p.id for p in popped], worker_id, lease_seconds)
        except Exception:
            self._put_back(popped)
            raise
        if len(claimed) < len(popped):
            won = {job.id for job in claimed}
            self._recheck([p for p in popped if p.id not in won])
        return claimed

    def _pop(self, queues: Sequence[str], limit: int) -> list[Popped]:
        keys = [key for queue in queues for key in self.keys.of_queue(queue)]
        reply = self._fetch_script(keys=keys, args=[repr(time.time()), limit, PROMOTE_LIMIT])
        self._next_due[tuple(queues)] = float(reply[0]) if reply[0] else None
        return [
            Popped(reply[i], queues[int(reply[i + 1])], int(reply[i + 2]), float(reply[i + 3]))
            for i in range(1, len(reply), 4)
        ]

    def _take_stash(self, queues: Sequence[str], limit: int) -> list[Popped]:
        if not self._stash:
            return []
        wanted = set(queues)
        with self._stash_lock:
            taken = [p for p in self._stash if p.queue in wanted][:limit]
            for item in taken:
                self._stash.remove(item)
        return taken

    def _put_back(self, popped: Sequence[Popped]) -> None:
        """Return ids popped but not claimed (the database failed) to their places."""
        try:
            self.push(Ready(p.id, p.queue, p.priority, p.score) for p in popped)
        except RedisError as exc:
            log.warning(
                "could not return %d id(s) to Redis (the reconciler will): %s", len(popped), exc
            )

    def _recheck(self, refused: Sequence[Popped]) -> None:
        """Ids the fence refused: most were claimed elsewhere or finished (drop them); the
        ones still claimable come back a little later."""
        still = claimable_by_ids(self.store, [p.id for p in refused])
        if still:
            later = time.time() + REFUSED_BACKOFF
            self.push(job._replace(run_at=max(job.run_at, later)) for job in still)

    # --- push ----------------------------------------------------------------------------

    def _dispatched(self, job_ids: Sequence[str], queues: set[str]) -> None:
        try:
            ready = claimable_by_ids(self.store, job_ids)
        except Exception as exc:
            log.warning(
                "could not look up %d job(s) to dispatch (the reconciler will): %s",
                len(job_ids),
                exc,
            )
            return
        self._announce(ready)

    def _announce(self, ready: Sequence[Ready]) -> None:
        # The jobs are committed: a failure here must not look like a failed submit. The
        # reconciler pushes whatever does not arrive now.
        if self._push_failing and time.monotonic() < self._announce_after:
            return
        try:
            self.push(ready, client=self._announcer)
        except RedisError as exc:
            if not self._push_failing:
                log.warning("Redis unreachable, dispatch waits for the reconciler: %s", exc)
            self._push_failing = True
            self._announce_after = time.monotonic() + ANNOUNCE_HOLD_OFF
            return
        if self._push_failing:
            log.info("Redis reachable again")
            self._push_failing = False

    def push(
        self, jobs: Iterable[Ready], now: float | None = None, client: redis.Redis | None = None
    ) -> int:
        """Make jobs known to Redis: due ones ready, future ones delayed. Idempotent; returns
        how many were not there before."""
        now = time.time() if now is None else now
        groups: dict[tuple[str, bool], dict[str, float]] = {}
        for job in jobs:
            if job.run_at <= now:
                key = (self.keys.ready(job.queue, job.priority), True)
                groups.setdefault(key, {})[job.id] = job.run_at
            else:
                key = (self.keys.delayed(job.queue), False)
                groups.setdefault(key, {})[f"{job.priority}|{job.id}"] = job.run_at
        if not groups:
            return 0
        pipe = (client or self.redis).pipeline(transaction=False)
        for (name, ready), members in groups.items():
            items = list(members.items())
            for start in range(0, len(items), PUSH_CHUNK):
                # Ready ids keep their place (NX); a delayed job takes its newest run_at.
                pipe.zadd(name, dict(items[start : start + PUSH_CHUNK]), nx=ready)
        return sum(int(n) for n in pipe.execute())

    def missing(self, jobs: Sequence[Ready]) -> list[Ready]:
        """The jobs Redis holds neither as ready nor as delayed."""
        groups: dict[tuple[str, int], list[Ready]] = {}
        for job in jobs:
            groups.setdefault((job.queue, job.priority), []).append(job)
        pipe = self.redis.pipeline(transaction=False)
        for (queue, priority), members in groups.items():
            pipe.zmscore(self.keys.ready(queue, priority), [job.id for job in members])
            pipe.zmscore(self.keys.delayed(queue), [f"{priority}|{job.id}" for job in members])
        replies = iter(pipe.execute())
        absent: list[Ready] = []
        for members in groups.values():
            ready, delayed = next(replies), next(replies)
            absent.extend(
                job for job, r, d in zip(members, ready, delayed, strict=True) if r is d is None
            )
        return absent

    # --- wait ----------------------------------------------------------------------------

    def _wait(self, queues: Sequence[str], timeout: float) -> None:
        if not queues:  # every queue of this worker is paused
            time.sleep(timeout)
            return
        if any(p.queue in queues for p in self._stash):
            return  # an earlier wait popped work the next fetch has not taken yet
        deadline = time.monotonic() + timeout
        next_due = self._next_due.get(tuple(queues))
        if next_due is not None:
            deadline = min(deadline, time.monotonic() + next_due - time.time())
        # A blocking pop wakes on the first push; high before medium before low.
        keys = [self.keys.ready(queue, p) for p in PRIORITIES for queue in queues]
        by_key = {self.keys.ready(q, p): (q, p) for p in PRIORITIES for q in queues}
        while (left := deadline - time.monotonic()) > 0.001:
            try:
                item = self.redis.bzpopmin(keys, timeout=min(left, BLOCK_SLICE))
            except RedisError as exc:
                log.warning("waiting on Redis failed: %s", exc)
                time.sleep(min(max(left, 0.0), self.settings.poll_seconds))
                return
            if item:
                key, job_id, score = item
                queue, priority = by_key[str(key)]
                with self._stash_lock:
                    self._stash.append(Popped(str(job_id), queue, priority, float(score)))
                return

    # --- reconcile, inspection, shutdown -------------------------------------------------

    def reconcile(self) -> int:
        return self.reconciler.run_once()

    def worker_lost(self) -> None:
        # A worker killed between fetch.lua's pop and its claim took ids nobody will claim;
        # their run_at is too old for the sweep, so only a full pass finds them.
        try:
            self.reconciler.request_full_pass()
        except RedisError as exc:  # the periodic full pass still comes
            log.info("could not ask for a full reconcile: %s", exc)

    def warn_if_evicting(self) -> None:
        """Log a warning when Redis's eviction policy could drop dispatch keys."""
        try:
            config = self.redis.config_get("maxmemory*")
        except RedisError as exc:  # managed Redis services often disable CONFIG
            log.info(
                "could not read Redis's maxmemory-policy (%s); make sure it is noeviction", exc
            )
            return
        message = eviction_warning(
            str(config.get("maxmemory-policy", "")), int(config.get("maxmemory") or 0)
        )
        if message:
            log.warning(message)

    def depths(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per queue: ready ids per priority and delayed ids, as Redis sees them now."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            for key in self.keys.of_queue(queue):
                pipe.zcard(key)
        counts = pipe.execute()
        result = {}
        for index, queue in enumerate(queues):
            high, medium, low, delayed = counts[index * 4 : index * 4 + 4]
            result[queue] = {"high": high, "medium": medium, "low": low, "delayed": delayed}
        return result

    def close(self) -> None:
        with self._stash_lock:
            stash, self._stash = self._stash, []
        if stash:
            self._put_back(stash)
        self.redis.close()
        self._announcer.close()
