"""A real SMTP server on loopback (aiosmtpd) that records what it receives and answers the
codes a test asks for, plus apps wired to it."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import conveyor
from conveyor.handlers.email.transport import close_transports

USER, PASSWORD = "mailer", "s3cret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class MailSink:
    """aiosmtpd handler: records deliveries; `rcpt_replies[address]` and
    `data_replies[address]` are lists of replies used up one per attempt (then 250)."""

    deliveries: list[Delivery] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    #: Recipients whose connection is dropped right after their message is accepted.
    drop_after_data: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        replies = self.rcpt_replies.get(address.lower())
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            replies = self.data_replies.get(rcpt.lower())
            if replies:
                return replies.pop(0)
        with self.lock:
            self.deliveries.append(
                Delivery(
                    envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer
                )
            )
        for rcpt in envelope.rcpt_tos:
            if self.drop_after_data.get(rcpt.lower(), 0) > 0:
                self.drop_after_data[rcpt.lower()] -= 1
                server.transport.abort()  # the message is kept, its answer is lost
        return "250 Message accepted"

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r.lower() for d in self.deliveries for r in d.rcpt_tos)

    def to(self, address: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if address.lower() in map(str.lower, d.rcpt_tos)]

    @property
    def connections(self) -> int:
        with self.lock:
            return len({d.peer for d in self.deliveries})


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """Starts and stops aiosmtpd controllers; `url` is what CONVEYOR_SMTP_URL would say."""

    def __init__(self) -> None:
        self.sink = MailSink()
        self.controllers: list[Controller] = []
        self.port = 0
        self.url = ""

    def start(
        self, port: int | None = None, scheme: str = "smtp", userinfo: str = "", **smtp_options: Any
    ) -> SmtpServer:
        self.port = port or free_port()
        controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **smtp_options)
        controller.start()
        self.controllers.append(controller)
        self.url = f"{scheme}://{userinfo}127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        while self.controllers:
            self.controllers.pop().stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    close_transports()
    server.stop()


@pytest.fixture
def auth_smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start(
        userinfo=f"{USER}:{PASSWORD}@", authenticator=_authenticate, auth_require_tls=False
    )
    yield server
    close_transports()
    server.stop()


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., SmtpServer]]:
    """`start_smtp(scheme=..., **aiosmtpd options)`: more servers, stopped at teardown."""
    servers: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        server = SmtpServer().start(**options)
        servers.append(server)
        return server

    yield start
    close_transports()
    for server in servers:
        server.stop()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture(autouse=True)
def _fresh_transports() -> Iterator[None]:
    close_transports()
    yield
    close_transports()


@pytest.fixture
def email_app(
    make_app: Callable[..., conveyor.Conveyor],
    fast_settings: dict[str, Any],
    smtp_server: SmtpServer,
) -> conveyor.Conveyor:
    """An app on the parametrised database that delivers to the test's SMTP server."""
    return make_app(smtp_url=smtp_server.url, **fast_settings)


def _drain(app: conveyor.Conveyor, *job_ids: str, timeout: float = 30.0) -> list[conveyor.Job]:
    deadline = time.monotonic() + timeout
    while True:
        app.run_burst(concurrency=8)
        jobs = [app.get(job_id) for job_id in job_ids]
        if all(job.terminal for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not finished: {[(j.id, j.status) for j in jobs]}")
        time.sleep(0.02)


@pytest.fixture
def drain() -> Callable[..., list[conveyor.Job]]:
    """`drain(app, *ids)`: run bursts until every job is terminal (retries fall due a moment
    after a burst ends) and return the jobs."""
    return _drain
