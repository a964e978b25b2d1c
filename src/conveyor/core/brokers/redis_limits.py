"""Limits on Redis: one Lua call admits a claimed batch (`limit_acquire.lua`, the algorithm of
`core/admission.py`), one gives slots back, one renews them with heartbeats.

Keys, all under the `{limits}` hash tag so that one call touches one Redis Cluster slot:

    {limits}:rate:<type|tenant>:<N>/<P>s:<name>   hash: starts per slice, deferral horizon
    {limits}:factor:<type>                        hash: a type slowed by upstream 429s
    {limits}:slots:<tenant:…|type:…>              sorted set: running job members by lease expiry
    {limits}:slotmeta:<…>                         hash: deferral horizon, average hold

Every key expires by itself once idle. Like the rest of Redis's state these are rebuildable:
after a loss, windows start empty and heartbeats put running jobs' slots back.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from conveyor.core.admission import MIN_FACTOR, THROTTLE_DEBOUNCE, current_factor
from conveyor.core.limits import Held, Limiter, LimitPolicy, Request

if TYPE_CHECKING:
    import redis

    from conveyor.core.settings import Settings


def _script(client: redis.Redis, name: str) -> redis.commands.core.Script:
    source = resources.files("conveyor.core.brokers").joinpath(name).read_text()
    return client.register_script(source)


class RedisLimiter(Limiter):
    """Rate windows, concurrency slots and 429 factors in Redis, on Redis's clock."""

    def __init__(
        self, client: redis.Redis, prefix: str, policy: LimitPolicy, settings: Settings
    ) -> None:
        super().__init__(policy, settings)
        self.redis = client
        self.base = f"{prefix}{{limits}}:"
        self._acquire_script = _script(client, "limit_acquire.lua")
        self._release_script = _script(client, "limit_release.lua")
        self._refresh_script = _script(client, "limit_refresh.lua")
        self._throttle_script = _script(client, "limit_throttle.lua")

    def _acquire(self, requests: Sequence[Request], lease_seconds: float) -> list[float]:
        keys: dict[str, int] = {}

        def index(name: str) -> int:
            return keys.setdefault(self.base + name, len(keys) + 1)

        args: list[str | int | float] = [
            lease_seconds,
            self.settings.throttle_recovery_seconds,
            len(requests),
        ]
        for request in requests:
            checks = request.checks
            args += [request.member, len(checks.rates), len(checks.slots)]
            for rate in checks.rates:
                factor = index(f"factor:{rate.adaptive}") if rate.adaptive else 0
                args += [index(rate.key), rate.rate.limit, repr(rate.rate.period), factor]
            for slot in checks.slots:
                args += [index(f"slots:{slot.key}"), index(f"slotmeta:{slot.key}"), slot.limit]
        reply = self._acquire_script(keys=list(keys), args=args)
        return [float(wait) for wait in reply]

    def _release(self, held: Sequence[Held], clock: float) -> None:
        keys: list[str] = []
        args: list[str | float] = []
        for item in held:
            for slot in item.slots:
                keys += [f"{self.base}slots:{slot.key}", f"{self.base}slotmeta:{slot.key}"]
                args += [item.member, round(max(0.0, clock - item.since), 6)]
        self._release_script(keys=keys, args=args)

    def _refresh(self, held: Sequence[Held], lease_seconds: float) -> None:
        keys: list[str] = []
        args: list[str | float] = [lease_seconds]
        for item in held:
            for slot in item.slots:
                keys.append(f"{self.base}slots:{slot.key}")
                args.append(item.member)
        self._refresh_script(keys=keys, args=args)

    def _throttled(self, type_: str) -> None:
        self._throttle_script(
            keys=[f"{self.base}factor:{type_}"],
            args=[self.settings.throttle_recovery_seconds, THROTTLE_DEBOUNCE, MIN_FACTOR],
        )

    def factor(self, type_: str) -> float:
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(f"{self.base}factor:{type_}", ["f", "t"])
        (seconds, micros), (factor, at) = pipe.execute()
        if factor is None:
            return 1.0
        now = seconds + micros / 1e6
        return current_factor(
            float(factor), float(at), now, self.settings.throttle_recovery_seconds
        )

    def running(self, slot_key: str) -> int:
        """Slots of `slot_key` (as in SlotCheck.key) held by live leases now."""
        seconds, micros = self.redis.time()
        key = f"{self.base}slots:{slot_key}"
        return int(self.redis.zcount(key, f"({seconds + micros / 1e6}", "+inf"))
