"""A 1,000-recipient campaign whose worker is killed with SIGKILL halfway, on PostgreSQL.

The SMTP server (aiosmtpd on loopback) holds its answer to the 500th message, so the worker is
killed with that send in flight: the message was handed over, no reply came, and the server
keeps nothing. A second worker finishes the campaign. Nobody may receive two messages; everyone
receives one except the recipient whose send was in flight; and exactly that recipient is
listed as an uncertain effect in the batch's progress (at most one per SMTP connection the
killed worker held: one, the default pool).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from harness import FAST_ENV, Processes, fresh_database, subprocess_env, wait_for

import conveyor
from conveyor.handlers.email.transport import close_transports

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(90)]

RECIPIENTS = 1000
HOLD_AT = 500


class HoldingSink:
    """Records deliveries; the `HOLD_AT`-th message gets no answer until `release` is set,
    and is then dropped (never recorded)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.seen = 0
        self.held_for: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.seen += 1
            hold = self.seen == HOLD_AT
            if hold:
                self.held_for = envelope.rcpt_tos[0].lower()
        if hold:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            return "421 4.3.0 Shutting down"  # to a client that is long gone
        with self.lock:
            self.received.update(r.lower() for r in envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[HoldingSink, str]]:
    handler = HoldingSink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}"
    finally:
        handler.release.set()
        close_transports()
        controller.stop()


def test_sigkill_halfway_through_a_campaign(sink: tuple[HoldingSink, str], tmp_path: Path) -> None:
    server, smtp_url = sink
    with fresh_database("conveyor_chaos_email") as url:
        app = conveyor.Conveyor(url)
        app.store.migrate()
        env = subprocess_env(url, CONVEYOR_SMTP_URL=smtp_url, **FAST_ENV)
        procs = Processes(env, tmp_path / "logs")
        try:
            emails = [f"user{i:04d}@example.test" for i in range(RECIPIENTS)]
            campaign = app.submit(
                "email_campaign",
                {
                    "campaign_id": "kill-test",
                    "subject": "Hello {{ name }}",
                    "text": "Hi {{ name }}, this is message {{ n }}.",
                    "recipients": [
                        {"email": e, "context": {"name": e.split("@")[0], "n": i}}
                        for i, e in enumerate(emails)
                    ],
                },
            )
            first = procs.worker("--concurrency", "8")
            wait_for(server.holding.is_set, 45, "the 500th message", on_timeout=procs.all_logs)

            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
            server.release.set()
            held = server.held_for
            assert held is not None

            batch_id = app.wait(campaign.id, timeout=10).result["batch_id"]
            procs.worker("--concurrency", "8")
            progress = wait_for(
                lambda: (p := app.batch_progress(batch_id))["done"] and p,
                45,
                "the campaign to finish after the kill",
                on_timeout=procs.all_logs,
            )
        finally:
            procs.stop_all()
            app.close()

    assert progress["total"] == RECIPIENTS
    assert progress["counts"] == {"succeeded": RECIPIENTS}
    assert max(server.received.values()) == 1, "somebody received two messages"
    missing = set(emails) - set(server.received)
    assert missing == {held}
    # Exactly the in-flight send is uncertain: one per SMTP connection the worker held.
    assert progress["uncertain_effects"] == [f"email:kill-test:{held}"]
