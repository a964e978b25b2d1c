"""send_email against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import conveyor

pytestmark = pytest.mark.usefixtures("smtp_server")


def welcome(to: str | list[str] = "ann@example.test", **extra: Any) -> dict[str, Any]:
    return {"to": to, "template": "welcome", "context": {"name": "Ann"}, **extra}


def test_named_template_renders_both_parts(email_app, smtp_server, drain) -> None:
    job = email_app.submit("send_email", welcome(context={"name": "<Ann & co>"}))
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    (delivery,) = smtp_server.sink.deliveries
    msg = delivery.message
    assert delivery.rcpt_tos == ["ann@example.test"]
    assert delivery.mail_from == "conveyor@localhost"
    assert msg["Subject"] == "Welcome to Conveyor, <Ann & co>!"
    assert msg["Message-ID"] == done.result["message_id"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hello <Ann & co>," in text
    assert "Hello &lt;Ann &amp; co&gt;," in html  # autoescaped in HTML only
    assert "List-Unsubscribe" not in msg
    assert done.result["recipients"] == ["ann@example.test"]


def test_inline_parts_from_and_reply_to(email_app, smtp_server, drain) -> None:
    job = email_app.submit(
        "send_email",
        {
            "to": ["Ann <ann@example.test>", "bob@example.test"],
            "subject": "Order {{ order }} shipped",
            "text": "Your order {{ order }} is on its way.",
            "context": {"order": 42},
            "from": "Shop <shop@example.test>",
            "reply_to": "help@example.test",
        },
    )
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    assert smtp_server.sink.per_recipient() == {"ann@example.test": 1, "bob@example.test": 1}
    msg = smtp_server.sink.deliveries[0].message
    assert msg["Subject"] == "Order 42 shipped"
    assert msg["From"] == "Shop <shop@example.test>"
    assert msg["Reply-To"] == "help@example.test"
    assert msg["To"] == "Ann <ann@example.test>, bob@example.test"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Your order 42 is on its way."


def test_templates_dir_and_html_only(
    make_app, fast_settings, smtp_server, tmp_path: Path, drain
) -> None:
    folder = tmp_path / "templates" / "receipt"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Receipt {{ number }}\n")
    (folder / "body.html").write_text(
        '<p>Paid <b>{{ amount }}</b>. <a href="{{ link }}">See</a></p>'
    )
    app = make_app(
        smtp_url=smtp_server.url, templates_dir=str(tmp_path / "templates"), **fast_settings
    )
    ctx = {"number": 7, "amount": "9 EUR", "link": "https://shop.example.test/r/7"}
    first = app.submit(
        "send_email", {"to": "a@example.test", "template": "receipt", "context": ctx}
    )
    # A built-in sample is still found, and an inline part overrides the template's.
    second = app.submit("send_email", welcome("b@example.test", subject="Hi {{ name }}"))
    drain(app, first.id, second.id)
    receipt = smtp_server.sink.to("a@example.test")[0].message
    assert receipt["Subject"] == "Receipt 7"
    assert receipt.get_content_type() == "multipart/alternative"
    fallback = receipt.get_body(("plain",)).get_content()
    assert "Paid 9 EUR. See (https://shop.example.test/r/7)" in fallback
    assert smtp_server.sink.to("b@example.test")[0].message["Subject"] == "Hi Ann"


def test_missing_variable_is_permanent_and_named(email_app, smtp_server, drain) -> None:
    job = email_app.submit("send_email", {"to": "a@example.test", "template": "welcome"})
    (done,) = drain(email_app, job.id)
    assert done.status == "dead"
    assert done.attempts == 1
    assert "'name' is undefined" in done.error
    assert done.executions[0].outcome == "permanent_error"
    assert smtp_server.sink.deliveries == []


@pytest.mark.parametrize(
    "part",
    [
        {"subject": "{{ ''.__class__.__mro__ }}", "text": "x"},
        {"subject": "hi", "text": "{{ cycler.__init__.__globals__.os }}"},
        {"subject": "hi", "html": "{{ self._TemplateReference__context }}"},
        {"subject": "hi", "text": "{{ '{0.__class__}'.format(1) }}"},
        {"subject": "hi", "text": "{{ 'x' * 100000000 }}"},
        {"subject": "hi", "text": "{% for i in range(10**9) %}{% endfor %}"},
    ],
)
def test_template_attacks_end_dead_and_send_nothing(
    email_app, smtp_server, drain, part: dict[str, str]
) -> None:
    job = email_app.submit("send_email", {"to": "a@example.test", **part})
    (done,) = drain(email_app, job.id)
    assert done.status == "dead"
    assert done.attempts == 1
    assert done.error.startswith("PermanentError")
    assert smtp_server.sink.deliveries == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            {
                "to": "a@example.test",
                "subject": "Hi {{ name }}",
                "text": "x",
                "context": {"name": "Ann\r\nBcc: victim@example.test"},
            },
            "line break",
        ),
        (
            {"to": "a@example.test\r\nBcc: victim@example.test", "subject": "s", "text": "x"},
            "line break",
        ),
        (
            {
                "to": "a@example.test",
                "from": "me@example.test\nBcc: v@example.test",
                "subject": "s",
                "text": "x",
            },
            "line break",
        ),
        (
            {"to": "a@example.test", "reply_to": "x@example.test\r\n", "subject": "s", "text": "x"},
            "line break",
        ),
        ({"to": "not-an-address", "subject": "s", "text": "x"}, "invalid email address"),
        ({"to": ["a@example.test", "b@@example.test"], "subject": "s", "text": "x"}, "invalid"),
    ],
)
def test_header_injection_and_bad_addresses_are_refused(
    email_app, smtp_server, drain, payload: dict[str, Any], reason: str
) -> None:
    job = email_app.submit("send_email", payload)
    (done,) = drain(email_app, job.id)
    assert done.status == "dead"
    assert done.attempts == 1
    assert reason in done.error
    assert smtp_server.sink.deliveries == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_4xx_is_retried_then_delivered(email_app, smtp_server, drain, stage: str) -> None:
    replies = smtp_server.sink.rcpt_replies if stage == "rcpt" else smtp_server.sink.data_replies
    replies["busy@example.test"] = ["451 4.3.0 Try again later"]
    job = email_app.submit("send_email", welcome("busy@example.test"))
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    assert done.executions[0].outcome == "retryable_error"
    assert "451" in done.executions[0].error
    assert smtp_server.sink.per_recipient() == {"busy@example.test": 1}


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_5xx_is_dead_at_once(email_app, smtp_server, drain, stage: str) -> None:
    replies = smtp_server.sink.rcpt_replies if stage == "rcpt" else smtp_server.sink.data_replies
    replies["gone@example.test"] = ["550 5.1.1 No such user"] * 5
    job = email_app.submit("send_email", welcome("gone@example.test"))
    (done,) = drain(email_app, job.id)
    assert done.status == "dead"
    assert done.attempts == 1
    assert done.executions[0].outcome == "permanent_error"
    assert "550 5.1.1 No such user" in done.error
    assert smtp_server.sink.deliveries == []


def test_connection_refused_is_retryable(make_app, fast_settings, unused_port, drain) -> None:
    app = make_app(smtp_url=f"smtp://127.0.0.1:{unused_port}?timeout=2", **fast_settings)
    job = app.submit("send_email", welcome(), max_attempts=2)
    (done,) = drain(app, job.id)
    assert done.status == "dead"
    assert [e.outcome for e in done.executions] == ["retryable_error", "retryable_error"]
    assert "cannot connect to SMTP server" in done.error


def test_a_retry_never_emails_a_recipient_twice(email_app, smtp_server, drain) -> None:
    smtp_server.sink.rcpt_replies["b@example.test"] = ["452 4.2.2 Mailbox full"]
    to = ["a@example.test", "b@example.test", "c@example.test"]
    job = email_app.submit("send_email", welcome(to))
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    assert done.result["skipped"] == ["a@example.test"]
    assert smtp_server.sink.per_recipient() == dict.fromkeys(to, 1)


def test_one_connection_is_reused_across_jobs(email_app, smtp_server, drain) -> None:
    jobs = [email_app.submit("send_email", welcome(f"u{i}@example.test")) for i in range(20)]
    done = drain(email_app, *(j.id for j in jobs))
    assert {j.status for j in done} == {"succeeded"}
    assert len(smtp_server.sink.deliveries) == 20
    assert smtp_server.sink.connections == 1


def test_reconnects_when_the_server_went_away(email_app, smtp_server, drain) -> None:
    first = email_app.submit("send_email", welcome("a@example.test"))
    drain(email_app, first.id)
    smtp_server.stop()  # the pooled connection is now dead
    smtp_server.start(port=smtp_server.port)
    second = email_app.submit("send_email", welcome("b@example.test"))
    (done,) = drain(email_app, second.id)
    assert done.status == "succeeded", done.error
    assert done.attempts == 1
    assert smtp_server.sink.connections == 2


def test_smtp_auth(make_app, fast_settings, auth_smtp_server, drain) -> None:
    app = make_app(smtp_url=auth_smtp_server.url, **fast_settings)
    job = app.submit("send_email", welcome())
    (done,) = drain(app, job.id)
    assert done.status == "succeeded", done.error
    assert len(auth_smtp_server.sink.deliveries) == 1

    wrong = auth_smtp_server.url.replace(":s3cret@", ":wrong@")
    app = make_app(smtp_url=wrong, **fast_settings)
    job = app.submit("send_email", welcome("b@example.test"))
    (done,) = drain(app, job.id)
    assert done.status == "dead"
    assert "535" in done.error
    assert len(auth_smtp_server.sink.deliveries) == 1


@pytest.mark.parametrize(("on_uncertain", "received"), [("skip", 1), ("repeat", 2)])
def test_lost_answer_is_an_uncertain_effect(
    email_app, smtp_server, drain, on_uncertain: str, received: int
) -> None:
    smtp_server.sink.drop_after_data["a@example.test"] = 1
    job = email_app.submit("send_email", welcome("a@example.test", on_uncertain=on_uncertain))
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    assert done.executions[0].outcome == "retryable_error"
    assert done.result["uncertain_effects"] == [f"email:{job.id}:a@example.test"]
    assert smtp_server.sink.per_recipient() == {"a@example.test": received}


def test_file_outbox(make_app, fast_settings, tmp_path: Path, drain) -> None:
    from email import message_from_bytes
    from email.policy import default

    outbox = tmp_path / "outbox"
    app = make_app(smtp_url=f"file://{outbox}", **fast_settings)
    job = app.submit("send_email", welcome(["a@example.test", "b@example.test"]))
    (done,) = drain(app, job.id)
    assert done.status == "succeeded", done.error
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 2
    msg = message_from_bytes(files[0].read_bytes(), policy=default)
    assert msg["Message-ID"] == done.result["message_id"]
    assert msg["Subject"] == "Welcome to Conveyor, Ann!"
    assert not list(outbox.glob("*.tmp"))


def test_payload_validation_at_submit(email_app) -> None:
    with pytest.raises(conveyor.InvalidPayload, match="template name, or an inline subject"):
        email_app.submit("send_email", {"to": "a@example.test"})
    with pytest.raises(conveyor.InvalidPayload, match="on_uncertain"):
        email_app.submit("send_email", welcome(on_uncertain="twice"))
