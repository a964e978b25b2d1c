"""Fairness and limits: rates per job type and per tenant, running jobs per tenant, and the
slow-down a type gets when its provider answers 429 (docs/limits.md).

A worker asks its limiter whether the jobs it just claimed may start. A job a limit holds
back is *deferred*: its lease goes back with status `scheduled` and `run_at` at the wait the
limiter computed, without counting an attempt or writing an execution row. The limiter lives
beside the broker: Lua on Redis (`brokers/redis_limits.py`), rows and counts in the database
(`brokers/database_limits.py`); both run the algorithm of `core/admission.py`.

This module holds the specifications ("50/s"), the policy (which limits apply to a job) and
the `Limiter` interface, which keeps the books of which running job holds which slots.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import ConfigurationError
from conveyor.core.retry import _status_of

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor
    from conveyor.core.settings import Settings
    from conveyor.core.store import ClaimedJob, Completion

log = logging.getLogger("conveyor.limits")

#: Deferral when the limiter itself cannot be reached: limits hold even then.
UNAVAILABLE_WAIT = 1.0

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+?)s?\s*$")


# --- specifications ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` starts in any window of `period` seconds."""

    limit: int
    period: float

    @property
    def spec(self) -> str:
        return f"{self.limit}/{self.period:g}s"


def parse_rate(spec: str) -> Rate:
    """ "50/s", "300/m", "10/h", "1000/d", "5/10s" -> Rate; raises ConfigurationError."""
    match = _RATE.match(spec.lower()) if isinstance(spec, str) else None
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise ConfigurationError(
            f"rate limit {spec!r} is not N/unit (for example 50/s, 300/m, 10/h, 5/10s)"
        )
    limit = int(match.group(1))
    period = float(match.group(2) or 1) * unit
    if limit < 1 or period <= 0:
        raise ConfigurationError(f"rate limit {spec!r} must allow at least 1 per period")
    return Rate(limit, period)


def _per_tenant(value: str | int | None, parse: Any, what: str) -> tuple[Any, dict[str, Any]]:
    """ "default,name=value,..." -> (default or None, {tenant: value})."""
    if value is None or value == "":
        return None, {}
    default, overrides = None, {}
    for item in str(value).split(","):
        name, sep, spec = item.strip().rpartition("=")
        if not spec:
            continue
        if sep and not name.strip():
            raise ConfigurationError(f"{what}: {item.strip()!r} names no tenant")
        if sep:
            overrides[name.strip()] = parse(spec.strip())
        else:
            default = parse(spec.strip())
    return default, overrides


def _concurrency(spec: str) -> int:
    try:
        value = int(spec)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"tenant concurrency {spec!r} must be a positive integer")
    return value


def is_throttle(exc: BaseException) -> bool:
    """Did an upstream provider say "too many requests"? (`Throttled`, `RetryableError(...,
    throttled=True)`, or an HTTP error whose status is 429.)"""
    return getattr(exc, "throttled", False) is True or _status_of(exc) == 429


# --- what one claimed job asks for -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateCheck:
    key: str
    rate: Rate
    adaptive: str | None = None  # the job type whose 429s slow this rate down


@dataclass(frozen=True, slots=True)
class SlotCheck:
    key: str
    limit: int
    tenant: str
    type: str | None = None  # None: every type of the tenant counts


@dataclass(frozen=True, slots=True)
class Checks:
    rates: tuple[RateCheck, ...] = ()
    slots: tuple[SlotCheck, ...] = ()


@dataclass(slots=True)
class Request:
    """A claimed job and the limits it must pass to start."""

    job: ClaimedJob
    checks: Checks

    @property
    def member(self) -> str:
        # The lease token keeps a rescued job's new slot apart from its dead worker's.
        return f"{self.job.id}:{self.job.lease_token}"


@dataclass(slots=True)
class Held:
    """Slots a running job holds, to renew with heartbeats and give back when it ends."""

    member: str
    slots: tuple[SlotCheck, ...]
    since: float


class LimitPolicy:
    """Which limits apply to which job, from the handlers' options and the settings."""

    def __init__(self, app: Conveyor) -> None:
        settings = app.settings
        self.type_rates = {h.type: parse_rate(h.rate_limit) for h in app.registry if h.rate_limit}
        self.type_concurrency = {
            h.type: h.tenant_concurrency for h in app.registry if h.tenant_concurrency
        }
        self.tenant_rate, self.tenant_rates = _per_tenant(
            settings.tenant_rate_limit, parse_rate, "CONVEYOR_TENANT_RATE_LIMIT"
        )
        self.tenant_concurrency, self.tenant_concurrencies = _per_tenant(
            settings.tenant_concurrency, _concurrency, "CONVEYOR_TENANT_CONCURRENCY"
        )
        self.enabled = bool(
            self.type_rates
            or self.type_concurrency
            or self.tenant_rate
            or self.tenant_rates
            or self.tenant_concurrency
            or self.tenant_concurrencies
        )
        self._cache: dict[tuple[str, str], Checks] = {}
        self._lock = threading.Lock()

    def checks(self, type_: str, tenant: str) -> Checks:
        """The limits a job of this type and tenant must pass (cached)."""
        found = self._cache.get((type_, tenant))
        if found is None:
            found = self._build(type_, tenant)
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[(type_, tenant)] = found
        return found

    def _build(self, type_: str, tenant: str) -> Checks:
        rates, slots = [], []
        rate = self.type_rates.get(type_)
        if rate is not None:
            rates.append(RateCheck(f"rate:type:{rate.spec}:{type_}", rate, type_))
        if tenant:  # jobs without a tenant are nobody's: tenant limits skip them
            rate = self.tenant_rates.get(tenant, self.tenant_rate)
            if rate is not None:
                rates.append(RateCheck(f"rate:tenant:{rate.spec}:{tenant}", rate))
            limit = self.tenant_concurrencies.get(tenant, self.tenant_concurrency)
            if limit is not None:
                slots.append(SlotCheck(f"tenant:{tenant}", limit, tenant))
            limit = self.type_concurrency.get(type_)
            if limit is not None:
                slots.append(SlotCheck(f"type:{len(type_)}:{type_}:{tenant}", limit, tenant, type_))
        return Checks(tuple(rates), tuple(slots))

    def requests(self, jobs: Sequence[ClaimedJob]) -> list[Request]:
        """The jobs among `jobs` that some limit applies to."""
        found = []
        for job in jobs:
            checks = self.checks(job.type, job.tenant or "")
            if checks.rates or checks.slots:
                found.append(Request(job, checks))
        return found


# --- the interface -----------------------------------------------------------------------


class Limiter(ABC):
    """Admits claimed jobs under a policy. Public methods keep the books (which running job
    holds which slots); backends implement the `_primitives`. Thread-safe."""

    def __init__(self, policy: LimitPolicy, settings: Settings) -> None:
        self.policy = policy
        self.settings = settings
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()

    def requests(self, jobs: Sequence[ClaimedJob]) -> list[Request]:
        """The jobs among `jobs` that some limit applies to (no I/O: jobs no limit concerns
        cost the worker no call)."""
        return self.policy.requests(jobs)

    def admit(
        self, requests: Sequence[Request], lease_seconds: float, clock: float
    ) -> list[tuple[ClaimedJob, float]]:
        """Take slots for the jobs that may start now; returns the others with their waits.
        `clock` is the caller's monotonic time (for measuring how long slots are held)."""
        if not requests:
            return []
        try:
            waits = self._acquire(requests, lease_seconds)
        except Exception as exc:
            # Limits are promises: when the limiter is away, hold limited jobs back.
            log.warning(
                "limiter unavailable, deferring %d limited job(s) by %gs: %s: %s",
                len(requests),
                UNAVAILABLE_WAIT,
                type(exc).__name__,
                exc,
            )
            return [(r.job, UNAVAILABLE_WAIT) for r in requests]
        deferred = []
        with self._lock:
            for request, wait in zip(requests, waits, strict=True):
                if wait > 0:
                    deferred.append((request.job, wait))
                elif request.checks.slots:
                    self._held[request.job.id] = Held(request.member, request.checks.slots, clock)
        return deferred

    def concerns(self, job: ClaimedJob, completion: Completion) -> bool:
        """Whether `finished` has anything to do for this ended job (no I/O)."""
        return job.id in self._held or (completion.throttled and job.type in self.policy.type_rates)

    def finished(self, ended: Sequence[tuple[ClaimedJob, Completion]], clock: float) -> None:
        """Give back the slots of jobs that ended, and slow types whose provider said 429."""
        with self._lock:
            held = [h for job, _ in ended if (h := self._held.pop(job.id, None)) is not None]
        if held:
            self._release(held, clock)
        throttled = {
            job.type for job, c in ended if c.throttled and job.type in self.policy.type_rates
        }
        for type_ in throttled:
            self._throttled(type_)

    def release(self, job_ids: Sequence[str], clock: float) -> None:
        """Give back the slots of jobs handed back unfinished (shutdown)."""
        with self._lock:
            held = [h for i in job_ids if (h := self._held.pop(i, None)) is not None]
        if held:
            self._release(held, clock)

    def refresh(self, job_ids: Sequence[str], lease_seconds: float) -> None:
        """Renew the slot leases of jobs still running (called with heartbeats)."""
        with self._lock:
            held = [h for i in job_ids if (h := self._held.get(i)) is not None]
        if held:
            self._refresh(held, lease_seconds)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @abstractmethod
    def factor(self, type_: str) -> float:
        """The share of its declared rate a type gets now (below 1 after upstream 429s)."""

    @abstractmethod
    def _acquire(self, requests: Sequence[Request], lease_seconds: float) -> list[float]: ...

    @abstractmethod
    def _release(self, held: Sequence[Held], clock: float) -> None: ...

    @abstractmethod
    def _refresh(self, held: Sequence[Held], lease_seconds: float) -> None: ...

    @abstractmethod
    def _throttled(self, type_: str) -> None: ...


def limiter_for(app: Conveyor) -> Limiter | None:
    """The limiter a worker of `app` uses, or None when no limit is configured (then the
    worker makes no extra call per job)."""
    policy = LimitPolicy(app)
    if not policy.enabled:
        return None
    from conveyor.core.brokers.redis import RedisBroker

    if isinstance(app.broker, RedisBroker):
        from conveyor.core.brokers.redis_limits import RedisLimiter

        return RedisLimiter(app.broker.redis, app.broker.keys.prefix, policy, app.settings)
    from conveyor.core.brokers.database_limits import DatabaseLimiter

    return DatabaseLimiter(app.store, policy, app.settings)


__all__ = [
    "LimitPolicy",
    "Limiter",
    "Rate",
    "is_throttle",
    "limiter_for",
    "parse_rate",
]
