"""Writing new jobs: idempotent multi-row inserts (COPY on PostgreSQL), dependencies, wake-ups."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.core.errors import InvalidOption
from conveyor.core.jobs import Status
from conveyor.core.store.records import JobSpec
from conveyor.core.store.tables import IDEMPOTENCY_SQL, job_dependencies, jobs

#: psycopg's COPY beats a multi-row INSERT from about this many rows.
COPY_THRESHOLD = 200
NOTIFY_CHANNEL = "conveyor_jobs"

COPY_COLUMNS = (
    "id",
    "type",
    "queue",
    "priority",
    "status",
    "payload",
    "max_attempts",
    "timeout",
    "tenant",
    "run_at",
    "created_at",
    "depends_on",
    "pending_deps",
    "batch_id",
    "error",
    "finished_at",
)


def _dependency_states(conn: Connection, ids: set[str], dialect: str) -> dict[str, str]:
    query = select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(ids))
    if dialect == "postgresql":
        # Lock the parents so a parent finishing right now either sees this child or is seen.
        query = query.with_for_update(read=True)
    return {row.id: row.status for row in conn.execute(query)}


def build_rows(conn: Connection, specs: Sequence[JobSpec], dialect: str) -> list[dict[str, Any]]:
    """Rows for the jobs table, with each job's initial status decided."""
    now = time.time()
    wanted = {dep for spec in specs for dep in spec.depends_on}
    own = {spec.id for spec in specs}
    states = _dependency_states(conn, wanted - own, dialect) if wanted - own else {}
    rows = []
    for spec in specs:
        run_at = spec.run_at if spec.run_at is not None else spec.created_at
        status = Status.SCHEDULED if run_at > now else Status.QUEUED
        pending, error = 0, None
        for dep in spec.depends_on:
            state = Status.QUEUED.value if dep in own else states.get(dep)
            if state is None:
                raise InvalidOption(f"depends_on: no job has id {dep!r}")
            if state in (Status.DEAD, Status.CANCELLED):
                error = f"dependency {dep} ended {state}"
            elif state != Status.SUCCEEDED:
                pending += 1
        if error:
            status = Status.CANCELLED
        elif pending:
            status = Status.WAITING
        rows.append(
            {
                "id": spec.id,
                "type": spec.type,
                "queue": spec.queue,
                "priority": spec.priority,
                "status": status.value,
                "payload": spec.payload,
                "max_attempts": spec.max_attempts,
                "timeout": spec.timeout,
                "tenant": spec.tenant,
                "idempotency_key": spec.idempotency_key,
                "run_at": run_at,
                "created_at": spec.created_at,
                "depends_on": orjson.dumps(spec.depends_on).decode() if spec.depends_on else None,
                "pending_deps": pending,
                "batch_id": spec.batch_id,
                "error": error,
                "finished_at": now if error else None,
            }
        )
    return rows


def insert_rows(conn: Connection, rows: list[dict[str, Any]], dialect: str) -> set[str]:
    """Insert; returns the ids actually written (an idempotent repeat writes nothing)."""
    keyed = any(row["idempotency_key"] for row in rows)
    if dialect == "postgresql" and not keyed and len(rows) >= COPY_THRESHOLD:
        _copy_rows(conn, rows)
        return {row["id"] for row in rows}
    insert = postgresql.insert(jobs) if dialect == "postgresql" else sqlite.insert(jobs)
    statement = insert.on_conflict_do_nothing(
        index_elements=["tenant", "idempotency_key"], index_where=text(IDEMPOTENCY_SQL)
    )
    if not keyed:
        conn.execute(insert, rows)
        return {row["id"] for row in rows}
    written = conn.execute(statement.returning(jobs.c.id), rows)
    return {row.id for row in written}


def _copy_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY jobs ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(tuple(row[c] for c in COPY_COLUMNS))


def existing_ids(conn: Connection, rows: list[dict[str, Any]], written: set[str]) -> dict[str, str]:
    """For rows an idempotent repeat skipped: their id -> the id of the job that exists."""
    skipped = [row for row in rows if row["id"] not in written]
    found: dict[str, str] = {}
    for row in skipped:
        existing = conn.execute(
            select(jobs.c.id).where(
                jobs.c.tenant == row["tenant"], jobs.c.idempotency_key == row["idempotency_key"]
            )
        ).scalar_one()
        found[row["id"]] = existing
    return found


def link_dependencies(conn: Connection, rows: list[dict[str, Any]], written: set[str]) -> None:
    links = [
        {"job_id": row["id"], "depends_on_id": dep}
        for row in rows
        if row["id"] in written and row["depends_on"]
        for dep in orjson.loads(row["depends_on"])
    ]
    if not links:
        return
    conn.execute(job_dependencies.insert(), links)
    parents = {link["depends_on_id"] for link in links}
    conn.execute(update(jobs).where(jobs.c.id.in_(parents)).values(has_dependents=True))


def notify_ready(conn: Connection, rows: list[dict[str, Any]], written: set[str]) -> set[str]:
    """Queues that got a job ready now; on PostgreSQL NOTIFY is delivered at commit."""
    queues = {
        row["queue"] for row in rows if row["id"] in written and row["status"] == Status.QUEUED
    }
    if conn.dialect.name == "postgresql":
        for queue in sorted(queues):
            conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, queue))
    return queues
