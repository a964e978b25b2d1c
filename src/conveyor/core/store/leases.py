"""The fenced half of the store: claims, completions, heartbeats, rescues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select, update

from conveyor.core.jobs import Status
from conveyor.core.store.queries import Queries
from conveyor.core.store.records import ClaimedJob, Completion
from conveyor.core.store.tables import effects, job_dependencies, jobs

#: Due jobs moved to `queued` per claim at most (the rest follow on the next claim).
PROMOTE_LIMIT = 5000


class LeaseStore:
    """Mixin of `Store`: every write here carries `WHERE id = ? AND lease_token = ?`."""

    engine: Engine
    q: Queries
    is_postgres: bool

    # --- claims --------------------------------------------------------------------------

    def claim(
        self, queues: Sequence[str], limit: int, worker: str, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Claim up to `limit` due jobs from `queues` (in turn), high priority first."""
        claimed: list[ClaimedJob] = []
        with self.engine.begin() as conn:
            conn.execute(self.q.promote_due, {"limit": PROMOTE_LIMIT})
            for queue in queues:
                rows = conn.execute(
                    self.q.claim,
                    {
                        "queue": queue,
                        "limit": limit - len(claimed),
                        "worker": worker,
                        "lease": lease_seconds,
                    },
                ).all()
                claimed.extend(ClaimedJob(*row) for row in rows)
                if len(claimed) >= limit:
                    break
        return claimed

    def claim_ids(self, ids: Sequence[str], worker: str, lease_seconds: float) -> list[ClaimedJob]:
        """Claim exactly these ids if they are still claimable (a broker popped them)."""
        if not ids:
            return []
        ids_param: Any = list(ids) if self.is_postgres else orjson.dumps(list(ids)).decode()
        with self.engine.begin() as conn:
            rows = conn.execute(
                self.q.claim_ids, {"ids": ids_param, "worker": worker, "lease": lease_seconds}
            ).all()
        return [ClaimedJob(*row) for row in rows]

    # --- completions ---------------------------------------------------------------------

    def complete(
        self, completions: Sequence[Completion], released: list[Any] | None = None
    ) -> list[str]:
        """Write a batch of outcomes; returns the ids whose fence held (the rest were stale).

        `released`, when given, receives (id, queue, priority, run_at) of each dependent job
        these outcomes made ready, for the broker to hear about after the commit."""
        if not completions:
            return []
        with self.engine.begin() as conn:
            if self.is_postgres:
                done = self._complete_pg(conn, completions)
            else:
                done = self._complete_sqlite(conn, completions)
            resolve = [(job_id, status) for job_id, status, has_deps in done if has_deps]
            if resolve:
                self.resolve_dependents(conn, resolve, released)
        return [job_id for job_id, _, _ in done]

    def _complete_pg(
        self, conn: Connection, completions: Sequence[Completion]
    ) -> list[tuple[str, str, bool]]:
        # Rows are locked in id order here and in heartbeats: two writers on the same jobs
        # then queue behind each other instead of deadlocking.
        completions = sorted(completions, key=lambda c: c.id)
        params = {
            "ids": [c.id for c in completions],
            "tokens": [c.lease_token for c in completions],
            "statuses": [c.status for c in completions],
            "results": [c.result for c in completions],
            "errors": [c.error for c in completions],
            "delays": [c.delay for c in completions],
            "attempt_deltas": [c.attempt_delta for c in completions],
            "outcomes": [c.outcome for c in completions],
            "error_types": [c.error_type for c in completions],
            "started": [c.started_at for c in completions],
            "durations": [c.duration_ms for c in completions],
            "progress": [c.progress for c in completions],
        }
        return [(r.id, r.status, r.has_dependents) for r in conn.execute(self.q.complete, params)]

    def _complete_sqlite(
        self, conn: Connection, completions: Sequence[Completion]
    ) -> list[tuple[str, str, bool]]:
        done = []
        for c in completions:
            row = conn.execute(
                self.q.complete,
                {
                    "id": c.id,
                    "token": c.lease_token,
                    "status": c.status,
                    "result": c.result,
                    "error": c.error,
                    "delay": c.delay,
                    "attempt_delta": c.attempt_delta,
                    "progress": c.progress,
                },
            ).first()
            if row is None:
                continue
            done.append((row.id, row.status, bool(row.has_dependents)))
            if c.outcome is not None:
                conn.execute(
                    self.q.insert_execution,
                    {
                        "job_id": c.id,
                        "attempt": row.attempts - c.attempt_delta,
                        "worker": row.worker,
                        "started": c.started_at,
                        "outcome": c.outcome,
                        "error_type": c.error_type,
                        "error": c.error,
                        "duration": c.duration_ms,
                    },
                )
        return done

    def resolve_dependents(
        self,
        conn: Connection,
        finished: Sequence[tuple[str, str]],
        released: list[Any] | None = None,
    ) -> None:
        """Release children whose last parent succeeded; cancel children of failed parents."""
        now = conn.execute(self.q.now_select).scalar_one()
        pending = list(finished)
        while pending:
            parent, status = pending.pop()
            children = select(job_dependencies.c.job_id).where(
                job_dependencies.c.depends_on_id == parent
            )
            if status == Status.SUCCEEDED:
                left = jobs.c.pending_deps - 1
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(children), jobs.c.status == Status.WAITING)
                    .values(pending_deps=left)
                )
                ready = conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id.in_(children),
                        jobs.c.status == Status.WAITING,
                        jobs.c.pending_deps <= 0,
                    )
                    .values(status=Status.QUEUED.value, run_at=now)
                    .returning(jobs.c.id, jobs.c.queue, jobs.c.priority, jobs.c.run_at)
                ).all()
                if released is not None:
                    released.extend(tuple(row) for row in ready)
            elif status in (Status.DEAD, Status.CANCELLED):
                cancelled = conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(children), jobs.c.status == Status.WAITING)
                    .values(
                        status=Status.CANCELLED.value,
                        error=f"dependency {parent} ended {status}",
                        finished_at=now,
                    )
                    .returning(jobs.c.id, jobs.c.has_dependents)
                ).all()
                pending.extend(
                    (r.id, Status.CANCELLED.value) for r in cancelled if r.has_dependents
                )

    # --- heartbeats and rescue -----------------------------------------------------------

    def extend_leases(
        self, held: Sequence[tuple[str, int, str | None]], lease_seconds: float
    ) -> tuple[set[str], set[str]]:
        """Extend (id, token, progress) leases; returns (still held ids, cancel-requested ids)."""
        if not held:
            return set(), set()
        held = sorted(held)  # the lock order completions use
        with self.engine.begin() as conn:
            if self.is_postgres:
                rows = conn.execute(
                    self.q.extend_leases,
                    {
                        "ids": [h[0] for h in held],
                        "tokens": [h[1] for h in held],
                        "progress": [h[2] for h in held],
                        "lease": lease_seconds,
                    },
                ).all()
            else:
                rows = []
                for job_id, token, progress in held:
                    row = conn.execute(
                        self.q.extend_leases,
                        {
                            "id": job_id,
                            "token": token,
                            "progress": progress,
                            "lease": lease_seconds,
                        },
                    ).first()
                    if row is not None:
                        rows.append(row)
        return {r.id for r in rows}, {r.id for r in rows if r.cancel_requested}

    def rescue_expired_leases(self, cap: int, limit: int = 500) -> list[Any]:
        """Requeue (or kill, past the cap) jobs whose worker stopped heartbeating."""
        with self.engine.begin() as conn:
            rescued = conn.execute(self.q.rescue_expired, {"cap": cap, "limit": limit}).all()
            if not rescued:
                return []
            ids = [r.id for r in rescued]
            conn.execute(
                self.q.insert_execution,
                [
                    {
                        "job_id": r.id,
                        "attempt": r.attempts,
                        "worker": r.worker,
                        "started": r.started_at,
                        "outcome": "lease_expired",
                        "error_type": "LeaseExpired",
                        "error": r.error,
                        "duration": None,
                    }
                    for r in rescued
                ],
            )
            # A side effect its worker began but never marked done may or may not have happened.
            conn.execute(
                update(effects)
                .where(effects.c.job_id.in_(ids), effects.c.state == "started")
                .values(state="uncertain")
            )
            dead = [
                (r.id, r.status) for r in rescued if r.status == Status.DEAD and r.has_dependents
            ]
            if dead:
                self.resolve_dependents(conn, dead)
        return list(rescued)

    def release(self, held: Sequence[tuple[str, int]]) -> None:
        """Give leases back without counting the attempt (graceful shutdown)."""
        self.complete(
            [
                Completion(
                    id=job_id,
                    lease_token=token,
                    status=Status.QUEUED.value,
                    outcome=None,
                    attempt_delta=-1,
                    delay=0.0,
                )
                for job_id, token in held
            ]
        )


__all__ = ["LeaseStore"]
