"""The dispatch interface. The database decides who holds a job (fenced claims); a broker
only decides who hears about it first. Backends implement the small `_primitives`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from conveyor.core.settings import Settings
    from conveyor.core.store import ClaimedJob, Store


class Ready(NamedTuple):
    """A job a committed transaction made claimable, due at `run_at` (epoch seconds)."""

    id: str
    queue: str
    priority: int
    run_at: float


class Broker(ABC):
    """Moves job ids from submitters to workers. Every method is blocking (workers call them
    from their I/O threads) and safe to call from several threads."""

    name = "base"

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # --- public template ------------------------------------------------------------------

    def fetch(
        self, queues: Sequence[str], limit: int, worker_id: str, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Claim up to `limit` due jobs for this worker (fenced in the database)."""
        if limit <= 0 or not queues:
            return []
        return self._fetch(queues, limit, worker_id, lease_seconds)

    def dispatched(
        self, job_ids: Sequence[str], queues: Iterable[str], ready: Sequence[Ready] | None = None
    ) -> None:
        """Called after a transaction committed that made jobs claimable (now or at their
        run_at). `ready`, when the caller knows it, describes each of those jobs, so a broker
        that routes by queue and priority needs no lookup."""
        if ready is not None:
            if ready:
                self._announce(ready)
        elif job_ids:
            self._dispatched(job_ids, set(queues))

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        """Block until work may be ready in `queues`, or `timeout` seconds pass."""
        if timeout > 0:
            self._wait(queues, timeout)

    def reconcile(self) -> int:
        """Rebuild the broker's view from the database; returns how many ids it restored."""
        return 0

    def worker_lost(self) -> None:
        """A worker died or froze (the reaper rescued its jobs). Ids it had taken from the
        broker but not claimed yet are nowhere but in the database: a broker that hands ids
        out should look for them at its next reconcile."""

    def close(self) -> None:
        """Release connections."""

    # --- primitives -----------------------------------------------------------------------

    @abstractmethod
    def _fetch(
        self, queues: Sequence[str], limit: int, worker_id: str, lease_seconds: float
    ) -> list[ClaimedJob]: ...

    @abstractmethod
    def _dispatched(self, job_ids: Sequence[str], queues: set[str]) -> None: ...

    @abstractmethod
    def _wait(self, queues: Sequence[str], timeout: float) -> None: ...

    def _announce(self, ready: Sequence[Ready]) -> None:
        self._dispatched([job.id for job in ready], {job.queue for job in ready})
