"""Operator actions: cancel, retry, the dead-letter queue, pruning, queue pauses."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, case, delete, func, select, update

from conveyor.core.errors import InvalidTransition, JobNotFound
from conveyor.core.jobs import TERMINAL, Status
from conveyor.core.store.queries import Queries
from conveyor.core.store.tables import effects, executions, job_dependencies, jobs, queues

RETRYABLE_FROM = (Status.DEAD.value, Status.CANCELLED.value)
CANCELLABLE = (Status.WAITING, Status.SCHEDULED, Status.QUEUED, Status.RETRYING)


class AdminStore:
    """Mixin of `Store`."""

    engine: Engine
    q: Queries
    is_postgres: bool

    def resolve_dependents(self, conn: Any, finished: Sequence[tuple[str, str]]) -> None:
        raise NotImplementedError

    def cancel(self, job_id: str) -> str:
        """Cancel a job; returns "cancelled", or "requested" for a running job (cooperative)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(jobs.c.status, jobs.c.has_dependents).where(jobs.c.id == job_id)
            ).first()
            if row is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            if row.status == Status.RUNNING:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
                return "requested"
            if row.status in TERMINAL:
                raise InvalidTransition(f"job {job_id} is already {row.status}; nothing to cancel")
            now = conn.execute(self.q.now_select).scalar_one()
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_([s.value for s in CANCELLABLE]))
                .values(status=Status.CANCELLED.value, finished_at=now, error="cancelled by user")
            ).rowcount
            if not changed:
                raise InvalidTransition(f"job {job_id} changed state; try again")
            if row.has_dependents:
                self.resolve_dependents(conn, [(job_id, Status.CANCELLED.value)])
        return "cancelled"

    def retry(self, job_ids: Sequence[str] | None = None) -> int:
        """Queue dead or cancelled jobs again (all of the dead ones when `job_ids` is None),
        with at least one attempt left; returns how many moved."""
        with self.engine.begin() as conn:
            now = conn.execute(self.q.now_select).scalar_one()
            query = update(jobs).values(
                status=Status.QUEUED.value,
                run_at=now,
                finished_at=None,
                crash_count=0,
                cancel_requested=False,
                max_attempts=case(
                    (jobs.c.attempts >= jobs.c.max_attempts, jobs.c.attempts + 1),
                    else_=jobs.c.max_attempts,
                ),
            )
            if job_ids is None:
                query = query.where(jobs.c.status == Status.DEAD.value)
            else:
                query = query.where(jobs.c.id.in_(list(job_ids)), jobs.c.status.in_(RETRYABLE_FROM))
            moved = int(conn.execute(query).rowcount)
        if job_ids is not None and len(job_ids) == 1 and moved == 0:
            status = self.status_of(job_ids[0])
            raise InvalidTransition(
                f"job {job_ids[0]} is {status}; only dead or cancelled jobs can be retried"
            )
        return moved

    def status_of(self, job_id: str) -> str:
        with self.engine.connect() as conn:
            status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        if status is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return str(status)

    def purge_dead(self) -> int:
        with self.engine.begin() as conn:
            return self._delete_jobs(conn, jobs.c.status == Status.DEAD.value)

    def prune(self, older_than_seconds: float) -> int:
        """Delete finished jobs (with their executions and ledger rows) older than the cutoff."""
        cutoff = time.time() - older_than_seconds
        with self.engine.begin() as conn:
            return self._delete_jobs(
                conn,
                jobs.c.status.in_([s.value for s in TERMINAL]) & (jobs.c.finished_at < cutoff),
            )

    def _delete_jobs(self, conn: Any, where: Any) -> int:
        doomed = select(jobs.c.id).where(where).scalar_subquery()
        conn.execute(delete(executions).where(executions.c.job_id.in_(doomed)))
        conn.execute(delete(effects).where(effects.c.job_id.in_(doomed)))
        conn.execute(delete(job_dependencies).where(job_dependencies.c.job_id.in_(doomed)))
        return int(conn.execute(delete(jobs).where(where)).rowcount)

    # --- queues --------------------------------------------------------------------------

    def set_paused(self, queue: str, paused: bool) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(queues).where(queues.c.name == queue).values(paused=paused)
            ).rowcount
            if not changed:
                conn.execute(queues.insert().values(name=queue, paused=paused))

    def paused_queues(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(queues.c.name).where(queues.c.paused)).scalars())

    def queue_stats(self, always: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        """Per queue: ready depth per priority, scheduled, running, retrying, dead, paused.

        Queues named in `always` appear even when empty (an autoscaler must see a series
        drop to zero, not vanish)."""
        stats: dict[str, dict[str, Any]] = {}
        now = time.time()
        live = [s.value for s in Status if s not in TERMINAL] + [Status.DEAD.value]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    jobs.c.queue,
                    jobs.c.status,
                    jobs.c.priority,
                    (jobs.c.run_at <= now).label("due"),
                    func.count(),
                    func.min(jobs.c.run_at),
                )
                .where(jobs.c.status.in_(live))
                .group_by(jobs.c.queue, jobs.c.status, jobs.c.priority, "due")
            ).all()
            paused = set(conn.execute(select(queues.c.name).where(queues.c.paused)).scalars())
        for queue, status, priority, due, count, oldest in rows:
            entry = stats.setdefault(queue, _empty_queue_stats(queue in paused))
            ready = status in (Status.QUEUED, Status.RETRYING, Status.SCHEDULED) and due
            if ready:
                name = ("high", "medium", "low")[priority]
                entry["ready"][name] += count
                entry["depth"] += count
                wait = now - oldest
                entry["oldest_wait_seconds"] = max(entry["oldest_wait_seconds"], wait)
            elif status in (Status.SCHEDULED, Status.RETRYING):
                entry["scheduled"] += count
            elif status in entry:
                entry[status] += count
        for name in paused:
            stats.setdefault(name, _empty_queue_stats(True))
        for name in always:
            stats.setdefault(name, _empty_queue_stats(False))
        return stats


def _empty_queue_stats(paused: bool) -> dict[str, Any]:
    return {
        "ready": {"high": 0, "medium": 0, "low": 0},
        "depth": 0,
        "scheduled": 0,
        "running": 0,
        "waiting": 0,
        "dead": 0,
        "paused": paused,
        "oldest_wait_seconds": 0.0,
    }
