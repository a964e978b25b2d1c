from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import conveyor

from . import handlers


@pytest.fixture
def app(
    make_app: Callable[..., conveyor.Conveyor], fast_settings: dict[str, Any]
) -> conveyor.Conveyor:
    handlers.RAN.clear()
    return make_app(plugins=[handlers], entry_points=False, **fast_settings)


def run(app: conveyor.Conveyor, **options: Any) -> int:
    return app.run_burst(**options)
