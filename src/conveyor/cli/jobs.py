"""Submit and inspect: submit, status, jobs, retry, cancel, dlq."""

from __future__ import annotations

from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.common import fail, get_app, print_json
from conveyor.core.jobs import Job, Status

dlq = typer.Typer(help="The dead-letter queue: list, requeue, purge.", no_args_is_help=True)


def _parse_payload(payload: str | None, pairs: list[str]) -> dict[str, Any]:
    if payload is not None and pairs:
        fail("give --payload JSON or -p key=value pairs, not both")
    if payload is not None:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            fail(f"--payload is not valid JSON: {exc}")
        if not isinstance(value, dict):
            fail("--payload must be a JSON object")
        return value  # type: ignore[no-any-return]
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"-p expects key=value, got {pair!r}")
        try:
            result[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            result[key] = raw  # plain text
    return result


def submit(
    ctx: typer.Context,
    type_: str = typer.Argument(..., metavar="TYPE", help="Job type, e.g. send_email."),
    payload: str = typer.Option(None, "--payload", help="Payload as a JSON object."),
    pairs: list[str] = typer.Option([], "-p", "--param", help="key=value (value may be JSON)."),
    queue: str = typer.Option(None, "--queue"),
    priority: str = typer.Option(None, "--priority", help="high, medium or low."),
    delay: float = typer.Option(None, "--delay", help="Seconds from now."),
    run_at: str = typer.Option(None, "--run-at", help="ISO 8601 date and time."),
    max_attempts: int = typer.Option(None, "--max-attempts"),
    timeout: float = typer.Option(None, "--timeout", help="Seconds per attempt."),
    idempotency_key: str = typer.Option(None, "--idempotency-key"),
    tenant: str = typer.Option(None, "--tenant"),
    depends_on: list[str] = typer.Option([], "--depends-on", help="Job id (repeatable)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a terminal state."),
    wait_timeout: float = typer.Option(3600.0, "--wait-timeout"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Submit a job; prints its id (or the job JSON with --json)."""
    app = get_app(ctx)
    ids = [d for item in depends_on for d in item.split(",") if d]
    job = app.submit(
        type_,
        _parse_payload(payload, pairs),
        queue=queue,
        priority=priority,
        delay=delay,
        run_at=run_at,
        max_attempts=max_attempts,
        timeout=timeout,
        idempotency_key=idempotency_key,
        tenant=tenant,
        depends_on=ids or None,
    )
    if wait:
        try:
            job = app.wait(job.id, timeout=wait_timeout)
        except TimeoutError as exc:
            fail(str(exc))
    if as_json:
        print_json(job.to_dict())
    else:
        typer.echo(job.id)
    if wait and job.status != Status.SUCCEEDED:
        raise typer.Exit(1)


def status(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one job, its attempts, and its batch's progress."""
    app = get_app(ctx)
    job = app.get(job_id)
    if as_json:
        print_json(job.to_dict())
        return
    console = Console()
    table = Table(show_header=False, box=None)
    for key, value in job.to_dict().items():
        if key in ("executions", "payload", "result", "progress") or value in (None, []):
            continue
        table.add_row(f"[bold]{key}", str(value))
    for key in ("payload", "result", "progress"):
        value = getattr(job, key)
        if value is not None:
            table.add_row(f"[bold]{key}", orjson.dumps(value).decode())
    console.print(table)
    if job.executions:
        runs = Table("attempt", "worker", "outcome", "ms", "error", title="executions")
        for e in job.executions:
            runs.add_row(
                str(e.attempt),
                e.worker or "",
                e.outcome,
                f"{e.duration_ms:.1f}" if e.duration_ms is not None else "",
                (e.error or "")[:80],
            )
        console.print(runs)
    if job.batch_id:
        progress = app.batch_progress(job.batch_id)
        console.print(
            f"batch {progress['id']}: {progress['finished']}/{progress['total']} "
            f"finished, counts {progress['counts']}, "
            f"uncertain {len(progress['uncertain_effects'])}"
        )


def _jobs_table(items: list[Job], title: str) -> Table:
    table = Table("id", "type", "queue", "priority", "status", "attempts", "error", title=title)
    for job in items:
        table.add_row(
            job.id,
            job.type,
            job.queue,
            job.priority,
            job.status,
            f"{job.attempts}/{job.max_attempts}",
            (job.error or "")[:60],
        )
    return table


def list_jobs(
    ctx: typer.Context,
    status_: str = typer.Option(None, "--status", help="waiting, scheduled, queued, …"),
    type_: str = typer.Option(None, "--type"),
    queue: str = typer.Option(None, "--queue"),
    tenant: str = typer.Option(None, "--tenant"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    cursor: str = typer.Option(None, "--cursor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs, newest first."""
    if status_ is not None and status_ not in {s.value for s in Status}:
        fail(f"unknown status {status_!r} (use one of: {', '.join(s.value for s in Status)})")
    items, next_cursor = get_app(ctx).list_jobs(
        status=status_, type_=type_, queue=queue, tenant=tenant, limit=limit, cursor=cursor
    )
    if as_json:
        print_json({"items": [j.to_dict() for j in items], "next_cursor": next_cursor})
        return
    Console().print(_jobs_table(items, "jobs"))
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


def retry(ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Queue a dead or cancelled job again."""
    job = get_app(ctx).retry(job_id)
    typer.echo(f"{job.id} {job.status}")


def cancel(ctx: typer.Context, job_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Cancel a job (a running one is asked to stop)."""
    outcome = get_app(ctx).cancel(job_id)
    typer.echo(f"{job_id} {'cancelled' if outcome == 'cancelled' else 'cancel requested'}")


@dlq.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dead jobs, newest first."""
    items, next_cursor = get_app(ctx).list_jobs(status=Status.DEAD.value, limit=limit)
    if as_json:
        print_json({"items": [j.to_dict() for j in items], "next_cursor": next_cursor})
    else:
        Console().print(_jobs_table(items, "dead-letter queue"))


@dlq.command("requeue")
def dlq_requeue(
    ctx: typer.Context,
    job_ids: list[str] = typer.Argument(None, metavar="[ID]..."),
    all_: bool = typer.Option(False, "--all", help="Requeue every dead job."),
) -> None:
    """Queue dead jobs again (given ids, or --all)."""
    if bool(job_ids) == all_:
        fail("give job ids or --all")
    app = get_app(ctx)
    moved = app.store.retry(None if all_ else job_ids)
    app.broker.reconcile()
    typer.echo(f"requeued {moved} job(s)")


@dlq.command("purge")
def dlq_purge(ctx: typer.Context) -> None:
    """Delete every dead job and its execution log."""
    typer.echo(f"purged {get_app(ctx).store.purge_dead()} job(s)")


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("jobs")(list_jobs)
    app.command("retry")(retry)
    app.command("cancel")(cancel)
    app.add_typer(dlq, name="dlq")
