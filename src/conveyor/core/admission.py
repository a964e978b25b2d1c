"""Admission: the algorithm every limiter runs, written out once in Python. The database
limiter calls it; `brokers/limit_acquire.lua` mirrors it line for line on Redis.

- A rate window ("50/s") lets at most N jobs start in any window of one period. The window
  is cut into `SLICES` slices and a start taken in a slice comes back once the whole slice
  has left the window, so the bound holds exactly with a handful of counters per key. (A
  token bucket of 50 refilled at 50/s lets 100 start within one second: the full bucket,
  then the refill; and a bucket of 1 would starve batched claims.)
- A concurrency limit counts running jobs (on Redis, slot leases; in the database, rows).
- A job passes every limit that applies to it or takes nothing, and is deferred by the wait
  `decide` computes. Each limit keeps a *horizon* that every deferral moves on by one slot's
  worth of time, so a backlog comes back at the pace the limit lets through, not all at once.
- Upstream 429s halve a type's rate (a *factor*, stretching its window), which recovers by
  doubling every `throttle_recovery_seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.core.limits import Rate, Request

#: Slices per rate window: the window slides in steps of a tenth of its period.
SLICES = 10
#: The slowest a type gets after 429s: a sixteenth of its declared rate.
MIN_FACTOR = 1 / 16
#: 429s closer together than this halve a type's rate once (jobs running side by side tend
#: to hit the same wall together).
THROTTLE_DEBOUNCE = 0.25
#: Assumed time a concurrency slot is held until releases have measured it.
DEFAULT_HOLD = 1.0
#: Shortest deferral, so that a job held back is never claimed again the same instant.
MIN_WAIT = 0.01


def current_factor(factor: float, at: float, now: float, recovery: float) -> float:
    """A slowed type's factor recovers by doubling every `recovery` seconds, up to 1."""
    doublings = min(64.0, max(0.0, now - at) / max(recovery, 1e-3))
    return min(1.0, factor * 2**doublings)


def throttle_factor(factor: float, at: float, now: float, recovery: float) -> tuple[float, float]:
    """(factor, at) after a 429: halved, unless one came within THROTTLE_DEBOUNCE."""
    if now - at < THROTTLE_DEBOUNCE:
        return factor, at
    return max(MIN_FACTOR, current_factor(factor, at, now, recovery) / 2), now


@dataclass(slots=True)
class Window:
    """One rate key: starts per slice (slice index -> count) and the deferral horizon."""

    counts: dict[int, int] = field(default_factory=dict)
    horizon: float = 0.0
    # Set by `open` for one decision round.
    used: int = 0
    cur: int = 0
    span: int = SLICES
    size: float = 1.0

    def open(self, now: float, rate: Rate, factor: float) -> None:
        self.size = rate.period / SLICES
        self.cur = math.floor(now / self.size)
        # A slowed type keeps its limit over a longer window.
        self.span = math.ceil(SLICES / factor - 1e-9)
        oldest = self.cur - math.ceil(SLICES / MIN_FACTOR)
        self.counts = {s: c for s, c in self.counts.items() if s > oldest}
        self.used = sum(c for s, c in self.counts.items() if s >= self.cur - self.span)

    def back_at(self, limit: int) -> float:
        """When enough slots come back for one more start."""
        needed, freed = self.used - limit + 1, 0
        for index in range(self.cur - self.span, self.cur + 1):
            freed += self.counts.get(index, 0)
            if freed >= needed:
                return (index + self.span + 1) * self.size
        return (self.cur + self.span + 1) * self.size

    def take(self) -> None:
        self.counts[self.cur] = self.counts.get(self.cur, 0) + 1
        self.used += 1


@dataclass(slots=True)
class SlotState:
    """One concurrency key: running holders, deferral horizon, average hold (seconds)."""

    count: int = 0
    horizon: float = 0.0
    hold: float = DEFAULT_HOLD


def decide(
    requests: Sequence[Request],
    now: float,
    windows: dict[str, Window],
    factors: dict[str, float],
    slots: dict[str, SlotState],
) -> list[float]:
    """For each request in order: 0.0 (start: its slots are taken) or the seconds to defer
    it. A job passes every limit or takes nothing. Deferred jobs are spread out: each limit
    keeps a horizon that every deferral moves on by one slot's worth of time, so a backlog
    comes back at the pace the limit lets through rather than all at once."""
    opened: set[str] = set()
    waits = []
    for request in requests:
        blocked: list[tuple[Window | SlotState, float, float]] = []
        for check in request.checks.rates:
            window = windows[check.key]
            factor = factors.get(check.adaptive or "", 1.0)
            if check.key not in opened:
                window.open(now, check.rate, factor)
                opened.add(check.key)
            if window.used >= check.rate.limit:
                spacing = check.rate.period / (factor * check.rate.limit)
                blocked.append((window, window.back_at(check.rate.limit), spacing))
        for slot in request.checks.slots:
            state = slots[slot.key]
            if state.count >= slot.limit:
                spacing = state.hold / slot.limit
                blocked.append((state, now + spacing, spacing))
        if not blocked:
            for check in request.checks.rates:
                windows[check.key].take()
            for slot in request.checks.slots:
                slots[slot.key].count += 1
            waits.append(0.0)
            continue
        comeback = now
        for limit, natural, spacing in blocked:
            at = max(natural, limit.horizon)
            limit.horizon = at + spacing
            comeback = max(comeback, at)
        waits.append(max(MIN_WAIT, comeback - now))
    return waits
