"""The image workload's plugin: registers its handlers through the `conveyor_handlers` hook."""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def conveyor_handlers() -> list[Any]:
    return []
