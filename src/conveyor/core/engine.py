"""`Conveyor`: the application object. It carries settings, plugins, store and broker and is
passed down explicitly; there is no global default app."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

from conveyor.core.brokers.base import Broker, Ready
from conveyor.core.errors import InvalidOption, SubmitError
from conveyor.core.jobs import Job, Priority, new_job_id
from conveyor.core.options import build_spec
from conveyor.core.plugins import Plugins
from conveyor.core.registry import HandlerRegistry
from conveyor.core.retry import RetryPolicy
from conveyor.core.settings import Settings
from conveyor.core.store import JobSpec, Store

if TYPE_CHECKING:
    from conveyor.core.worker import Worker

_READY_STATUSES = ("queued", "scheduled")

PRIORITY_NAMES = {int(p): str(p) for p in Priority}


class Conveyor:
    """Submit jobs, inspect them, and run workers."""

    def __init__(
        self,
        database_url: str | None = None,
        broker_url: str | None = None,
        *,
        settings: Settings | None = None,
        plugins: Sequence[Any] = (),
        entry_points: bool = True,
        **overrides: Any,
    ) -> None:
        base = settings or Settings.from_env()
        if database_url or broker_url or overrides:
            from dataclasses import replace

            changes = {k: v for k, v in overrides.items() if v is not None}
            if database_url:
                changes["database_url"] = database_url
            if broker_url:
                changes["broker_url"] = broker_url
            base = replace(base, **changes)
        self.settings = base
        self.plugins = Plugins()
        for plugin in plugins:
            self.plugins.register(plugin, name=getattr(plugin, "__name__", None))
        self.plugins.load(self.settings.plugins, entry_points=entry_points)
        self.registry: HandlerRegistry = self.plugins.build_registry()
        self.retry_policy = RetryPolicy(
            self.settings.retry_base_seconds, self.settings.retry_max_seconds
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Conveyor:
        return cls(settings=Settings.from_env(**overrides))

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.database_url)

    @cached_property
    def broker(self) -> Broker:
        url = self.settings.broker_url
        if url:
            from conveyor.core.brokers.redis import RedisBroker

            return RedisBroker(self.store, self.settings, url)
        from conveyor.core.brokers.database import DatabaseBroker

        return DatabaseBroker(self.store, self.settings)

    def close(self) -> None:
        if "broker" in self.__dict__:
            self.broker.close()
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Conveyor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- submit --------------------------------------------------------------------------

    def spec(self, type_: str, payload: Any, options: dict[str, Any]) -> JobSpec:
        """Validate one submission (type, payload, options) into a JobSpec; writes nothing."""
        if not isinstance(type_, str):
            raise SubmitError("job type must be text")
        handler = self.registry.get(type_)
        return build_spec(handler, handler.validate(payload), options)

    def submit(
        self,
        type_: str,
        payload: Any = None,
        *,
        connection: Connection | None = None,
        **options: Any,
    ) -> Job:
        """Submit one job; returns it as committed (or the existing one on an idempotent
        repeat). With `connection`, the row is written in the caller's transaction."""
        spec = self.spec(type_, {} if payload is None else payload, options)
        return self._write([spec], connection)[0]

    def submit_many(
        self,
        jobs: Sequence[dict[str, Any]],
        *,
        connection: Connection | None = None,
        batch_kind: str | None = None,
        batch_meta: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Validate every job, then write them all in one transaction (all or nothing).

        Each item is shaped like the REST body: {"type", "payload", ...options} (options may
        also sit under "options"). With `batch_kind`, the jobs form a batch whose progress
        `batch_progress` reports.
        """
        specs = []
        batch = None
        if batch_kind:
            batch_id = new_job_id()
            batch = {
                "id": batch_id,
                "kind": batch_kind,
                "total": len(jobs),
                "meta": orjson.dumps(batch_meta).decode() if batch_meta else None,
            }
        for index, item in enumerate(jobs):
            if not isinstance(item, dict) or "type" not in item:
                raise InvalidOption(f"jobs[{index}] must be an object with a 'type'")
            options = {k: v for k, v in item.items() if k not in ("type", "payload", "options")}
            options.update(item.get("options") or {})
            if batch:
                options["batch_id"] = batch["id"]
            try:
                specs.append(self.spec(item["type"], item.get("payload") or {}, options))
            except SubmitError as exc:
                exc.message = f"jobs[{index}]: {exc.message}"
                exc.args = (exc.message,)
                raise
        return self._write(specs, connection, batch)

    def _write(
        self,
        specs: list[JobSpec],
        connection: Connection | None,
        batch: dict[str, Any] | None = None,
    ) -> list[Job]:
        mapping, ready_queues = self.store.insert_jobs(specs, connection, batch)
        fresh = {spec.id for spec in specs if mapping[spec.id] == spec.id}
        # Jobs with dependencies get their status decided in the database: read them back.
        reread = [mapping[s.id] for s in specs if s.id not in fresh or s.depends_on]
        existing = {job.id: job for job in self.store.get_many(reread)} if reread else {}
        if connection is None and fresh:
            ready = _announced(specs, fresh, existing)
            self.broker.dispatched([r.id for r in ready], ready_queues, ready)
        result = []
        announce = self.plugins.has_hook("conveyor_job_submitted")
        for spec in specs:
            job = existing.get(mapping[spec.id]) or _job_from_spec(spec, spec.payload_obj)
            if spec.id in fresh and announce:
                self.plugins.job_submitted(job)
            result.append(job)
        return result

    # --- inspect and act -----------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def wait(self, job_id: str, timeout: float = 30.0) -> Job:
        """Block until the job is terminal; raises TimeoutError past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            job = self.store.get(job_id)
            if job.terminal:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g}s")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.2)

    def list_jobs(self, **filters: Any) -> tuple[list[Job], str | None]:
        return self.store.list_jobs(**filters)

    def cancel(self, job_id: str) -> str:
        return self.store.cancel(job_id)

    def retry(self, job_id: str) -> Job:
        self.store.retry([job_id])
        job = self.store.get(job_id)
        self.broker.dispatched([job.id], [job.queue])
        return job

    def batch_progress(self, batch_id: str) -> dict[str, Any]:
        return self.store.batch_progress(batch_id)

    def worker(self, **options: Any) -> Worker:
        from conveyor.core.worker import Worker

        return Worker(self, **options)

    def run_burst(self, **options: Any) -> int:
        """Run a worker in this thread until no job is ready or due; returns jobs processed."""
        import asyncio

        worker = self.worker(burst=True, install_signal_handlers=False, **options)
        asyncio.run(worker.run())
        return worker.processed


def _announced(specs: list[JobSpec], fresh: set[str], existing: dict[str, Job]) -> list[Ready]:
    """The new jobs a broker should hear about: all but those waiting on dependencies."""
    return [
        Ready(s.id, s.queue, s.priority, s.created_at if s.run_at is None else s.run_at)
        for s in specs
        if s.id in fresh
        and (not s.depends_on or getattr(existing.get(s.id), "status", "") in _READY_STATUSES)
    ]


def _job_from_spec(spec: JobSpec, payload: dict[str, Any]) -> Job:
    """The Job just written, built from what was sent instead of read back."""
    created = datetime.fromtimestamp(spec.created_at, UTC)
    run_at = created if spec.run_at is None else datetime.fromtimestamp(spec.run_at, UTC)
    return Job(
        id=spec.id,
        type=spec.type,
        queue=spec.queue,
        priority=PRIORITY_NAMES[spec.priority],
        status="scheduled" if run_at > created else "queued",
        payload=payload,
        max_attempts=spec.max_attempts,
        tenant=spec.tenant or None,
        idempotency_key=spec.idempotency_key,
        run_at=run_at,
        created_at=created,
        depends_on=list(spec.depends_on),
        batch_id=spec.batch_id,
        timeout=spec.timeout,
    )
