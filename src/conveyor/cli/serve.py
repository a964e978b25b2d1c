"""`conveyor serve` (the REST API and /metrics) and `conveyor tokens create|list|revoke`."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.common import fail, get_app, print_json
from conveyor.core.engine import Conveyor
from conveyor.core.errors import StoreUnavailable
from conveyor.core.store import tokens as token_store

log = logging.getLogger("conveyor.serve")

tokens = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the REST API and /metrics (binds 127.0.0.1 unless told otherwise)."""
    import uvicorn

    from conveyor.api import create_app

    app = get_app(ctx)
    loopback = is_loopback(host)
    if not loopback and not auth_configured(app):
        fail(
            f"refusing to serve on {host} with authentication off: set CONVEYOR_ADMIN_TOKEN "
            "or create a token (conveyor tokens create NAME --scope admin), or bind 127.0.0.1"
        )
    try:
        app.store  # noqa: B018 - creates or upgrades the schema now rather than on a request
    except StoreUnavailable as exc:
        print(f"conveyor: {exc}; /readyz answers 503 until it is back", file=sys.stderr)
    # Off loopback a token is always required, even if every token is later revoked.
    api = create_app(app, require_auth=None if loopback else True)
    # uvicorn drains on SIGTERM, then re-raises it under the handler found at start: a
    # no-op one makes a graceful stop exit 0, as `conveyor worker` does.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(api, host=host, port=port, log_level=log_level.lower(), access_log=False)
    finally:
        app.close()


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def auth_configured(app: Conveyor) -> bool:
    return bool(app.settings.admin_token) or token_store.any_active(app.store.engine)


@tokens.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the token is for, e.g. ci or billing-service."),
    scopes: list[str] = typer.Option(
        ["read"], "--scope", "-s", help="submit, read or admin (repeatable or comma-separated)."
    ),
    tenant: str = typer.Option(None, "--tenant", help="Bind the token to one tenant."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a token; prints it once (only its hash is stored)."""
    record, token = token_store.create_token(get_app(ctx).store.engine, name, scopes, tenant)
    if as_json:
        print_json({**record.to_dict(), "token": token})
        return
    typer.echo(token)
    print(
        f"token {record.id} ({record.name}; scopes {','.join(sorted(record.scopes))}"
        f"{'; tenant ' + record.tenant if record.tenant else ''}): store it now, "
        "it is not shown again",
        file=sys.stderr,
    )


@tokens.command("list")
def tokens_list(
    ctx: typer.Context,
    include_revoked: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List tokens (never the tokens themselves)."""
    found = token_store.list_tokens(get_app(ctx).store.engine, include_revoked)
    if as_json:
        print_json([record.to_dict() for record in found])
        return
    table = Table("id", "name", "scopes", "tenant", "created", "revoked")
    for record in found:
        table.add_row(
            record.id,
            record.name,
            ",".join(sorted(record.scopes)),
            record.tenant or "",
            _when(record.created_at),
            _when(record.revoked_at),
        )
    Console().print(table)


@tokens.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    id_or_name: str = typer.Argument(..., metavar="ID_OR_NAME"),
) -> None:
    """Revoke a token by id, or every active token with that name; effective at once."""
    revoked = token_store.revoke_token(get_app(ctx).store.engine, id_or_name)
    for record in revoked:
        typer.echo(f"revoked {record.id} ({record.name})")


def _when(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(tokens, name="tokens")
