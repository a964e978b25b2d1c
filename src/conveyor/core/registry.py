"""Handlers: the `@handler` decorator and the registry of job types."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from conveyor.core.errors import ConfigurationError, InvalidPayload, PluginError, UnknownJobType
from conveyor.core.jobs import Priority
from conveyor.core.limits import parse_rate

#: Options a handler may declare; anything else fails at registration (dramatiq's actor_options).
HANDLER_OPTIONS = frozenset(
    {
        "payload",
        "queue",
        "priority",
        "max_attempts",
        "timeout",
        "description",
        "rate_limit",
        "tenant_concurrency",
        "cpu_bound",
    }
)


#: A handler's payload model (named here: inside `Handler`, `type` is a field).
PayloadModel = type[BaseModel]


@dataclass(slots=True)
class Handler:
    """A job type: the function that runs it and the defaults its jobs get."""

    type: str
    func: Callable[..., Any]
    payload: PayloadModel | None = None
    queue: str = "default"
    priority: Priority = Priority.MEDIUM
    max_attempts: int = 5
    timeout: float | None = None
    description: str = ""
    rate_limit: str | None = None
    tenant_concurrency: int | None = None
    cpu_bound: bool = False
    plugin: str = "unknown"
    is_async: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.func)
        if not self.description:
            doc = inspect.getdoc(self.func) or ""
            self.description = doc.split("\n\n", 1)[0].replace("\n", " ")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def validate(self, payload: Any) -> dict[str, Any]:
        """The payload as the model accepts it, in JSON form; raises InvalidPayload."""
        if self.payload is None:
            if not isinstance(payload, dict):
                raise InvalidPayload(f"payload for {self.type!r} must be a JSON object")
            return payload
        try:
            model = self.payload.model_validate(payload)
        except ValidationError as exc:
            details = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
            ]
            first = details[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise InvalidPayload(
                f"invalid payload for {self.type!r}: {where}: {first['msg']}", details
            ) from None
        return model.model_dump(mode="json", exclude_unset=True)

    def parse(self, payload: dict[str, Any]) -> Any:
        """The argument the function receives: the model instance, or the raw dict."""
        if self.payload is None:
            return payload
        return self.payload.model_validate(payload)

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "description": self.description,
            "payload_schema": self.payload.model_json_schema() if self.payload else {},
            "queue": self.queue,
            "priority": str(self.priority),
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "rate_limit": self.rate_limit,
            "plugin": self.plugin,
        }


def handler(type_: str, **options: Any) -> Callable[[Callable[..., Any]], Handler]:
    """Declare a job type. Options: payload (a pydantic model), queue, priority,
    max_attempts, timeout, description, rate_limit ("50/s"), tenant_concurrency, cpu_bound."""
    unknown = set(options) - HANDLER_OPTIONS
    if unknown:
        raise PluginError(
            f"handler {type_!r}: unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(HANDLER_OPTIONS))})"
        )
    if "priority" in options:
        options["priority"] = Priority.parse(options["priority"])
    max_attempts = options.get("max_attempts", 5)
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise PluginError(f"handler {type_!r}: max_attempts must be a positive integer")
    if options.get("rate_limit") is not None:
        try:
            parse_rate(options["rate_limit"])
        except ConfigurationError as exc:
            raise PluginError(f"handler {type_!r}: {exc}") from None
    slots = options.get("tenant_concurrency")
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise PluginError(f"handler {type_!r}: tenant_concurrency must be a positive integer")

    def wrap(func: Callable[..., Any]) -> Handler:
        return Handler(type=type_, func=func, **options)

    return wrap


class HandlerRegistry:
    """Job types by name; duplicates fail at start-up naming both plugins."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, item: Handler, plugin: str) -> None:
        if not isinstance(item, Handler):
            raise PluginError(
                f"plugin {plugin!r} returned {item!r} from conveyor_handlers; "
                "decorate the function with @conveyor.handler(...)"
            )
        existing = self._handlers.get(item.type)
        if existing is not None and existing is not item:
            raise PluginError(
                f"job type {item.type!r} is registered twice: by plugin {existing.plugin!r} "
                f"and by plugin {plugin!r}"
            )
        item.plugin = plugin
        self._handlers[item.type] = item

    def get(self, type_: str) -> Handler:
        try:
            return self._handlers[type_]
        except KeyError:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise UnknownJobType(f"unknown job type {type_!r} (known: {known})") from None

    def __contains__(self, type_: object) -> bool:
        return type_ in self._handlers

    def __iter__(self) -> Any:
        return iter(sorted(self._handlers.values(), key=lambda h: h.type))

    def __len__(self) -> int:
        return len(self._handlers)
