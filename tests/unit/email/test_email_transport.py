"""SMTP URL parsing, the .eml outbox and the per-process transport registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import PermanentError
from conveyor.handlers.email.campaign import child_key
from conveyor.handlers.email.sending import ledger_key
from conveyor.handlers.email.transport import (
    FileTransport,
    SmtpTransport,
    close_transports,
    outbox_path,
    parse_smtp_url,
    transport_for,
)


@pytest.mark.parametrize(
    ("url", "scheme", "port", "user", "password"),
    [
        ("smtp://127.0.0.1", "smtp", 25, None, None),
        ("smtps://mail.example.test", "smtps", 465, None, None),
        ("smtp+starttls://u%40x:p%2Fw@mail.example.test:2525", "smtp+starttls", 2525, "u@x", "p/w"),
    ],
)
def test_smtp_urls(
    url: str, scheme: str, port: int, user: str | None, password: str | None
) -> None:
    config = parse_smtp_url(url)
    assert (config.scheme, config.port, config.username, config.password) == (
        scheme,
        port,
        user,
        password,
    )
    assert config.pool == 1


def test_smtp_url_options() -> None:
    config = parse_smtp_url("smtp://127.0.0.1:2525?timeout=5&pool=3")
    assert (config.timeout, config.pool) == (5.0, 3)


@pytest.mark.parametrize(
    "url", ["http://x", "smtp://", "smtp://h?pool=0", "smtp://h?colour=red", "smtp://h:notaport"]
)
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(PermanentError):
        parse_smtp_url(url)


def test_password_is_not_echoed() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_smtp_url("smtq://user:hunter2@h")
    assert "hunter2" not in str(caught.value)


def test_outbox_paths() -> None:
    assert outbox_path("file://./conveyor-outbox") == Path("conveyor-outbox")
    assert outbox_path("file:///var/spool/mail") == Path("/var/spool/mail")


def test_file_transport_writes_one_file_per_delivery(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "out")
    data = b"Subject: x\r\n\r\nhi\r\n"
    for recipient in ("b@example.test", "B@example.test", "c@example.test"):
        transport.run(lambda session, r=recipient: session.send("a@example.test", r, data, "<1@x>"))
    assert len(list((tmp_path / "out").glob("*.eml"))) == 2  # a repeat overwrites


def test_registry_reuses_one_transport_per_url(tmp_path: Path) -> None:
    try:
        smtp = transport_for("smtp://127.0.0.1:2525")
        assert isinstance(smtp, SmtpTransport)
        assert transport_for("smtp://127.0.0.1:2525") is smtp
        assert isinstance(transport_for(f"file://{tmp_path}"), FileTransport)
    finally:
        close_transports()


def test_keys_stay_within_column_limits() -> None:
    long_campaign = "c" * 200
    long_address = "x" * 64 + "@" + "d" * 250
    assert len(ledger_key(long_campaign, long_address)) <= 500
    assert ledger_key("spring", "ann@example.test") == "email:spring:ann@example.test"
    assert len(child_key(long_campaign, long_address)) <= 255
    assert child_key("spring", "ann@example.test") == "email:spring:ann@example.test"
