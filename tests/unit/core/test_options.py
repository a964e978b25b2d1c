from __future__ import annotations

import time

import pytest

from conveyor.core.errors import ConfigurationError, InvalidOption
from conveyor.core.jobs import Priority, new_job_id
from conveyor.core.options import build_spec, parse_run_at
from conveyor.core.registry import Handler
from conveyor.core.settings import Settings


def handler() -> Handler:
    return Handler(type="t", func=lambda p, c: None, queue="q", max_attempts=4, timeout=9)


def test_handler_defaults_fill_in() -> None:
    spec = build_spec(handler(), {}, {})
    assert (spec.queue, spec.max_attempts, spec.timeout, spec.priority) == ("q", 4, 9, 1)


def test_options_override() -> None:
    spec = build_spec(
        handler(),
        {"a": 1},
        {"queue": "x", "priority": "low", "delay": 10, "tenant": "acme", "depends_on": "a,b"},
    )
    assert spec.priority == Priority.LOW and spec.tenant == "acme"
    assert spec.depends_on == ["a", "b"] and spec.run_at > time.time() + 9


def test_run_at_formats() -> None:
    assert parse_run_at("2030-01-01T00:00:00Z") == parse_run_at("2030-01-01T00:00:00+00:00")
    assert parse_run_at(1.5) == 1.5
    with pytest.raises(InvalidOption):
        parse_run_at("next tuesday")


def test_ids_sort_by_creation() -> None:
    ids = [new_job_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "12")
    monkeypatch.setenv("CONVEYOR_PLUGINS", "a, b")
    settings = Settings.from_env()
    assert settings.lease_seconds == 12 and settings.plugins == ("a", "b")
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="CONVEYOR_LEASE_SECONDS"):
        Settings.from_env()
