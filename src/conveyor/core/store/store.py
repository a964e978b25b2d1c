"""The system of record. A job exists if and only if its row committed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from conveyor.core.errors import JobNotFound, StoreUnavailable
from conveyor.core.jobs import CLAIMABLE, Job, Status
from conveyor.core.store import schema, submit
from conveyor.core.store.admin import AdminStore
from conveyor.core.store.engine import make_engine
from conveyor.core.store.leases import LeaseStore
from conveyor.core.store.queries import Queries
from conveyor.core.store.records import JobSpec, job_from_row
from conveyor.core.store.tables import batches, effects, executions, jobs, workers


class Store(LeaseStore, AdminStore):
    """Jobs, executions, the effects ledger, batches and the worker registry."""

    def __init__(self, url: str, pool_size: int = 5, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        self.is_postgres = self.dialect == "postgresql"
        self.q = Queries.for_dialect(self.dialect)
        #: The same pool, for single statements that need no transaction of their own.
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        if migrate:
            self.migrate()

    def migrate(self) -> bool:
        try:
            return schema.upgrade(self.engine)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database: {_reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def now(self) -> float:
        with self.engine.connect() as conn:
            return float(conn.execute(self.q.now_select).scalar_one())

    def ping(self) -> None:
        try:
            self.now()
        except DBAPIError as exc:
            raise StoreUnavailable(f"cannot reach the database: {_reason(exc)}") from None

    # --- submit --------------------------------------------------------------------------

    def insert_jobs(
        self,
        specs: Sequence[JobSpec],
        connection: Connection | None = None,
        batch: dict[str, Any] | None = None,
    ) -> tuple[dict[str, str], set[str]]:
        """Write jobs in one transaction (the caller's, if given).

        Returns (spec id -> job id, queues that got a ready job); a spec whose idempotency key
        already exists maps to the existing job's id.
        """
        try:
            if connection is not None:
                return self._insert(connection, specs, batch)
            try:
                with self.engine.begin() as conn:
                    return self._insert(conn, specs, batch)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A pooled connection outlived a database restart; the pool is fresh now.
                with self.engine.begin() as conn:
                    return self._insert(conn, specs, batch)
        except OperationalError as exc:
            raise StoreUnavailable(
                f"job not submitted, the database is unreachable: {_reason(exc)}"
            ) from None

    def _insert(
        self, conn: Connection, specs: Sequence[JobSpec], batch: dict[str, Any] | None
    ) -> tuple[dict[str, str], set[str]]:
        rows = submit.build_rows(conn, specs, self.dialect)
        written = submit.insert_rows(conn, rows, self.dialect)
        if batch is not None and written:
            # Idempotent repeats keep their own batch: this one counts only the jobs it got.
            batch = {**batch, "total": len(written)}
            conn.execute(batches.insert().values(**batch, created_at=time.time()))
        mapping = {row["id"]: row["id"] for row in rows}
        if len(written) != len(rows):
            mapping.update(submit.existing_ids(conn, rows, written))
        submit.link_dependencies(conn, rows, written)
        ready = submit.notify_ready(conn, rows, written)
        return mapping, ready

    # --- reads ---------------------------------------------------------------------------

    def get(self, job_id: str, with_executions: bool = True) -> Job:
        jobs_found = self.get_many([job_id], with_executions)
        if not jobs_found:
            raise JobNotFound(f"no job with id {job_id!r}")
        return jobs_found[0]

    def get_many(self, ids: Sequence[str], with_executions: bool = False) -> list[Job]:
        now = time.time()
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(select(jobs).where(jobs.c.id.in_(list(ids))))}
            runs: dict[str, list[Any]] = {}
            if with_executions and rows:
                for e in conn.execute(
                    select(executions)
                    .where(executions.c.job_id.in_(list(rows)))
                    .order_by(executions.c.job_id, executions.c.id)
                ):
                    runs.setdefault(e.job_id, []).append(e)
        return [job_from_row(rows[i], runs.get(i, []), now) for i in ids if i in rows]

    def list_jobs(
        self,
        status: str | None = None,
        type_: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first, keyset-paginated by id (ids are time-ordered)."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit + 1)
        if status == Status.QUEUED:
            query = query.where(
                or_(
                    jobs.c.status == Status.QUEUED.value,
                    and_(jobs.c.status == Status.SCHEDULED.value, jobs.c.run_at <= time.time()),
                )
            )
        elif status == Status.SCHEDULED:
            query = query.where(jobs.c.status == status, jobs.c.run_at > time.time())
        elif status:
            query = query.where(jobs.c.status == status)
        if type_:
            query = query.where(jobs.c.type == type_)
        if queue:
            query = query.where(jobs.c.queue == queue)
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        if cursor:
            query = query.where(jobs.c.id < cursor)
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        page = [job_from_row(r, None, now) for r in rows[:limit]]
        next_cursor = page[-1].id if len(rows) > limit and page else None
        return page, next_cursor

    def seconds_until_due(self, queues: Sequence[str]) -> float | None:
        """How long until the next job in `queues` is due (negative: overdue); None if none."""
        with self.engine.connect() as conn:
            due = conn.execute(
                select(func.min(jobs.c.run_at)).where(
                    jobs.c.queue.in_(list(queues)),
                    jobs.c.status.in_([s.value for s in CLAIMABLE]),
                )
            ).scalar()
        return None if due is None else float(due) - time.time()

    # --- effects ledger ------------------------------------------------------------------

    def effect_begin(self, key: str, job_id: str, attempt: int, repeat: bool) -> tuple[bool, str]:
        """Record `key` as started by this attempt. Returns (run the body?, prior state).

        Prior state is "" for a new key, "done" for a finished effect, "uncertain" for one a
        dead attempt started (re-run only when `repeat`).
        """
        now = time.time()
        insert = (
            _insert_ignore(self.dialect, effects)
            .values(key=key, job_id=job_id, attempt=attempt, state="started", started_at=now)
            .returning(effects.c.key)
        )
        if self.is_postgres:
            # The common case, a new key, is one statement: in autocommit it costs one round
            # trip instead of three (BEGIN, INSERT, COMMIT). A conflict takes the path below.
            with self._autocommit.connect() as conn:
                if conn.execute(insert).first() is not None:
                    return True, ""
        with self.engine.begin() as conn:
            if conn.execute(insert).first() is not None:
                return True, ""
            row = conn.execute(
                select(effects.c.state, effects.c.job_id, effects.c.attempt).where(
                    effects.c.key == key
                )
            ).one()
            if row.state == "done":
                return False, "done"
            if row.job_id == job_id and row.attempt == attempt:
                return True, ""  # this very attempt already holds it
            conn.execute(update(effects).where(effects.c.key == key).values(state="uncertain"))
            if repeat:
                conn.execute(
                    update(effects)
                    .where(effects.c.key == key)
                    .values(job_id=job_id, attempt=attempt, state="started", started_at=now)
                )
                return True, "uncertain"
            return False, "uncertain"

    def effect_finish(self, key: str, succeeded: bool) -> None:
        """Mark done; a body that raised releases the key so a retry may try again."""
        if succeeded:
            statement: Any = (
                update(effects)
                .where(effects.c.key == key)
                .values(state="done", finished_at=time.time())
            )
        else:
            statement = delete(effects).where(effects.c.key == key)
        # One statement: autocommit on PostgreSQL spares the BEGIN and COMMIT round trips.
        engine = self._autocommit if self.is_postgres else self.engine
        with engine.begin() as conn:
            conn.execute(statement)

    def effects_of(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(effects).where(effects.c.job_id.in_(list(job_ids))))
            return [dict(r._mapping) for r in rows]

    # --- batches -------------------------------------------------------------------------

    def batch_progress(self, batch_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            batch = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
            if batch is None:
                raise JobNotFound(f"no batch with id {batch_id!r}")
            counts: dict[str, int] = dict(
                conn.execute(
                    select(jobs.c.status, func.count())
                    .where(jobs.c.batch_id == batch_id)
                    .group_by(jobs.c.status)
                ).all()
            )
            uncertain = (
                conn.execute(
                    select(effects.c.key)
                    .join(jobs, jobs.c.id == effects.c.job_id)
                    .where(jobs.c.batch_id == batch_id, effects.c.state == "uncertain")
                    .order_by(effects.c.key)
                )
                .scalars()
                .all()
            )
        finished = sum(
            counts.get(s.value, 0) for s in (Status.SUCCEEDED, Status.DEAD, Status.CANCELLED)
        )
        return {
            "id": batch.id,
            "kind": batch.kind,
            "total": batch.total,
            "counts": counts,
            "finished": finished,
            "done": finished >= batch.total,
            "uncertain_effects": list(uncertain),
            "meta": orjson.loads(batch.meta) if batch.meta else None,
            "created_at": batch.created_at,
        }

    # --- worker registry -----------------------------------------------------------------

    def worker_heartbeat(self, info: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(workers)
                .where(workers.c.id == info["id"])
                .values(heartbeat_at=info["heartbeat_at"], running=info["running"])
            ).rowcount
            if not changed:
                conn.execute(workers.insert().values(**info))

    def worker_gone(self, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def live_workers(self, within_seconds: float) -> list[dict[str, Any]]:
        cutoff = time.time() - within_seconds
        with self.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.heartbeat_at < cutoff - 3600))
            rows = conn.execute(
                select(workers).where(workers.c.heartbeat_at >= cutoff).order_by(workers.c.id)
            )
            return [{**dict(r._mapping), "queues": orjson.loads(r.queues)} for r in rows]


def _insert_ignore(dialect: str, table: Any) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
