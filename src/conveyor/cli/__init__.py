"""The `conveyor` command. Bad input exits 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import sys

import typer

from conveyor.cli import demo, jobs, manage, serve, worker
from conveyor.cli.common import AppState
from conveyor.core.errors import ConveyorError, StoreUnavailable

app = typer.Typer(
    name="conveyor",
    help="Conveyor: durable background jobs. PostgreSQL records, Redis dispatches.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: str = typer.Option(
        None, "--database-url", envvar="CONVEYOR_DATABASE_URL", help="System of record."
    ),
    broker_url: str = typer.Option(
        None, "--broker-url", envvar="CONVEYOR_BROKER_URL", help="redis://… (unset: database)."
    ),
    plugins: str = typer.Option(
        None, "--plugins", envvar="CONVEYOR_PLUGINS", help="Extra plugin modules, comma-separated."
    ),
) -> None:
    ctx.obj = AppState(database_url=database_url, broker_url=broker_url, plugins=plugins)


for module in (jobs, worker, manage, demo, serve):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        # Outside standalone mode click returns a command's `typer.Exit(code)` instead of
        # raising it: that code is the exit status (`submit --wait` on a dead job: 1).
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: typer's own click exceptions
        format_message = getattr(exc, "format_message", None)
        text = format_message() if format_message else str(exc)
        if text:
            print(f"conveyor: {text}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    except StoreUnavailable as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        sys.exit(3)
    except ConveyorError as exc:
        print(f"conveyor: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
