"""The worker: claims batches, runs handlers on asyncio (sync ones in threads), heartbeats
leases from outside the handlers, flushes completions in batches, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.core.brokers.base import Ready
from conveyor.core.context import JobContext
from conveyor.core.jobs import Status
from conveyor.core.limits import limiter_for
from conveyor.core.reaper import Reaper
from conveyor.core.runner import run_attempt
from conveyor.core.store import ClaimedJob, Completion

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.core.engine import Conveyor

log = logging.getLogger("conveyor.worker")

#: Completions written per round trip at most.
FLUSH_LIMIT = 1000
#: Outcomes that put a job back in line (a broker must hear about them).
_REQUEUED = frozenset({Status.QUEUED.value, Status.SCHEDULED.value, Status.RETRYING.value})


class Worker:
    """One worker process's engine. `run()` returns when stopped (or, in burst mode, idle)."""

    def __init__(
        self,
        app: Conveyor,
        queues: list[str] | None = None,
        concurrency: int = 10,
        burst: bool = False,
        batch_size: int | None = None,
        grace_seconds: float = 30.0,
        install_signal_handlers: bool = True,
        worker_id: str | None = None,
        max_jobs: int | None = None,
        max_memory_mb: float | None = None,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.queues = list(dict.fromkeys(queues or self._default_queues()))
        self.concurrency = max(1, concurrency)
        self.burst = burst
        self.batch_size = batch_size or max(self.concurrency, 1)
        self.grace_seconds = grace_seconds
        self.install_signal_handlers = install_signal_handlers
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self.processed = 0
        self.paused: set[str] = set()
        self._running: dict[str, tuple[ClaimedJob, JobContext, asyncio.Task[None]]] = {}
        self._unflushed: dict[str, ClaimedJob] = {}
        self._completions: list[Completion] = []
        self._stopping = threading.Event()
        self._closing = False  # set once run() winds down: the flush loop ends after its flush
        self._io = ThreadPoolExecutor(4, thread_name_prefix="conveyor-io")
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="conveyor-job")
        self._hooks = app.plugins.has_lifecycle_hooks()
        # None without configured limits: then admission costs nothing per job.
        self._limiter = limiter_for(app)

    def _default_queues(self) -> list[str]:
        return sorted({h.queue for h in self.app.registry}) or ["default"]

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs get `grace_seconds` to finish. Safe from any thread."""
        self._stopping.set()
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.stop)
        self.app.plugins.worker_started(self)
        reaper = Reaper(self.app)
        background = [
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(
                self._periodic(reaper.run_once, self.settings.reaper_seconds), name="reaper"
            ),
            asyncio.create_task(
                self._periodic(self.app.broker.reconcile, self.settings.reconcile_seconds),
                name="reconcile",
            ),
        ]
        try:
            await self._io_call(self._register)
            # Honour pauses from the first claim, not from the first heartbeat.
            self.paused = await self._io_call(self.app.store.paused_queues)
            await self._claim_loop()
            self.app.plugins.worker_stopping(self)
            await self._drain()
        finally:
            flusher, *others = background
            for task in others:
                task.cancel()
            # Never cancel the flusher mid-write: the batch it took would be lost and its jobs
            # left running until their leases expire. Let it finish, then stop.
            self._closing = True
            self._flush_wanted.set()
            await asyncio.gather(flusher, *others, return_exceptions=True)
            await self._flush()
            await self._io_call(self.app.store.worker_gone, self.id)
            self._io.shutdown(wait=False)
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _io_call(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self._loop.run_in_executor(self._io, func, *args)

    # --- claiming ------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        idle_since: float | None = None
        while not self.stopping:
            if self.max_jobs is not None and self.processed >= self.max_jobs:
                break
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            queues = [q for q in self.queues if q not in self.paused]
            try:
                claimed = await self._io_call(
                    self.app.broker.fetch,
                    queues,
                    min(free, self.batch_size),
                    self.id,
                    self.settings.lease_seconds,
                )
            except Exception as exc:
                log.warning("claim failed, backing off: %s", _first_line(exc))
                await self._sleep(min(2.0, self.settings.poll_seconds * 2))
                continue
            if claimed:
                idle_since = None
                if self._limiter is not None:
                    claimed = await self._admit(claimed)
                for job in claimed:
                    self._start(job)
                continue
            if self.burst and await self._burst_done():
                break
            if not self._running:
                idle_since = idle_since or time.monotonic()
            await self._wait_for_work(queues)

    async def _wait_for_work(self, queues: list[str]) -> None:
        """Until a running job finishes (a slot frees) or the broker's wake-up says work may
        be ready, `poll_seconds` at most. A broker wait blocks an I/O thread, so at most one
        is in flight; one that outlives this call serves the next."""
        self._wake.clear()
        pending = getattr(self, "_broker_wait", None)
        if pending is None or pending.done():
            wait = self._io_call(self.app.broker.wait, queues, min(1.0, self.settings.poll_seconds))
            pending = self._broker_wait = asyncio.ensure_future(wait)
        slot = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {slot, pending},
                timeout=self.settings.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            slot.cancel()
        failure = pending.exception() if pending.done() and not pending.cancelled() else None
        if failure is not None:
            log.warning("wait failed: %s", _first_line(failure))
            await self._sleep(1.0)

    async def _burst_done(self) -> bool:
        if self._running or self._completions or self._unflushed:
            await self._flush()
            return False
        due = await self._io_call(self.app.store.seconds_until_due, self.queues)
        return due is None or due > 0.05

    async def _admit(self, claimed: list[ClaimedJob]) -> list[ClaimedJob]:
        """The claimed jobs the limits let start now. The others are deferred: the lease goes
        back as `scheduled` at the limiter's wait, the attempt uncounted, no execution row."""
        assert self._limiter is not None
        requests = self._limiter.requests(claimed)
        if not requests:
            return claimed
        deferred = await self._io_call(
            self._limiter.admit, requests, self.settings.lease_seconds, time.monotonic()
        )
        if not deferred:
            return claimed
        held_back = {job.id for job, _ in deferred}
        for job, wait in deferred:
            self._unflushed[job.id] = job
            self._completions.append(
                Completion(
                    id=job.id,
                    lease_token=job.lease_token,
                    status=Status.SCHEDULED.value,
                    outcome=None,
                    attempt_delta=-1,
                    delay=wait,
                )
            )
        self._flush_wanted.set()
        return [job for job in claimed if job.id not in held_back]

    def _start(self, job: ClaimedJob) -> None:
        ctx = JobContext(self.app, job, self.id)
        task = asyncio.create_task(self._execute(job, ctx))
        self._running[job.id] = (job, ctx, task)
        self._unflushed[job.id] = job

    async def _execute(self, job: ClaimedJob, ctx: JobContext) -> None:
        if self._hooks:
            self.app.plugins.job_started(job, job.attempts, self.id)
        completion = await run_attempt(self.app, job, ctx, self._threads)
        self._running.pop(job.id, None)
        self._completions.append(completion)
        self.processed += 1
        self._flush_wanted.set()
        self._wake.set()
        if self._hooks:
            self.app.plugins.job_finished(
                job, completion.outcome or "", completion.result, completion.error
            )
        if completion.status == Status.DEAD:
            self.app.plugins.job_dead(job, completion.error)

    # --- completions ---------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        # Group commit: while one flush is in flight the next batch accumulates.
        while not self._closing:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._completions:
            batch = self._completions[:FLUSH_LIMIT]
            del self._completions[:FLUSH_LIMIT]
            released: list[Any] = []
            try:
                fenced = await self._io_call(self.app.store.complete, batch, released)
            except Exception as exc:
                # The database is away: keep the outcomes and try again; leases still hold.
                log.warning(
                    "writing %d completions failed, will retry: %s", len(batch), _first_line(exc)
                )
                self._completions[:0] = batch
                await self._sleep(1.0)
                if self.stopping and time.monotonic() > self._deadline():
                    return
                continue
            requeued = self._requeued(batch, fenced, released)
            if self._limiter is not None:
                await self._ended(batch)
            for completion in batch:
                self._unflushed.pop(completion.id, None)
            if requeued:
                await self._announce(requeued)

    async def _ended(self, batch: list[Completion]) -> None:
        """Give the limiter back the slots of jobs that ended; tell it of upstream 429s."""
        limiter = self._limiter
        assert limiter is not None
        ended = [
            (job, c)
            for c in batch
            if (job := self._unflushed.get(c.id)) is not None and limiter.concerns(job, c)
        ]
        if not ended:
            return
        try:
            await self._io_call(limiter.finished, ended, time.monotonic())
        except Exception as exc:
            # Their slots free themselves when their leases run out.
            log.warning("releasing limit slots failed: %s", _first_line(exc))

    def _requeued(
        self, batch: list[Completion], fenced: list[str], released: list[Any]
    ) -> list[Ready]:
        """Jobs these outcomes made claimable again (retries, deferrals, released dependents),
        for brokers that are told rather than polling the database."""
        held = set(fenced)
        now = time.time()
        ready = [Ready(*row) for row in released]
        for completion in batch:
            job = self._unflushed.get(completion.id)
            if job is not None and completion.id in held and completion.status in _REQUEUED:
                run_at = now + (completion.delay or 0.0)
                ready.append(Ready(job.id, job.queue, job.priority, run_at))
        return ready

    async def _announce(self, ready: list[Ready]) -> None:
        try:
            await self._io_call(
                self.app.broker.dispatched, [r.id for r in ready], {r.queue for r in ready}, ready
            )
        except Exception as exc:
            log.warning(
                "announcing %d requeued job(s) failed, the reconciler will: %s",
                len(ready),
                _first_line(exc),
            )

    def _deadline(self) -> float:
        if not hasattr(self, "_drain_deadline"):
            self._drain_deadline = time.monotonic() + self.grace_seconds
        return self._drain_deadline

    # --- heartbeats ----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._heartbeat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", _first_line(exc))

    async def _heartbeat(self) -> None:
        if self.max_memory_mb is not None and _rss_mb() > self.max_memory_mb:
            # Recycle: stop claiming and drain; a supervisor starts a fresh process.
            log.info("resident memory past %g MB: recycling this worker", self.max_memory_mb)
            self.stop()
        held = []
        for job_id, job in list(self._unflushed.items()):
            entry = self._running.get(job_id)
            progress = None
            if entry is not None and entry[1].progress_dirty:
                entry[1].progress_dirty = False
                progress = orjson.dumps(entry[1].current_progress).decode()
            held.append((job_id, job.lease_token, progress))
        still_held, cancel_requested = await self._io_call(
            self.app.store.extend_leases, held, self.settings.lease_seconds
        )
        if self._limiter is not None and self._limiter.holding:
            await self._io_call(
                self._limiter.refresh, list(still_held), self.settings.lease_seconds
            )
        for job_id, _, _ in held:
            entry = self._running.get(job_id)
            if entry is None:
                continue
            if job_id not in still_held:
                log.warning("lost the lease on job %s; its result will be refused", job_id)
                entry[1].cancel("lease")
            elif job_id in cancel_requested:
                entry[1].cancel()
        await self._io_call(self._register)
        self.paused = await self._io_call(self.app.store.paused_queues)

    def _register(self) -> None:
        now = time.time()
        self.app.store.worker_heartbeat(
            {
                "id": self.id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": orjson.dumps(self.queues).decode(),
                "concurrency": self.concurrency,
                "running": len(self._running),
                "started_at": getattr(self, "_started_at", now),
                "heartbeat_at": now,
            }
        )
        self._started_at = getattr(self, "_started_at", now)

    # --- shutdown ------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period, then give the rest back."""
        if self._running:
            log.info(
                "draining %d running job(s) for up to %gs", len(self._running), self.grace_seconds
            )
            tasks = [task for _, _, task in self._running.values()]
            await asyncio.wait(tasks, timeout=max(0.0, self._deadline() - time.monotonic()))
        leftovers = list(self._running.values())
        for _, ctx, task in leftovers:
            ctx.cancel("shutdown")
            task.cancel()
        if leftovers:
            await asyncio.gather(*(t for _, _, t in leftovers), return_exceptions=True)
            held = [(job.id, job.lease_token) for job, _, _ in leftovers]
            for job, _, _ in leftovers:
                self._running.pop(job.id, None)
                self._unflushed.pop(job.id, None)
            self._completions = [c for c in self._completions if c.id not in dict(held)]
            await self._flush()
            await self._io_call(self.app.store.release, held)
            if self._limiter is not None:
                await self._io_call(self._limiter.release, list(dict(held)), time.monotonic())
            now = time.time()
            await self._announce([Ready(j.id, j.queue, j.priority, now) for j, _, _ in leftovers])
            log.info("released %d unfinished job(s) without counting the attempt", len(held))

    # --- helpers -------------------------------------------------------------------------

    async def _periodic(self, func: Callable[[], Any], every: float) -> None:
        failing = False
        name = getattr(func, "__qualname__", func)
        while True:
            try:
                await self._io_call(func)
            except Exception as exc:
                # Say it once per outage, not every interval while the database is away.
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "%s failed: %s",
                    name,
                    _first_line(exc),
                )
                failing = True
            else:
                if failing:
                    log.info("%s works again", name)
                failing = False
            await asyncio.sleep(every)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        await self._wait_event(self._wake, seconds)

    @staticmethod
    async def _wait_event(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


def _rss_mb() -> float:
    """Current resident memory of this process (Linux), in MB; 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
