"""The system of record (SQLAlchemy: PostgreSQL in production, SQLite embedded)."""

from conveyor.core.store.records import ClaimedJob, Completion, JobSpec
from conveyor.core.store.store import Store

__all__ = ["ClaimedJob", "Completion", "JobSpec", "Store"]
