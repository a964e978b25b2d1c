"""Dispatch by the database itself: SKIP LOCKED claims, LISTEN/NOTIFY wake-ups on
PostgreSQL, short polls on SQLite (same machine, so a poll costs microseconds)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.core.brokers.base import Broker
from conveyor.core.store.submit import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from conveyor.core.settings import Settings
    from conveyor.core.store import ClaimedJob, Store

SQLITE_POLL_SECONDS = 0.02


class DatabaseBroker(Broker):
    name = "database"

    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(store, settings)
        self._local = threading.Event()  # wake-ups from submits in this very process
        self._listener: Any = None
        self._listen_lock = threading.Lock()

    def _fetch(
        self, queues: Sequence[str], limit: int, worker_id: str, lease_seconds: float
    ) -> list[ClaimedJob]:
        return self.store.claim(queues, limit, worker_id, lease_seconds)

    def _dispatched(self, job_ids: Sequence[str], queues: set[str]) -> None:
        # PostgreSQL already sent NOTIFY inside the submit transaction.
        self._local.set()

    def _wait(self, queues: Sequence[str], timeout: float) -> None:
        if self.store.is_postgres:
            # Listen before looking: a submit that commits between the look and the LISTEN
            # would otherwise go unheard until the timeout.
            self._ensure_listening()
        due = self.store.seconds_until_due(queues)
        if due is not None:
            timeout = min(timeout, max(due, 0.0))
        if timeout <= 0:
            return
        if self.store.is_postgres:
            self._wait_for_notify(timeout)
        else:
            self._local.wait(min(timeout, SQLITE_POLL_SECONDS))
            self._local.clear()

    def _wait_for_notify(self, timeout: float) -> None:
        with self._listen_lock:
            try:
                conn = self._listen_connection()
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    pass
                # Drain what else is buffered so one burst of submits is one wake-up.
                for _ in conn.notifies(timeout=0.0):
                    pass
            except Exception:
                # A lost listener degrades to polling until it reconnects; never crash.
                self._drop_listener()
                time.sleep(min(timeout, self.settings.poll_seconds))

    def _ensure_listening(self) -> None:
        with self._listen_lock:
            try:
                self._listen_connection()
            except Exception:
                self._drop_listener()

    def _listen_connection(self) -> Any:
        if self._listener is None or self._listener.closed:
            import psycopg

            url = self.store.engine.url.set(drivername="postgresql")
            self._listener = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True
            )
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def close(self) -> None:
        with self._listen_lock:
            self._drop_listener()
