"""`conveyor demo`: the embedded showcase. No servers: SQLite, file storage, a file outbox."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from conveyor.core.engine import Conveyor
from conveyor.core.jobs import Job
from conveyor.core.settings import Settings

# Wide enough for the results table even when stdout is not a terminal.
console = Console(width=max(Console().width, 110))


def _sample_image(path: Path) -> None:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (2400, 1600))
    draw = ImageDraw.Draw(image)
    for y in range(0, 1600, 8):  # a gradient with stripes, so resizing is visible
        draw.rectangle([0, y, 2400, y + 8], fill=(y * 255 // 1600, 90, 255 - y * 255 // 1600))
    for x in range(0, 2400, 200):
        draw.ellipse([x, 600, x + 180, 780], fill=(255, 220, 0))
    image.save(path, quality=90)


def _core_jobs(app: Conveyor) -> list[tuple[str, Job]]:
    jobs = [
        ("low priority, submitted first", app.submit("echo", {"message": "low"}, priority="low")),
        ("medium priority", app.submit("echo", {"message": "medium"})),
        ("high priority, submitted last", app.submit("echo", {"message": "high"}, priority="high")),
        ("delayed by 2 s", app.submit("echo", {"message": "later"}, delay=2)),
        ("fails once, then recovers", app.submit("flaky", {"fail_times": 1, "key": "demo"})),
        ("permanent failure -> dead-letter queue", app.submit("fail", {"reason": "bad input"})),
    ]
    first = app.submit("echo", {"message": "once"}, idempotency_key="demo-once")
    again = app.submit("echo", {"message": "once"}, idempotency_key="demo-once")
    note = "idempotent repeat: same job" if first.id == again.id else "idempotency FAILED"
    jobs.append((note, again))
    return jobs


def _workload_jobs(app: Conveyor, root: Path) -> list[tuple[str, Job]]:
    jobs: list[tuple[str, Job]] = []
    registry = app.registry
    if "resize_image" in registry:
        # Sources must lie inside the storage directory (a submitter cannot read the disk).
        source = root / "data" / "input" / "sample.jpg"
        _sample_image(source)
        jobs.append(
            (
                "image resized into file storage",
                app.submit(
                    "resize_image",
                    {
                        "source": source.resolve().as_uri(),
                        "destination": f"{app.settings.storage_url.rstrip('/')}/thumbs/sample-",
                        "sizes": [
                            {"name": "thumb", "width": 200, "height": 200, "fit": "cover"},
                            {"name": "medium", "width": 1200, "fit": "contain"},
                        ],
                        "format": "webp",
                    },
                ),
            )
        )
    if "send_email" in registry:
        jobs.append(
            (
                "templated email to the outbox",
                app.submit(
                    "send_email",
                    {
                        "to": "ada@example.com",
                        "subject": "Hello {{ name }}",
                        "text": "Hi {{ name }}, your order {{ order }} has shipped.",
                        "html": "<p>Hi <b>{{ name }}</b>, your order {{ order }} has shipped.</p>",
                        "context": {"name": "Ada", "order": "#1024"},
                    },
                ),
            )
        )
    if "email_campaign" in registry:
        recipients = [
            {"email": f"reader{i:02d}@example.com", "context": {"name": f"Reader {i}"}}
            for i in range(50)
        ]
        jobs.append(
            (
                "50-recipient campaign",
                app.submit(
                    "email_campaign",
                    {
                        "campaign_id": "demo-newsletter",
                        "subject": "News for {{ name }}",
                        "text": "Dear {{ name }}, here is what's new.",
                        "recipients": recipients,
                        "rate_per_second": 100,
                    },
                ),
            )
        )
    return jobs


def _summary(job: Job) -> str:
    result = job.result if isinstance(job.result, dict) else {}
    if job.type == "resize_image" and "outputs" in result:
        return ", ".join(f"{o['name']} {o['width']}x{o['height']}" for o in result["outputs"])
    if job.type == "email_campaign" and "batch_id" in result:
        return f"{result.get('recipients')} emails in batch {result['batch_id'][:8]}"
    if job.type == "echo":
        return f"message {result.get('message')!r}"
    if job.type == "send_email" and "message_id" in result:
        return f"sent to {', '.join(result.get('recipients', []))}"
    if job.error:
        return job.error[:60]
    if job.result is not None:
        return str(job.result)[:60]
    return ""


def demo(
    directory: Path = typer.Option(Path("conveyor-demo"), "--dir", help="Where to put it all."),
    keep: bool = typer.Option(False, "--keep", help="Keep the previous demo's data."),
) -> None:
    """Run each built-in workload end to end, embedded, and show what happened."""
    if directory.exists() and not keep:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    settings = Settings.from_env(
        database_url=f"sqlite:///{root / 'conveyor.db'}",
        broker_url="",
        storage_url=f"file://{root / 'data'}",
        smtp_url=f"file://{root / 'outbox'}",
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        poll_seconds=0.1,
    )
    app = Conveyor(settings=settings)
    console.print(f"[bold]Conveyor demo[/] on SQLite at {root / 'conveyor.db'} (no servers)")
    jobs = _core_jobs(app) + _workload_jobs(app, root)
    # One job at a time, so the run order shows priorities plainly.
    worker = app.worker(concurrency=1, install_signal_handlers=False)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    started = time.monotonic()
    thread.start()
    _watch(app, [job.id for _, job in jobs])
    worker.stop()
    thread.join(timeout=30)
    _report(app, jobs, root, time.monotonic() - started)
    app.close()


def _watch(app: Conveyor, ids: list[str]) -> None:
    with Progress(
        TextColumn("[bold]running jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as bar:
        task = bar.add_task("", total=len(ids))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = sum(1 for j in app.store.get_many(ids) if j.terminal)
            left = _open_jobs(app)  # includes the jobs a campaign fanned out
            bar.update(task, completed=done, description=f"{left} job(s) still open")
            if done == len(ids) and left == 0:
                break
            time.sleep(0.1)


def _open_jobs(app: Conveyor) -> int:
    return sum(
        s["depth"] + s["scheduled"] + s["running"] + s["waiting"]
        for s in app.store.queue_stats().values()
    )


def _report(app: Conveyor, jobs: list[tuple[str, Job]], root: Path, seconds: float) -> None:
    table = Table(
        "what it shows",
        "type",
        "status",
        "tries",
        "result",
        title=f"What happened ({seconds:.1f} s)",
    )
    for note, submitted in jobs:
        job = app.get(submitted.id)
        colour = {"succeeded": "green", "dead": "red"}.get(job.status, "yellow")
        table.add_row(
            note,
            job.type,
            f"[{colour}]{job.status}",
            str(job.attempts),
            _summary(job),
        )
    console.print(table)
    order = sorted((app.get(j.id) for _, j in jobs[:3]), key=lambda j: j.started_at or 0)
    console.print(
        "run order of the three echo jobs: "
        + " -> ".join(str(j.payload.get("message")) for j in order)
    )
    paths: list[tuple[str, Any]] = [("database", root / "conveyor.db")]
    if (root / "data").exists():
        paths.append(("resized images", root / "data" / "thumbs"))
    if (root / "outbox").exists():
        count = len(list((root / "outbox").rglob("*.eml")))
        paths.append((f"emails ({count} .eml files)", root / "outbox"))
    for label, path in paths:
        console.print(f"  {label}: {path}")
    console.print(f"inspect: conveyor --database-url sqlite:///{root / 'conveyor.db'} jobs")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
