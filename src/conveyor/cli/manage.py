"""Manage: handlers, migrate, prune."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.common import get_app, parse_duration, print_json


def handlers(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List job types with their payload schema and the plugin that registered them."""
    described = [h.describe() for h in get_app(ctx).registry]
    if as_json:
        print_json(described)
        return
    table = Table("type", "queue", "max attempts", "timeout", "plugin", "description")
    for h in described:
        table.add_row(
            h["type"],
            h["queue"],
            str(h["max_attempts"]),
            "" if h["timeout"] is None else f"{h['timeout']:g}s",
            h["plugin"],
            h["description"],
        )
    Console().print(table)


def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the database schema."""
    app = get_app(ctx)
    from conveyor.core.store.store import Store

    store = Store(app.settings.database_url, migrate=False)
    changed = store.migrate()
    store.close()
    typer.echo("schema upgraded to head" if changed else "schema already at head")


def prune(
    ctx: typer.Context,
    older_than: str = typer.Option("7d", "--older-than", help="e.g. 7d, 12h, 30m."),
) -> None:
    """Delete finished jobs (and their executions) older than the cutoff."""
    removed = get_app(ctx).store.prune(parse_duration(older_than))
    typer.echo(f"pruned {removed} job(s)")


def register(app: typer.Typer) -> None:
    app.command("handlers")(handlers)
    app.command("migrate")(migrate)
    app.command("prune")(prune)
