"""A 5,000-recipient campaign to a local SMTP server, beside the naive send, in one run.

    .venv/bin/python benchmarks/bench_email.py [--recipients 5000] [--database-url URL]
        [--concurrency 16] [--pool 1] [--naive 1000]

Starts aiosmtpd on loopback, one `conveyor worker` process, submits one `email_campaign`
and times it from submission to the last message the SMTP server accepted (the fan-out and
every ledger write included). Then, against the same server, the naive way: render, connect,
send, quit, once per message. Prints messages/s for both and the ratio. Without
`--database-url` a private PostgreSQL database is created on 127.0.0.1 and dropped at the end
(falls back to a SQLite file when PostgreSQL is not running).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from jinja2 import Environment

import conveyor

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SUBJECT = "Spring news for {{ name }}"
TEXT = (
    "Hello {{ name }},\n\nHere is what is new this spring.\n\nUnsubscribe: {{ unsubscribe_url }}\n"
)
HTML = "<p>Hello {{ name }},</p><p>Here is what is new this <b>spring</b>.</p>"


class CountingSink:
    """An aiosmtpd handler that only counts accepted messages and remembers when."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.peers: set[Any] = set()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        with self.lock:
            self.count += len(envelope.rcpt_tos)
            self.first = self.first or now
            self.last = now
            self.peers.add(session.peer)
        return "250 OK"

    def reset(self) -> None:
        with self.lock:
            self.count, self.first, self.last = 0, 0.0, 0.0
            self.peers.clear()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as admin:
            name = f"conveyor_bench_email_{uuid.uuid4().hex[:8]}"
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_campaign(args: argparse.Namespace, db_url: str, smtp_url: str, sink: CountingSink) -> float:
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": db_url,
        "CONVEYOR_SMTP_URL": smtp_url,
        "CONVEYOR_POLL_SECONDS": "0.05",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("CONVEYOR_")})
    app = conveyor.Conveyor.from_env()
    app.store.migrate()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "--concurrency",
            str(args.concurrency),
            "--log-level",
            "WARNING",
        ],
        env=env,
    )
    try:
        # Warm up: the worker is up and its SMTP connection is open before the clock starts.
        warm = app.submit("send_email", {"to": "warm@example.test", "subject": "s", "text": "t"})
        app.wait(warm.id, timeout=60)
        sink.reset()
        cpu_before = process_cpu(worker.pid)
        recipients = [
            {"email": f"user{i}@example.test", "context": {"name": f"User {i}"}}
            for i in range(args.recipients)
        ]
        started = time.perf_counter()
        job = app.submit(
            "email_campaign",
            {
                "campaign_id": f"bench-{uuid.uuid4().hex[:8]}",
                "subject": SUBJECT,
                "text": TEXT,
                "html": HTML,
                "recipients": recipients,
            },
        )
        deadline = time.monotonic() + args.timeout
        while sink.count < args.recipients:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"campaign stalled at {sink.count} messages")
            time.sleep(0.01)
        elapsed = sink.last - started
        cpu = process_cpu(worker.pid) - cpu_before
        result = app.wait(job.id, timeout=30).result or {}
        progress = app.batch_progress(result["batch_id"])
        deadline = time.monotonic() + 30
        while not progress["done"] and time.monotonic() < deadline:
            time.sleep(0.05)
            progress = app.batch_progress(result["batch_id"])
        print(
            f"  batch {progress['counts']}, SMTP connections used: {len(sink.peers)}, "
            f"worker CPU {cpu * 1000 / args.recipients:.2f} ms per message"
        )
        return elapsed
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        app.close()


def run_naive(count: int, host: str, port: int) -> float:
    """What a script does without a queue: one connection per message."""
    started = time.perf_counter()
    for i in range(count):
        env = Environment(autoescape=False)
        context = {"name": f"User {i}", "unsubscribe_url": "mailto:u@example.test"}
        msg = EmailMessage()
        msg["From"] = "conveyor@localhost"
        msg["To"] = f"naive{i}@example.test"
        msg["Subject"] = env.from_string(SUBJECT).render(context)
        msg.set_content(env.from_string(TEXT).render(context))
        msg.add_alternative(
            Environment(autoescape=True).from_string(HTML).render(context), subtype="html"
        )
        with smtplib.SMTP(host, port) as client:
            client.send_message(msg)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--naive", type=int, default=1000, help="messages sent the naive way")
    parser.add_argument("--database-url")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=1, help="SMTP connections per worker")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    smtp_url = f"smtp://127.0.0.1:{port}?pool={args.pool}"
    try:
        with database(args.database_url) as db_url:
            backend = db_url.split(":", 1)[0]
            print(
                f"campaign: {args.recipients:,} recipients, one worker process "
                f"(concurrency {args.concurrency}, {args.pool} SMTP connection(s)), {backend}"
            )
            with tempfile.TemporaryDirectory() as cwd:
                os.chdir(cwd)
                elapsed = run_campaign(args, db_url, smtp_url, sink)
            rate = args.recipients / elapsed
            print(f"  {elapsed:.2f} s from submit to last message: {rate:,.0f} messages/s")

            sink.reset()
            print(f"naive: {args.naive:,} messages, render + connect + send + quit each")
            naive_elapsed = run_naive(args.naive, "127.0.0.1", port)
            naive_rate = args.naive / naive_elapsed
            print(f"  {naive_elapsed:.2f} s: {naive_rate:,.0f} messages/s")
            print(
                f"ratio: {rate / naive_rate:.2f}x the naive send "
                f"({'meets' if rate >= 500 else 'BELOW'} the 500 messages/s target)"
            )
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
