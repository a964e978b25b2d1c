"""The SQL of the hot path, as data. `{now}` is the database clock in epoch seconds; the
`Queries` object below formats each statement once per dialect."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import TextClause, text

NOW = {
    "postgresql": "(EXTRACT(EPOCH FROM clock_timestamp())::float8)",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
# In WHERE clauses: the transaction's start, a stable value, so that `run_at <= {as_of}`
# is an index range condition rather than a filter evaluated on every row.
AS_OF = {
    "postgresql": "(EXTRACT(EPOCH FROM now())::float8)",
    "sqlite": NOW["sqlite"],
}

CLAIM_COLUMNS = (
    "id, type, queue, priority, payload, attempts, max_attempts, timeout, lease_token, "
    "tenant, batch_id, started_at, crash_count"
)

# PostgreSQL: one statement per queue. `id = ANY(ARRAY(...))` keeps a stable plan once
# prepared, where `id IN (SELECT ... SKIP LOCKED)` gets re-planned on every call; and one queue
# per statement lets the claim index deliver rows already in (priority, run_at) order, so the
# LIMIT stops early instead of sorting every ready row.
CLAIM_PG = f"""
UPDATE jobs SET status = 'running', lease_token = lease_token + 1, attempts = attempts + 1,
    started_at = {{now}}, lease_until = {{now}} + :lease, worker = :worker
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs
    WHERE queue = :queue AND status = 'queued'
    ORDER BY priority, run_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED))
RETURNING {CLAIM_COLUMNS}
"""

# SQLite: the transaction began IMMEDIATE, so this single statement runs alone.
CLAIM_SQLITE = f"""
UPDATE jobs SET status = 'running', lease_token = lease_token + 1, attempts = attempts + 1,
    started_at = {{now}}, lease_until = {{now}} + :lease, worker = :worker
WHERE id IN (
    SELECT id FROM jobs
    WHERE queue = :queue AND status = 'queued'
    ORDER BY priority, run_at
    LIMIT :limit)
RETURNING {CLAIM_COLUMNS}
"""

# Scheduled and retrying jobs whose time came become queued. Only `queued` rows sit in the
# claim index, so a million jobs due tomorrow cost a claim nothing today.
PROMOTE_DUE_PG = """
UPDATE jobs SET status = 'queued'
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs
    WHERE status IN ('scheduled', 'retrying') AND run_at <= {as_of}
    ORDER BY run_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED))
"""

PROMOTE_DUE_SQLITE = """
UPDATE jobs SET status = 'queued'
WHERE id IN (
    SELECT id FROM jobs
    WHERE status IN ('scheduled', 'retrying') AND run_at <= {as_of}
    ORDER BY run_at
    LIMIT :limit)
"""

# Claim exactly these ids (popped from Redis); duplicates or stale ids simply match nothing.
CLAIM_IDS_PG = f"""
UPDATE jobs SET status = 'running', lease_token = lease_token + 1, attempts = attempts + 1,
    started_at = {{now}}, lease_until = {{now}} + :lease, worker = :worker
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs
    WHERE id = ANY(:ids) AND status IN ('queued', 'scheduled', 'retrying')
      AND run_at <= {{as_of}} + 0.5
    FOR UPDATE SKIP LOCKED))
RETURNING {CLAIM_COLUMNS}
"""

CLAIM_IDS_SQLITE = f"""
UPDATE jobs SET status = 'running', lease_token = lease_token + 1, attempts = attempts + 1,
    started_at = {{now}}, lease_until = {{now}} + :lease, worker = :worker
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('queued', 'scheduled', 'retrying') AND run_at <= {{as_of}} + 0.5
RETURNING {CLAIM_COLUMNS}
"""

# Completion of a batch of attempts in one round trip: fenced update, execution rows for the
# attempts that still held their lease, and the ids that have dependents to resolve.
COMPLETE_PG = """
WITH v AS (
    SELECT * FROM unnest(
        CAST(:ids AS text[]), CAST(:tokens AS int[]), CAST(:statuses AS text[]),
        CAST(:results AS text[]), CAST(:errors AS text[]), CAST(:delays AS float8[]),
        CAST(:attempt_deltas AS int[]), CAST(:outcomes AS text[]), CAST(:error_types AS text[]),
        CAST(:started AS float8[]), CAST(:durations AS float8[]), CAST(:progress AS text[]))
    AS v(id, token, status, result, error, delay, attempt_delta, outcome, error_type,
         started, duration, progress)
), done AS (
    UPDATE jobs j SET
        status = v.status, result = v.result, error = v.error,
        attempts = j.attempts + v.attempt_delta,
        run_at = CASE WHEN v.delay IS NULL THEN j.run_at ELSE {now} + v.delay END,
        finished_at = CASE WHEN v.status IN ('succeeded', 'dead', 'cancelled') THEN {now} END,
        started_at = CASE WHEN v.attempt_delta < 0 THEN NULL ELSE j.started_at END,
        progress = COALESCE(v.progress, j.progress),
        lease_until = NULL
    FROM v
    -- `lease_until IS NOT NULL` means running (claims set it, every exit clears it); said
    -- this way the planner looks rows up by id instead of scanning all running jobs.
    WHERE j.id = v.id AND j.lease_token = v.token AND j.lease_until IS NOT NULL
    RETURNING j.id, j.status, j.has_dependents, j.attempts, j.worker
), logged AS (
    INSERT INTO executions
        (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error,
         duration_ms)
    SELECT v.id, done.attempts - v.attempt_delta, done.worker, v.started, {now}, v.outcome,
        v.error_type, v.error, v.duration
    FROM v JOIN done ON done.id = v.id
    WHERE v.outcome IS NOT NULL
)
SELECT id, status, has_dependents FROM done
"""

COMPLETE_ONE_SQLITE = """
UPDATE jobs SET
    status = :status, result = :result, error = :error,
    attempts = attempts + :attempt_delta,
    run_at = CASE WHEN :delay IS NULL THEN run_at ELSE {now} + :delay END,
    finished_at = CASE WHEN :status IN ('succeeded', 'dead', 'cancelled') THEN {now} END,
    started_at = CASE WHEN :attempt_delta < 0 THEN NULL ELSE started_at END,
    progress = COALESCE(:progress, progress),
    lease_until = NULL
WHERE id = :id AND lease_token = :token AND status = 'running'
RETURNING id, status, has_dependents, attempts, worker
"""

INSERT_EXECUTION = """
INSERT INTO executions
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error, duration_ms)
VALUES (:job_id, :attempt, :worker, :started, {now}, :outcome, :error_type, :error, :duration)
"""

EXTEND_LEASES_PG = """
UPDATE jobs j SET lease_until = {now} + :lease, progress = COALESCE(v.progress, j.progress)
FROM unnest(CAST(:ids AS text[]), CAST(:tokens AS int[]), CAST(:progress AS text[]))
    AS v(id, token, progress)
WHERE j.id = v.id AND j.lease_token = v.token AND j.lease_until IS NOT NULL
RETURNING j.id, j.cancel_requested
"""

EXTEND_LEASE_ONE_SQLITE = """
UPDATE jobs SET lease_until = {now} + :lease, progress = COALESCE(:progress, progress)
WHERE id = :id AND lease_token = :token AND status = 'running'
RETURNING id, cancel_requested
"""

# Expired leases: the attempt counts, the token moves on (fencing out the old worker), and a
# job past the crash-recovery cap or out of attempts ends dead instead of looping.
RESCUE_EXPIRED = """
UPDATE jobs SET
    crash_count = crash_count + 1,
    status = CASE WHEN crash_count + 1 > :cap OR attempts >= max_attempts
        THEN 'dead' ELSE 'retrying' END,
    error = 'lease expired: worker ' || COALESCE(worker, '?') || ' stopped heartbeating',
    finished_at = CASE WHEN crash_count + 1 > :cap OR attempts >= max_attempts
        THEN {now} END,
    run_at = {now},
    lease_until = NULL,
    lease_token = lease_token + 1
WHERE id IN ({select_expired})
RETURNING id, status, has_dependents, attempts, worker, started_at, error
"""

SELECT_EXPIRED_PG = """
SELECT id FROM jobs WHERE status = 'running' AND lease_until < {as_of}
ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED
"""

SELECT_EXPIRED_SQLITE = """
SELECT id FROM jobs WHERE status = 'running' AND lease_until < {as_of}
ORDER BY lease_until LIMIT :limit
"""

NOW_SELECT = "SELECT {now}"


@dataclass(frozen=True)
class Queries:
    """The statements above, compiled for one dialect."""

    dialect: str
    now: str
    claim: TextClause
    promote_due: TextClause
    claim_ids: TextClause
    complete: TextClause
    insert_execution: TextClause
    extend_leases: TextClause
    rescue_expired: TextClause
    now_select: TextClause

    @classmethod
    def for_dialect(cls, dialect: str) -> Queries:
        now, as_of = NOW[dialect], AS_OF[dialect]
        pg = dialect == "postgresql"

        def fmt(sql: str) -> TextClause:
            return text(sql.replace("{now}", now).replace("{as_of}", as_of))

        select_expired = SELECT_EXPIRED_PG if pg else SELECT_EXPIRED_SQLITE
        return cls(
            dialect=dialect,
            now=now,
            claim=fmt(CLAIM_PG if pg else CLAIM_SQLITE),
            promote_due=fmt(PROMOTE_DUE_PG if pg else PROMOTE_DUE_SQLITE),
            claim_ids=fmt(CLAIM_IDS_PG if pg else CLAIM_IDS_SQLITE),
            complete=fmt(COMPLETE_PG if pg else COMPLETE_ONE_SQLITE),
            insert_execution=fmt(INSERT_EXECUTION),
            extend_leases=fmt(EXTEND_LEASES_PG if pg else EXTEND_LEASE_ONE_SQLITE),
            rescue_expired=fmt(RESCUE_EXPIRED.replace("{select_expired}", select_expired)),
            now_select=fmt(NOW_SELECT),
        )
