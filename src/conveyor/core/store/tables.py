"""The schema. Times are epoch seconds (double precision) so that one SQL text compares them
the same way on PostgreSQL and SQLite, and the database clock is one expression away."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import BigInteger

metadata = MetaData()

DUE_SQL = "status IN ('scheduled', 'retrying')"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(200), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("crash_count", Integer, nullable=False, server_default="0"),
    Column("timeout", Float),
    Column("tenant", String(200), nullable=False, server_default=""),
    Column("idempotency_key", String(255)),
    Column("run_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("lease_token", Integer, nullable=False, server_default="0"),
    Column("lease_until", Float),
    Column("worker", String(200)),
    Column("depends_on", Text),
    Column("pending_deps", Integer, nullable=False, server_default="0"),
    Column("has_dependents", Boolean, nullable=False, server_default=text("false")),
    Column("batch_id", String(36)),
    Column("progress", Text),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
)
# Every job update changes its status, so no update is HOT: each index here costs a write
# per state change. Hence partial indexes that hold only the rows their queries look for.
IDEMPOTENCY_SQL = "idempotency_key IS NOT NULL"
Index(
    "uq_jobs_tenant_idempotency_key",
    jobs.c.tenant,
    jobs.c.idempotency_key,
    unique=True,
    postgresql_where=text(IDEMPOTENCY_SQL),
    sqlite_where=text(IDEMPOTENCY_SQL),
)
# The claim query's index: only queued rows, in the order the claim reads them.
Index(
    "ix_jobs_claim",
    jobs.c.queue,
    jobs.c.priority,
    jobs.c.run_at,
    postgresql_where=text("status = 'queued'"),
    sqlite_where=text("status = 'queued'"),
)
# Scheduled and retrying rows, by when they fall due (the promotion reads this one).
Index(
    "ix_jobs_due",
    jobs.c.run_at,
    postgresql_where=text(DUE_SQL),
    sqlite_where=text(DUE_SQL),
)
Index(
    "ix_jobs_running_lease",
    jobs.c.lease_until,
    postgresql_where=text("status = 'running'"),
    sqlite_where=text("status = 'running'"),
)
Index(
    "ix_jobs_dead",
    jobs.c.id,
    postgresql_where=text("status = 'dead'"),
    sqlite_where=text("status = 'dead'"),
)
Index(
    "ix_jobs_batch",
    jobs.c.batch_id,
    postgresql_where=text("batch_id IS NOT NULL"),
    sqlite_where=text("batch_id IS NOT NULL"),
)

job_dependencies = Table(
    "job_dependencies",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("depends_on_id", String(36), primary_key=True),
)
Index("ix_job_dependencies_parent", job_dependencies.c.depends_on_id)

executions = Table(
    "executions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(200)),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("outcome", String(32), nullable=False),
    Column("error_type", String(200)),
    Column("error", Text),
    Column("duration_ms", Float),
)
Index("ix_executions_job", executions.c.job_id, executions.c.attempt)

effects = Table(
    "effects",
    metadata,
    Column("key", String(500), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    # started -> done; started by an attempt that died -> uncertain
    Column("state", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index("ix_effects_job", effects.c.job_id)

batches = Table(
    "batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(200), nullable=False),
    Column("total", Integer, nullable=False),
    Column("meta", Text),
    Column("created_at", Float, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("cron", String(200), nullable=False),
    Column("type", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("options", Text),
    Column("next_run_at", Float, nullable=False),
    Column("last_run_at", Float),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
)

queues = Table(
    "queues",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Text, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("running", Integer, nullable=False, server_default="0"),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# REST API bearer tokens. Only a SHA-256 hash of each token is kept: a leaked table reveals no
# usable credential. `scopes` is a comma-separated subset of submit, read, admin.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("tenant", String(200)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

# Limiter state when the database dispatches (core/admission.py): one row per rate window, slot
# pacing or 429 factor, its state as JSON. Rows are locked while a batch is admitted.
limit_state = Table(
    "limit_state",
    metadata,
    Column("key", String(500), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
