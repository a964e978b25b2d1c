"""email_campaign: one send_email per recipient as a batch; nobody emailed twice."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("smtp_server")


def campaign(campaign_id: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "template": "newsletter",
        "context": {"title": "News for {{ name }}", "intro": "Hello"},
        "recipients": [{"email": e, "context": {"name": e.split("@")[0]}} for e in emails],
        **extra,
    }


def batch_jobs(app, batch_id: str) -> list:
    items, _ = app.list_jobs(type_="send_email", limit=1000)
    return [job for job in items if job.batch_id == batch_id]


def test_every_recipient_gets_exactly_one_message(email_app, smtp_server, drain) -> None:
    emails = [f"user{i}@example.test" for i in range(40)]
    # The same person twice (differently cased) is one recipient.
    job = email_app.submit("email_campaign", campaign("spring", [*emails, "USER3@example.test"]))
    (done,) = drain(email_app, job.id)
    assert done.status == "succeeded", done.error
    batch_id = done.result["batch_id"]
    assert done.result["recipients"] == 40

    children = batch_jobs(email_app, batch_id)
    drain(email_app, *(c.id for c in children))
    assert smtp_server.sink.per_recipient() == dict.fromkeys(emails, 1)
    progress = email_app.batch_progress(batch_id)
    assert progress["kind"] == "email_campaign"
    assert progress["total"] == 40
    assert progress["done"] is True
    assert progress["counts"] == {"succeeded": 40}
    assert progress["uncertain_effects"] == []
    assert progress["meta"]["campaign_id"] == "spring"

    msg = smtp_server.sink.to("user7@example.test")[0].message
    assert msg["List-Unsubscribe"] == "<mailto:conveyor@localhost?subject=unsubscribe%20spring>"
    assert msg["X-Conveyor-Campaign"] == "spring"
    # The shared context is rendered too, and per-recipient variables reach the template.
    assert msg["Subject"] == "News for {{ name }}"
    assert "Hi user7," in msg.get_body(("plain",)).get_content()


def test_resubmitting_a_campaign_emails_nobody_twice(email_app, smtp_server, drain) -> None:
    emails = [f"user{i}@example.test" for i in range(15)]
    first = email_app.submit("email_campaign", campaign("autumn", emails))
    (first,) = drain(email_app, first.id)
    drain(email_app, *(c.id for c in batch_jobs(email_app, first.result["batch_id"])))
    assert smtp_server.sink.per_recipient() == dict.fromkeys(emails, 1)

    again = email_app.submit("email_campaign", campaign("autumn", emails))
    (again,) = drain(email_app, again.id)
    assert again.status == "succeeded", again.error
    assert again.result["batch_id"] == first.result["batch_id"]
    email_app.run_burst()
    assert smtp_server.sink.per_recipient() == dict.fromkeys(emails, 1)

    # A late addition to the list: only the newcomer is emailed.
    grown = email_app.submit("email_campaign", campaign("autumn", [*emails, "late@example.test"]))
    (grown,) = drain(email_app, grown.id)
    email_app.run_burst()
    assert smtp_server.sink.per_recipient() == {**dict.fromkeys(emails, 1), "late@example.test": 1}


def test_rate_per_second_staggers_the_sends(email_app, smtp_server, drain) -> None:
    emails = [f"user{i}@example.test" for i in range(6)]
    job = email_app.submit("email_campaign", campaign("paced", emails, rate_per_second=10))
    (done,) = drain(email_app, job.id)
    children = sorted(batch_jobs(email_app, done.result["batch_id"]), key=lambda j: j.run_at)
    starts = [child.run_at.timestamp() for child in children]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap == pytest.approx(0.1, abs=0.01) for gap in gaps)
    finished = drain(email_app, *(c.id for c in children))
    assert len(smtp_server.sink.deliveries) == 6
    # No message goes out before its turn.
    for child in finished:
        started = child.executions[0].started_at.timestamp()
        assert started >= child.run_at.timestamp() - 0.01


def test_a_broken_template_fails_the_campaign_before_fanning_out(
    email_app, smtp_server, drain
) -> None:
    payload = campaign("broken", ["a@example.test"], template=None, subject="{% if %}", text="x")
    job = email_app.submit("email_campaign", payload)
    (done,) = drain(email_app, job.id)
    assert done.status == "dead"
    assert "template syntax error in inline subject" in done.error
    items, _ = email_app.list_jobs(type_="send_email")
    assert items == []


def test_one_bad_address_fails_only_its_own_message(email_app, smtp_server, drain) -> None:
    job = email_app.submit(
        "email_campaign", campaign("mixed", ["good@example.test", "bad address@example.test"])
    )
    (done,) = drain(email_app, job.id)
    children = batch_jobs(email_app, done.result["batch_id"])
    drain(email_app, *(c.id for c in children))
    progress = email_app.batch_progress(done.result["batch_id"])
    assert progress["counts"] == {"succeeded": 1, "dead": 1}
    assert smtp_server.sink.per_recipient() == {"good@example.test": 1}
