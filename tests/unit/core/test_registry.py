from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import conveyor
from conveyor.core.errors import InvalidPayload, PluginError, UnknownJobType
from conveyor.core.plugins import Plugins


class Payload(BaseModel):
    name: str
    count: int = 1


def make(type_: str = "greet", **options: Any) -> conveyor.Handler:
    @conveyor.handler(type_, payload=Payload, **options)
    def greet(payload: Payload, ctx: conveyor.JobContext) -> None:
        """Greets someone.

        Longer text that is not part of the description."""

    return greet


def test_unknown_handler_option_fails_at_registration() -> None:
    with pytest.raises(PluginError, match=r"unknown option.*retries"):
        make(retries=3)


def test_handler_defaults_and_description() -> None:
    h = make(queue="mail", max_attempts=2, timeout=5, priority="high")
    described = h.describe()
    assert described["description"] == "Greets someone."
    assert (described["queue"], described["max_attempts"], described["timeout"]) == ("mail", 2, 5)
    assert described["payload_schema"]["properties"]["name"]["type"] == "string"


def test_payload_validation_reports_fields() -> None:
    h = make()
    assert h.validate({"name": "ada"}) == {"name": "ada"}
    with pytest.raises(InvalidPayload) as info:
        h.validate({"count": "x"})
    assert {tuple(d["loc"]) for d in info.value.details} == {("name",), ("count",)}


class PluginA:
    @conveyor.hookimpl
    def conveyor_handlers(self) -> list[Any]:
        return [make()]


class PluginB:
    @conveyor.hookimpl
    def conveyor_handlers(self) -> list[Any]:
        return [make()]


def test_duplicate_job_type_names_both_plugins() -> None:
    plugins = Plugins()
    plugins.register(PluginA(), name="plugin-a")
    plugins.register(PluginB(), name="plugin-b")
    with pytest.raises(PluginError, match=r"'greet'.*plugin-a.*plugin-b"):
        plugins.build_registry()


def test_unknown_type_lists_known_types() -> None:
    plugins = Plugins()
    plugins.register(PluginA(), name="plugin-a")
    registry = plugins.build_registry()
    assert registry.get("greet").plugin == "plugin-a"
    with pytest.raises(UnknownJobType, match=r"'gret' \(known: greet\)"):
        registry.get("gret")


def test_a_plugin_returning_a_plain_function_is_refused() -> None:
    class Bad:
        @conveyor.hookimpl
        def conveyor_handlers(self) -> list[Any]:
            return [lambda payload, ctx: None]

    plugins = Plugins()
    plugins.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="decorate the function"):
        plugins.build_registry()


def test_plugins_load_from_module_names() -> None:
    plugins = Plugins()
    plugins.load(["conveyor.plugins.samples"], entry_points=False)
    assert "noop" in plugins.build_registry()
    with pytest.raises(PluginError, match="cannot import plugin module 'no_such_mod'"):
        plugins.load(["no_such_mod"], entry_points=False)
