"""Show that the claim and completion stay index lookups at a million rows.

    .venv/bin/python benchmarks/claim_plan.py [--rows 1000000]

Creates a private PostgreSQL database, fills it (COPY) with finished jobs plus a ready backlog,
prints EXPLAIN ANALYZE of the claim statement, then drops the database.
"""

from __future__ import annotations

import argparse
import time
import uuid

import psycopg
from sqlalchemy import create_engine

from conveyor.core.store.queries import AS_OF, CLAIM_PG, NOW, PROMOTE_DUE_PG
from conveyor.core.store.schema import upgrade

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ready", type=int, default=50_000)
    parser.add_argument("--scheduled", type=int, default=200_000, help="due tomorrow")
    args = parser.parse_args()
    name = f"conveyor_plan_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        upgrade(engine)
        engine.dispose()
        with psycopg.connect(url, autocommit=True) as conn:
            fill(conn, args.rows, args.ready, args.scheduled)
            conn.execute("ANALYZE jobs")
            values = {"lease": "30", "worker": "'plan'", "queue": "'default'", "limit": "100"}
            for title, statement in (
                (
                    f"promotion of due jobs ({args.scheduled:,} scheduled for tomorrow)",
                    PROMOTE_DUE_PG,
                ),
                (f"claim of 100 from {args.ready:,} ready among {args.rows:,} jobs", CLAIM_PG),
            ):
                sql = statement.replace("{now}", NOW["postgresql"]).replace(
                    "{as_of}", AS_OF["postgresql"]
                )
                for param, value in values.items():
                    sql = sql.replace(f":{param}", value)
                conn.execute("BEGIN")
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql).fetchall()
                conn.execute("ROLLBACK")
                print(title + ":")
                for (line,) in plan:
                    print("   ", line)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(conn: psycopg.Connection, rows: int, ready: int, scheduled: int) -> None:
    started = time.perf_counter()
    now = time.time()
    columns = "id, type, queue, priority, status, payload, max_attempts, run_at, created_at"
    with conn.cursor().copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
        for i in range(rows):
            status, run_at = "succeeded", now - rows + i
            if i >= rows - ready:
                status = "queued"
            elif i >= rows - ready - scheduled:
                status, run_at = "scheduled", now + 86400
            copy.write_row(
                (
                    str(uuid.UUID(int=i)),
                    "noop",
                    "default",
                    i % 3,
                    status,
                    "{}",
                    5,
                    run_at,
                    now - rows + i,
                )
            )
    print(f"filled {rows:,} rows in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
