"""The reaper: any worker rescues jobs whose lease expired (their worker died or froze)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from conveyor.core.jobs import Status

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

log = logging.getLogger("conveyor.reaper")


class Reaper:
    def __init__(self, app: Conveyor) -> None:
        self.app = app

    def run_once(self) -> int:
        """Rescue expired leases once; returns how many jobs were rescued."""
        rescued = self.app.store.rescue_expired_leases(self.app.settings.max_crash_recoveries)
        for row in rescued:
            if row.status == Status.DEAD:
                log.warning("job %s ended dead: %s (crash-recovery cap)", row.id, row.error)
                self.app.plugins.job_dead(row, row.error)
            else:
                log.info("job %s rescued after its lease expired", row.id)
        if rescued:
            ready = [r.id for r in rescued if r.status != Status.DEAD]
            if ready:
                jobs = self.app.store.get_many(ready)
                self.app.broker.dispatched(ready, {j.queue for j in jobs})
            self.app.broker.worker_lost()
        return len(rescued)
