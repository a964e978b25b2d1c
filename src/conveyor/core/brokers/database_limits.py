"""Limits when the database dispatches: the same algorithm as on Redis (`core/admission.py`),
with the state of each rate window and each slot's pacing in a `limit_state` row locked while
a batch is admitted, and running jobs counted in SQL.

Coarser than Redis in one way: a concurrency slot is a row in status `running`, so a job a
dead worker held counts until the reaper rescues it (one lease, as on Redis), and a job this
worker just deferred counts until its deferral is written (a moment of extra caution).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.core.admission import (
    DEFAULT_HOLD,
    SlotState,
    Window,
    current_factor,
    decide,
    throttle_factor,
)
from conveyor.core.jobs import Status
from conveyor.core.limits import Held, Limiter, LimitPolicy, Request
from conveyor.core.store.tables import jobs, limit_state

if TYPE_CHECKING:
    from conveyor.core.settings import Settings
    from conveyor.core.store import Store


class DatabaseLimiter(Limiter):
    """Rate windows and slot pacing in `limit_state`, running jobs counted in `jobs`."""

    def __init__(self, store: Store, policy: LimitPolicy, settings: Settings) -> None:
        super().__init__(policy, settings)
        self.store = store

    # --- admission -----------------------------------------------------------------------

    def _acquire(self, requests: Sequence[Request], lease_seconds: float) -> list[float]:
        rate_keys = {c.key for r in requests for c in r.checks.rates}
        slot_checks = {s.key: s for r in requests for s in r.checks.slots}
        types = {c.adaptive for r in requests for c in r.checks.rates if c.adaptive}
        meta_keys = {f"slotmeta:{key}" for key in slot_checks}
        with self.store.engine.begin() as conn:
            now = float(conn.execute(self.store.q.now_select).scalar_one())
            rows = self._locked_rows(conn, rate_keys | meta_keys, now)
            factors = {t: self._factor(conn, t, now) for t in types}
            windows = {k: _window(rows[k]) for k in rate_keys}
            slots = self._slot_states(conn, requests, slot_checks, rows)
            waits = decide(requests, now, windows, factors, slots)
            changed = {k: _window_state(w) for k, w in windows.items()}
            changed |= {f"slotmeta:{k}": {"h": s.horizon, "a": s.hold} for k, s in slots.items()}
            self._write(conn, {k: v for k, v in changed.items() if v != rows[k]}, now)
        return waits

    def _slot_states(
        self,
        conn: Connection,
        requests: Sequence[Request],
        checks: dict[str, Any],
        rows: dict[str, dict[str, Any]],
    ) -> dict[str, SlotState]:
        """Running jobs per slot key, not counting this batch's own (claimed just now, so
        already `running`, but asking whether they may start)."""
        if not checks:
            return {}
        tenants = sorted({c.tenant for c in checks.values()})
        query = (
            select(jobs.c.tenant, jobs.c.type, func.count())
            .where(jobs.c.status == Status.RUNNING.value, jobs.c.tenant.in_(tenants))
            .group_by(jobs.c.tenant, jobs.c.type)
        )
        running: dict[tuple[str, str | None], int] = {}
        for tenant, type_, count in conn.execute(query):
            running[(tenant, type_)] = running.get((tenant, type_), 0) + count
            running[(tenant, None)] = running.get((tenant, None), 0) + count
        for request in requests:
            for check in request.checks.slots:
                group = (check.tenant, check.type)
                running[group] = running.get(group, 0) - 1
        states = {}
        for key, check in checks.items():
            meta = rows[f"slotmeta:{key}"]
            states[key] = SlotState(
                count=max(0, running.get((check.tenant, check.type), 0)),
                horizon=float(meta.get("h", 0.0)),
                hold=float(meta.get("a", DEFAULT_HOLD)),
            )
        return states

    # --- slots, throttles ----------------------------------------------------------------

    def _release(self, held: Sequence[Held], clock: float) -> None:
        # The slot itself was the row's `running` status; only the pacing learns here.
        holds: dict[str, list[float]] = {}
        for item in held:
            for slot in item.slots:
                holds.setdefault(f"slotmeta:{slot.key}", []).append(max(0.001, clock - item.since))
        with self.store.engine.begin() as conn:
            now = float(conn.execute(self.store.q.now_select).scalar_one())
            rows = self._locked_rows(conn, holds, now)
            changed = {}
            for key, seconds in holds.items():
                state = dict(rows[key])
                average = float(state.get("a", seconds[0]))
                for value in seconds:
                    average = average * 0.8 + value * 0.2
                state["a"] = average
                changed[key] = state
            self._write(conn, changed, now)

    def _refresh(self, held: Sequence[Held], lease_seconds: float) -> None:
        """Nothing to do: the job's own lease is its slot's."""

    def _throttled(self, type_: str) -> None:
        key = f"factor:{type_}"
        recovery = self.settings.throttle_recovery_seconds
        with self.store.engine.begin() as conn:
            now = float(conn.execute(self.store.q.now_select).scalar_one())
            state = self._locked_rows(conn, [key], now)[key]
            factor, at = throttle_factor(
                float(state.get("f", 1.0)), float(state.get("t", 0.0)), now, recovery
            )
            self._write(conn, {key: {"f": factor, "t": at}}, now)

    def factor(self, type_: str) -> float:
        with self.store.engine.connect() as conn:
            now = float(conn.execute(self.store.q.now_select).scalar_one())
            return self._factor(conn, type_, now)

    def _factor(self, conn: Connection, type_: str, now: float) -> float:
        raw = conn.execute(
            select(limit_state.c.state).where(limit_state.c.key == f"factor:{type_}")
        ).scalar()
        if raw is None:
            return 1.0
        state = orjson.loads(raw)
        return current_factor(
            float(state["f"]), float(state["t"]), now, self.settings.throttle_recovery_seconds
        )

    # --- rows ----------------------------------------------------------------------------

    def _locked_rows(self, conn: Connection, keys: Iterable[str], now: float) -> dict[str, Any]:
        """Each key's state, its row created if missing and locked until the commit. Keys in
        sorted order, so two workers locking overlapping sets never deadlock."""
        names = sorted(keys)
        if not names:
            return {}
        dialect = postgresql if self.store.is_postgres else sqlite
        conn.execute(
            dialect.insert(limit_state).on_conflict_do_nothing(),
            [{"key": k, "state": "{}", "updated_at": now} for k in names],
        )
        query = (
            select(limit_state.c.key, limit_state.c.state)
            .where(limit_state.c.key.in_(names))
            .order_by(limit_state.c.key)
        )
        if self.store.is_postgres:  # SQLite's transactions already hold the write lock
            query = query.with_for_update()
        return {key: orjson.loads(state) for key, state in conn.execute(query)}

    @staticmethod
    def _write(conn: Connection, changed: dict[str, Any], now: float) -> None:
        if not changed:
            return
        conn.execute(
            update(limit_state)
            .where(limit_state.c.key == bindparam("name"))
            .values(state=bindparam("value"), updated_at=now),
            [{"name": k, "value": orjson.dumps(v).decode()} for k, v in changed.items()],
        )


def _window(state: dict[str, Any]) -> Window:
    counts = {int(k): int(v) for k, v in state.get("c", {}).items()}
    return Window(counts=counts, horizon=float(state.get("h", 0.0)))


def _window_state(window: Window) -> dict[str, Any]:
    state: dict[str, Any] = {"c": {str(k): v for k, v in sorted(window.counts.items())}}
    if window.horizon:
        state["h"] = window.horizon
    return state
