"""Prometheus metrics.

Two sources, kept apart on purpose:

- job lifecycle counters and the attempt-duration histogram come from the plugin hooks
  (`conveyor_job_submitted`, `conveyor_job_started`, `conveyor_job_finished`) of the process
  where the event happens: submissions in the API, attempts in workers;
- queue depth per queue and priority, and live workers, are read from the store at scrape time,
  so that any one API replica reports the whole system's backlog (what a KEDA-style autoscaler
  scales workers on) and a restart loses nothing.

Each app gets its own `CollectorRegistry`: two apps in one process never mix their numbers.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from conveyor.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

log = logging.getLogger("conveyor.metrics")

__all__ = [
    "CONTENT_TYPE_LATEST",
    "JobMetrics",
    "Metrics",
    "QueueCollector",
    "install",
    "render",
    "serve_metrics",
]

#: Attempts range from milliseconds (a no-op) to an hour (a big export).
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
PRIORITIES = ("high", "medium", "low")
#: Heartbeats younger than this count a worker as live (the CLI's `workers` default too).
LIVE_WORKER_SECONDS = 60.0


class JobMetrics:
    """A plugin object that counts submissions and finished attempts and times attempts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter(
            "conveyor_jobs_submitted",
            "Jobs written to the store by this process (idempotent repeats not counted).",
            ["type", "queue"],
            registry=registry,
        )
        self.finished = Counter(
            "conveyor_jobs_finished",
            "Attempts that ended in this process, by outcome "
            "(succeeded, retryable_error, permanent_error, timeout, cancelled, ...).",
            ["type", "queue", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "conveyor_job_duration_seconds",
            "How long attempts ran in this process, by type and outcome.",
            ["type", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # job id -> monotonic start; a job runs at most once at a time in one worker.
        self._started: dict[str, float] = {}

    @hookimpl
    def conveyor_job_submitted(self, job: Any) -> None:
        self.submitted.labels(job.type, job.queue).inc()

    @hookimpl
    def conveyor_job_started(self, job: Any, attempt: int, worker: str) -> None:
        self._started[job.id] = time.monotonic()

    @hookimpl
    def conveyor_job_finished(self, job: Any, outcome: str, result: Any, error: str | None) -> None:
        started = self._started.pop(job.id, None)
        if not outcome:  # released without an attempt (shutdown, deferral): nothing ran
            return
        self.finished.labels(job.type, job.queue, outcome).inc()
        if started is None:
            # No start seen (hooks registered mid-attempt): the claim time is close enough.
            elapsed = max(0.0, time.time() - float(getattr(job, "started_at", time.time())))
        else:
            elapsed = time.monotonic() - started
        self.duration.labels(job.type, outcome).observe(elapsed)


class QueueCollector:
    """Queue depth and live workers, read from the store on every scrape.

    A store that cannot be reached yields `conveyor_store_up 0` instead of failing the
    scrape, so the process metrics still arrive and alerts can fire on the gauge.
    """

    def __init__(self, app: Conveyor) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        # Without this, registering the collector would call collect(): a query at start-up.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("conveyor_store_up", "1 when the store answered this scrape.")
        try:
            # Queues that handlers serve are exported at zero too.
            stats = self.app.store.queue_stats(always={h.queue for h in self.app.registry})
            workers = self.app.store.live_workers(LIVE_WORKER_SECONDS)
        except Exception as exc:
            log.warning("metrics scrape could not read the store: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queue_families(stats)
        live = GaugeMetricFamily("conveyor_workers_live", "Workers with a recent heartbeat.")
        live.add_metric([], len(workers))
        yield live
        busy = GaugeMetricFamily(
            "conveyor_workers_running_jobs", "Jobs running on live workers, by their heartbeat."
        )
        busy.add_metric([], sum(int(w.get("running") or 0) for w in workers))
        yield busy
        slots = GaugeMetricFamily(
            "conveyor_workers_concurrency", "Concurrent job slots of live workers."
        )
        slots.add_metric([], sum(int(w.get("concurrency") or 0) for w in workers))
        yield slots


def _queue_families(stats: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "conveyor_queue_depth",
        "Jobs ready to run now (due and unclaimed), per queue and priority.",
        labels=["queue", "priority"],
    )
    per_queue = {
        "scheduled": "Jobs due later (delayed or waiting for a retry), per queue.",
        "running": "Jobs running, per queue.",
        "waiting": "Jobs waiting on dependencies, per queue.",
        "dead": "Jobs in the dead-letter queue, per queue.",
    }
    families = {
        name: GaugeMetricFamily(f"conveyor_queue_{name}", text, labels=["queue"])
        for name, text in per_queue.items()
    }
    paused = GaugeMetricFamily(
        "conveyor_queue_paused", "1 when the queue is paused.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "conveyor_queue_oldest_wait_seconds",
        "How long the oldest ready job has been due, per queue.",
        labels=["queue"],
    )
    for queue, entry in sorted(stats.items()):
        for priority in PRIORITIES:
            depth.add_metric([queue, priority], entry["ready"].get(priority, 0))
        for name, family in families.items():
            family.add_metric([queue], entry.get(name, 0))
        paused.add_metric([queue], 1 if entry.get("paused") else 0)
        oldest.add_metric([queue], float(entry.get("oldest_wait_seconds") or 0.0))
    yield depth
    yield from families.values()
    yield paused
    yield oldest


class Metrics:
    """One app's metrics: its registry and the plugin object feeding it."""

    def __init__(self, app: Conveyor, queue_depth: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = JobMetrics(self.registry)
        self.queue_depth = queue_depth
        if queue_depth:
            self.registry.register(QueueCollector(app))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def render(self) -> bytes:
        """The registry in Prometheus's text format."""
        return render(self.registry)


_installed: weakref.WeakKeyDictionary[Conveyor, Metrics] = weakref.WeakKeyDictionary()


def install(app: Conveyor, queue_depth: bool = True) -> Metrics:
    """Attach metrics to `app` (once; later calls return the same object).

    Call it before a worker is built: a worker decides at start whether to call job hooks.
    `queue_depth=False` suits worker processes, whose exporter should not repeat the queue
    gauges that the API already serves.
    """
    metrics = _installed.get(app)
    if metrics is None:
        metrics = Metrics(app, queue_depth=queue_depth)
        app.plugins.register(metrics.jobs, name=f"conveyor.metrics.{id(app):x}")
        _installed[app] = metrics
    return metrics


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def serve_metrics(app: Conveyor, port: int, host: str = "127.0.0.1") -> Any:
    """Expose a worker process's metrics on their own HTTP port (job counters and durations;
    queue depth stays with the API). Returns the server; `shutdown()` stops it."""
    from prometheus_client import start_http_server

    metrics = install(app, queue_depth=False)
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
