"""The image workload's plugin: registers `resize_image` through the `conveyor_handlers` hook,
like any third-party plugin."""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def conveyor_handlers() -> list[Any]:
    from conveyor.handlers.image.handler import resize_image

    return [resize_image]
