"""Addresses, headers and MIME structure of built messages."""

from __future__ import annotations

from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default

import pytest

from conveyor import PermanentError
from conveyor.handlers.email.message import (
    build_message,
    check_unsubscribe,
    html_to_text,
    parse_address,
)
from conveyor.handlers.email.rendering import Rendered


@pytest.mark.parametrize(
    ("value", "addr_spec", "display"),
    [
        ("ann@example.test", "ann@example.test", ""),
        ("  Ann Lee <Ann@EXAMPLE.test> ", "Ann@example.test", "Ann Lee"),
        ('"Lee, Ann" <ann@example.test>', "ann@example.test", "Lee, Ann"),
        ("root@localhost", "root@localhost", ""),
        ("a.b+tag@sub.example.test", "a.b+tag@sub.example.test", ""),
        ("x@bücher.test", "x@xn--bcher-kva.test", ""),
    ],
)
def test_valid_addresses(value: str, addr_spec: str, display: str) -> None:
    address = parse_address(value, "to")
    assert address.addr_spec == addr_spec
    assert address.display_name == display


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "@example.test",
        "ann@",
        "a b@example.test",
        "a..b@example.test",
        "ann@exa mple.test",
        "ann@-bad.test",
        "ann@example.test\r\nBcc: victim@example.test",
        "ann@example.test\n",
        "Ann\r\n <ann@example.test>",
        "ann\x00@example.test",
        "é@example.test",
        "x" * 65 + "@example.test",
        "Evil <a@example.test>, <b@example.test>",
    ],
)
def test_invalid_addresses_are_permanent(value: str) -> None:
    with pytest.raises(PermanentError):
        parse_address(value, "to")


def parse(data: bytes) -> EmailMessage:
    # Every line ends in CRLF, and no line is longer than SMTP allows.
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = message_from_bytes(data, policy=default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects and all(not part.defects for part in msg.walk())
    return msg


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def address(value: str) -> Address:
    return parse_address(value, "to")


def test_multipart_alternative_with_headers() -> None:
    data = build_message(
        sender=address("Shop <shop@example.test>"),
        to=[address("ann@example.test")],
        rendered=Rendered("Grüße", "plain body", "<p>html body</p>"),
        message_id="<1@example.test>",
        reply_to=address("help@example.test"),
        unsubscribe="https://example.test/u?c=1&e=ann",
        headers={"X-Conveyor-Campaign": "spring"},
    )
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert body(msg, "plain") == "plain body\n"
    assert body(msg, "html") == "<p>html body</p>\n"
    assert msg["Subject"] == "Grüße"
    assert msg["From"] == "Shop <shop@example.test>"
    assert msg["Reply-To"] == "help@example.test"
    assert msg["Message-ID"] == "<1@example.test>"
    assert msg["List-Unsubscribe"] == "<https://example.test/u?c=1&e=ann>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["X-Conveyor-Campaign"] == "spring"
    assert msg["Date"].datetime is not None
    assert b"\r\nSubject: =?utf-8?" in data


def test_text_only_message_is_single_part() -> None:
    msg = parse(
        build_message(
            sender=address("a@example.test"),
            to=[address("b@example.test")],
            rendered=Rendered("s", "body\n.leading dot\n", None),
            message_id="<2@example.test>",
        )
    )
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "body\n.leading dot\n"
    assert "List-Unsubscribe" not in msg


def test_international_text_long_lines_and_many_recipients() -> None:
    long_line = "word " * 400
    recipients = [address(f"Person Number {i} <person{i}@example.test>") for i in range(12)]
    subject = "Ünïcödé " * 30
    msg = parse(
        build_message(
            sender=address('"Müller, Jürgen" <j@example.test>'),
            to=[*recipients, address('"Lee, Ann" <ann@example.test>')],
            rendered=Rendered(subject.strip(), f"Grüße\n{long_line}\n", f"<p>{long_line}</p>"),
            message_id="<3@example.test>",
        )
    )
    assert msg["Subject"] == subject.strip()
    assert msg["From"].addresses[0].display_name == "Müller, Jürgen"
    assert [a.addr_spec for a in msg["To"].addresses][-1] == "ann@example.test"
    assert len(msg["To"].addresses) == 13
    assert body(msg, "plain") == f"Grüße\n{long_line}\n"
    assert body(msg, "html") == f"<p>{long_line}</p>\n"


def test_a_long_ascii_subject_is_folded_not_cut() -> None:
    subject = " ".join(f"word{i}" for i in range(60))
    msg = parse(
        build_message(
            sender=address("a@example.test"),
            to=[address("b@example.test")],
            rendered=Rendered(subject, "x", None),
            message_id="<4@example.test>",
        )
    )
    assert msg["Subject"] == subject


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(PermanentError, match="line break"):
        build_message(
            sender=address("a@example.test"),
            to=[address("b@example.test")],
            rendered=Rendered("s", "x", None),
            message_id="<5@example.test>",
            headers={"X-Conveyor-Campaign": "a\r\nBcc: v@example.test"},
        )


def test_html_to_text_keeps_links_and_drops_scripts() -> None:
    text = html_to_text(
        "<html><head><title>t</title><style>p{}</style></head><body><h1>Hi</h1>"
        '<p>Read <a href="https://example.test/x">this</a>.</p><ul><li>one</li><li>two</li></ul>'
        "<script>alert(1)</script></body></html>"
    )
    assert text == "Hi\n\nRead this (https://example.test/x).\n\n* one\n* two\n"


@pytest.mark.parametrize(
    "target",
    ["javascript:alert(1)", "https://x.test/a b", "https://x.test/>\r\nBcc: v@x.test", "ftp://x"],
)
def test_bad_unsubscribe_targets(target: str) -> None:
    with pytest.raises(PermanentError):
        check_unsubscribe(target)
