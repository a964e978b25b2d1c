"""Settings, read once from the environment (each also a CLI option)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from conveyor.core.errors import ConfigurationError


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///conveyor.db"
    broker_url: str | None = None
    storage_url: str = "file://./conveyor-data"
    smtp_url: str = "file://./conveyor-outbox"
    mail_from: str = "conveyor@localhost"
    templates_dir: str | None = None
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    admin_token: str | None = None
    allow_private_urls: bool = False
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    reaper_seconds: float = 5.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    #: Crash recoveries (expired leases) after which a job ends dead instead of re-running.
    max_crash_recoveries: int = 3
    #: How long an idle worker waits before polling when no wake-up arrives.
    poll_seconds: float = 1.0
    #: How often workers rebuild the Redis broker's view from the database.
    reconcile_seconds: float = 5.0
    #: Starts per tenant at most: "100/s" for every tenant, "100/s,acme=500/s" with overrides
    #: (core/limits.py). Unset: no tenant rate limit.
    tenant_rate_limit: str | None = None
    #: Running jobs per tenant at most: "5", or "5,acme=20" with overrides. Unset: no limit.
    tenant_concurrency: str | int | None = None
    #: A job type slowed down by upstream 429s gets its rate back doubling every this long.
    throttle_recovery_seconds: float = 60.0
    #: Plugin modules named in CONVEYOR_PLUGINS.
    plugins: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ.get
        plugins = tuple(p.strip() for p in env("CONVEYOR_PLUGINS", "").split(",") if p.strip())
        settings = cls(
            database_url=env("CONVEYOR_DATABASE_URL") or cls.database_url,
            broker_url=env("CONVEYOR_BROKER_URL") or None,
            storage_url=env("CONVEYOR_STORAGE_URL") or cls.storage_url,
            smtp_url=env("CONVEYOR_SMTP_URL") or cls.smtp_url,
            mail_from=env("CONVEYOR_MAIL_FROM") or cls.mail_from,
            templates_dir=env("CONVEYOR_TEMPLATES_DIR") or None,
            stripe_api_key=env("CONVEYOR_STRIPE_API_KEY") or None,
            stripe_api_base=env("CONVEYOR_STRIPE_API_BASE") or None,
            admin_token=env("CONVEYOR_ADMIN_TOKEN") or None,
            allow_private_urls=env("CONVEYOR_ALLOW_PRIVATE_URLS", "") in ("1", "true", "yes"),
            lease_seconds=_env_float("CONVEYOR_LEASE_SECONDS", cls.lease_seconds),
            heartbeat_seconds=_env_float("CONVEYOR_HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            reaper_seconds=_env_float("CONVEYOR_REAPER_SECONDS", cls.reaper_seconds),
            retry_base_seconds=_env_float("CONVEYOR_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_seconds=_env_float("CONVEYOR_RETRY_MAX_SECONDS", cls.retry_max_seconds),
            max_crash_recoveries=int(
                _env_float("CONVEYOR_MAX_CRASH_RECOVERIES", cls.max_crash_recoveries)
            ),
            poll_seconds=_env_float("CONVEYOR_POLL_SECONDS", cls.poll_seconds),
            reconcile_seconds=_env_float("CONVEYOR_RECONCILE_SECONDS", cls.reconcile_seconds),
            tenant_rate_limit=env("CONVEYOR_TENANT_RATE_LIMIT") or None,
            tenant_concurrency=env("CONVEYOR_TENANT_CONCURRENCY") or None,
            throttle_recovery_seconds=_env_float(
                "CONVEYOR_THROTTLE_RECOVERY_SECONDS", cls.throttle_recovery_seconds
            ),
            plugins=plugins,
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigurationError(f"unknown settings: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given)
