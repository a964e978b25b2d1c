"""What every command shares: building the app from options, printing JSON."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson
import typer

from conveyor.core.engine import Conveyor
from conveyor.core.errors import ConveyorError
from conveyor.core.settings import Settings


@dataclass
class AppState:
    database_url: str | None = None
    broker_url: str | None = None
    plugins: str | None = None
    _app: Conveyor | None = field(default=None, repr=False)

    def app(self, **overrides: Any) -> Conveyor:
        if self._app is None:
            plugins = tuple(p.strip() for p in (self.plugins or "").split(",") if p.strip())
            settings = Settings.from_env(
                database_url=self.database_url,
                broker_url=self.broker_url,
                plugins=plugins or None,
                **overrides,
            )
            self._app = Conveyor(settings=settings)
        return self._app


def get_app(ctx: typer.Context, **overrides: Any) -> Conveyor:
    state: AppState = ctx.find_root().obj
    return state.app(**overrides)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def fail(message: str) -> None:
    """Bad input: one line, exit status 2."""
    raise ConveyorError(message)


DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '45s' or plain seconds."""
    match = DURATION.match(text.strip().lower())
    if not match:
        fail(f"cannot read duration {text!r} (use e.g. 7d, 12h, 30m, 45s)")
        raise AssertionError  # unreachable
    return float(match.group(1)) * UNITS[match.group(2)]
