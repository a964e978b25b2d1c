"""The plugin manager and the one typed wrapper through which hooks are called."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy

from conveyor.core import hookspecs
from conveyor.core.errors import PluginError
from conveyor.core.registry import Handler, HandlerRegistry


class Plugins:
    """Loads plugins (entry points, CONVEYOR_PLUGINS, explicit) and calls their hooks typed."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    def register(self, plugin: ModuleType | object, name: str | None = None) -> None:
        if self.pm.is_registered(plugin):
            return
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name or plugin!r}: {exc}") from None
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name or plugin!r} is invalid: {exc}") from None

    def load(self, modules: Iterable[str] = (), entry_points: bool = True) -> None:
        if entry_points:
            self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise PluginError(f"cannot import plugin module {name!r}: {exc}") from None
            self.register(module, name=name)

    def build_registry(self) -> HandlerRegistry:
        """Ask every plugin for its handlers, one at a time so duplicates can name both."""
        registry = HandlerRegistry()
        for impl in self.pm.hook.conveyor_handlers.get_hookimpls():
            handlers: list[Any] = list(impl.function() or [])  # type: ignore[call-overload]
            for item in handlers:
                registry.add(item, impl.plugin_name)
        return registry

    def datasets(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for found in reversed(self.pm.hook.conveyor_datasets()):
            merged.update(found or {})
        return merged

    def classify_error(self, error: BaseException, job: Any) -> str | None:
        result: str | None = self.pm.hook.conveyor_classify_error(error=error, job=job)
        return result

    def job_submitted(self, job: Any) -> None:
        self.pm.hook.conveyor_job_submitted(job=job)

    def job_started(self, job: Any, attempt: int, worker: str) -> None:
        self.pm.hook.conveyor_job_started(job=job, attempt=attempt, worker=worker)

    def job_finished(self, job: Any, outcome: str, result: Any, error: str | None) -> None:
        self.pm.hook.conveyor_job_finished(job=job, outcome=outcome, result=result, error=error)

    def job_dead(self, job: Any, error: str | None) -> None:
        self.pm.hook.conveyor_job_dead(job=job, error=error)

    def worker_started(self, worker: Any) -> None:
        self.pm.hook.conveyor_worker_started(worker=worker)

    def worker_stopping(self, worker: Any) -> None:
        self.pm.hook.conveyor_worker_stopping(worker=worker)

    def has_hook(self, name: str) -> bool:
        """Whether any plugin implements hook `name` (callers skip the call on the hot path)."""
        return bool(getattr(self.pm.hook, name).get_hookimpls())

    def has_lifecycle_hooks(self) -> bool:
        """Whether any plugin listens to per-job events (skipped on the hot path if not)."""
        hooks = self.pm.hook
        return any(
            getattr(hooks, name).get_hookimpls()
            for name in ("conveyor_job_started", "conveyor_job_finished")
        )


__all__ = ["Handler", "Plugins"]
