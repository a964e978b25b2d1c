"""Manage: handlers, migrate, prune."""

from __future__ import annotations

import time

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


def workers(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    within: float = typer.Option(60.0, "--within", help="Heartbeat age in seconds."),
) -> None:
    """Live workers: host, pid, queues, concurrency, running jobs, last heartbeat."""
    found = get_app(ctx).store.live_workers(within)
    if as_json:
        print_json(found)
        return
    table = Table("id", "host", "pid", "queues", "concurrency", "running", "heartbeat age")
    now = time.time()
    for w in found:
        table.add_row(
            w["id"],
            w["host"],
            str(w["pid"]),
            ",".join(w["queues"]),
            str(w["concurrency"]),
            str(w["running"]),
            f"{now - w['heartbeat_at']:.1f}s",
        )
    Console().print(table)


def queues(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Depth per queue and priority, scheduled, running, waiting, dead, paused."""
    stats = get_app(ctx).store.queue_stats()
    if as_json:
        print_json(stats)
        return
    table = Table(
        "queue", "high", "medium", "low", "scheduled", "running", "dead", "paused", "oldest wait"
    )
    for name, s in sorted(stats.items()):
        ready = s["ready"]
        table.add_row(
            name,
            str(ready["high"]),
            str(ready["medium"]),
            str(ready["low"]),
            str(s["scheduled"]),
            str(s["running"]),
            str(s["dead"]),
            "yes" if s["paused"] else "",
            f"{s['oldest_wait_seconds']:.1f}s",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("handlers")(handlers)
    app.command("migrate")(migrate)
    app.command("prune")(prune)
    app.command("workers")(workers)
    app.command("queues")(queues)
