"""Supervise worker processes: replace the ones that die, recycle, forward SIGTERM, and (with
--autoscale MIN:MAX) grow or shrink by queue depth and wait time, with hysteresis."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

log = logging.getLogger("conveyor.supervisor")

SCALE_EVERY_SECONDS = 5.0
SUPERVISOR_ONLY = ("--processes", "--autoscale", "--metrics-port", "--metrics-host")


@dataclass
class Autoscaler:
    """Grow fast, shrink slowly: one more process when work piles up or waits; one fewer only
    after several calm readings in a row, so a bursty queue does not make processes flap."""

    low: int
    high: int
    depth_per_process: int = 100
    max_wait_seconds: float = 5.0
    calm_readings_to_shrink: int = 3
    calm: int = 0

    def next_size(self, current: int, depth: int, oldest_wait: float) -> int:
        busy = depth > self.depth_per_process * current or oldest_wait > self.max_wait_seconds
        if busy:
            self.calm = 0
            return min(self.high, current + 1)
        quiet = depth < self.depth_per_process * (current - 1) / 2 and oldest_wait < 1.0
        self.calm = self.calm + 1 if quiet else 0
        if self.calm >= self.calm_readings_to_shrink and current > self.low:
            self.calm = 0
            return current - 1
        return current


def _child_argv(argv: list[str]) -> list[str]:
    """The same command line without the supervision options."""
    out: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        # Children share one command line, so they cannot share one metrics port either:
        # with several processes, scrape the API's /metrics instead.
        if arg in SUPERVISOR_ONLY:
            skip = True
            continue
        if arg.startswith(tuple(f"{option}=" for option in SUPERVISOR_ONLY)):
            continue
        out.append(arg)
    return [sys.executable, "-m", "conveyor", *out]


def supervise(argv: list[str], bounds: tuple[int, int], app: Conveyor, queues: list[str]) -> int:
    """Keep between bounds[0] and bounds[1] worker processes running until SIGTERM/SIGINT.

    A child that exits non-zero (crashed, killed) is replaced; one that exits 0 was recycled
    (--max-jobs-per-child, --max-memory-per-child) and is replaced too, except in burst mode,
    where a clean exit means its share of the work is done."""
    low, high = bounds
    command = _child_argv(argv)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scaler = Autoscaler(low, high)
    target = low
    last_scale = time.monotonic()
    burst = "--burst" in command
    finished = 0
    while not stopping:
        alive = []
        for child in children:
            if child.poll() is None:
                alive.append(child)
            elif burst and child.returncode == 0:
                finished += 1
            elif child.returncode != 0:
                log.warning(
                    "worker pid %d exited with %s; replacing it", child.pid, child.returncode
                )
        children = alive
        if burst and finished and not children:
            break
        while len(children) + (finished if burst else 0) < target:
            children.append(subprocess.Popen(command))
            log.info("started worker pid %d", children[-1].pid)
        if low != high and time.monotonic() - last_scale > SCALE_EVERY_SECONDS:
            last_scale = time.monotonic()
            target = _measure_and_scale(app, queues, scaler, target)
            for child in children[target:]:
                child.send_signal(signal.SIGTERM)  # drains, then exits 0
            children = children[:target] + [c for c in children[target:] if c.poll() is None]
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait()
    return 0


def _measure_and_scale(app: Conveyor, queues: list[str], scaler: Autoscaler, current: int) -> int:
    try:
        stats = app.store.queue_stats()
    except Exception as exc:  # the database may be away; keep the current size
        log.warning("cannot read queue depth: %s", exc)
        return current
    mine = [s for name, s in stats.items() if not queues or name in queues]
    depth = sum(s["depth"] for s in mine)
    wait = max((s["oldest_wait_seconds"] for s in mine), default=0.0)
    size = scaler.next_size(current, depth, wait)
    if size != current:
        log.info(
            "autoscale %d -> %d processes (depth %d, oldest wait %.1fs)", current, size, depth, wait
        )
    return size
