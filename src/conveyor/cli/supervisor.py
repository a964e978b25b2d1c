"""Supervise worker processes: restart the ones that die, forward SIGTERM, and (with
--autoscale) grow or shrink between MIN and MAX by queue depth, with hysteresis."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

log = logging.getLogger("conveyor.supervisor")

#: Ready jobs per process above which one more process helps.
SCALE_UP_DEPTH = 100
SCALE_EVERY_SECONDS = 5.0


def _child_argv(argv: list[str]) -> list[str]:
    """The same command line without the supervision options."""
    out: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--autoscale"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--autoscale=")):
            continue
        out.append(arg)
    return [sys.executable, "-m", "conveyor", *out]


def supervise(argv: list[str], bounds: tuple[int, int], app: Conveyor, queues: list[str]) -> int:
    low, high = bounds
    command = _child_argv(argv)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    target = low
    last_scale = 0.0
    burst = "--burst" in command
    finished = 0  # burst children that exited cleanly: their share of the work is done
    while not stopping:
        alive = []
        for child in children:
            if child.poll() is None:
                alive.append(child)
            elif burst and child.returncode == 0:
                finished += 1
            else:
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
            target = _scaled(app, queues, target, low, high)
            for child in children[target:]:
                child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait()
    return 0


def _scaled(app: Conveyor, queues: list[str], current: int, low: int, high: int) -> int:
    stats = app.store.queue_stats()
    depth = sum(s["depth"] for name, s in stats.items() if not queues or name in queues)
    if depth > SCALE_UP_DEPTH * current and current < high:
        return current + 1
    if depth < SCALE_UP_DEPTH * (current - 1) / 2 and current > low:
        return current - 1  # hysteresis: shrink only well below the grow threshold
    return current
