"""`send_email`: render, build and deliver one message, each recipient at most once."""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from functools import partial
from typing import Any
from urllib.parse import quote

from conveyor import JobCancelled, JobContext, PermanentError, handler
from conveyor.handlers.email.message import (
    build_message,
    check_unsubscribe,
    parse_address,
    recipient_key,
)
from conveyor.handlers.email.payloads import SendEmail
from conveyor.handlers.email.rendering import templates_for
from conveyor.handlers.email.transport import RecipientRefused, Session, transport_for

#: The effects table keys are at most this long.
LEDGER_KEY_MAX = 500


def ledger_key(scope: str, recipient: str) -> str:
    """The ledger key of one delivery: per campaign (or job) and recipient."""
    key = f"email:{scope}:{recipient}"
    if len(key) <= LEDGER_KEY_MAX:
        return key
    return f"email:{scope}:sha256:{hashlib.sha256(recipient.encode()).hexdigest()}"


def check_campaign_id(campaign_id: str) -> str:
    if any(c in campaign_id for c in "\r\n\0"):
        raise PermanentError(f"campaign_id contains a line break or NUL: {campaign_id!r}")
    return campaign_id


def default_unsubscribe(sender: str, campaign_id: str) -> str:
    return f"mailto:{sender}?subject={quote('unsubscribe ' + campaign_id)}"


@handler(
    "send_email",
    payload=SendEmail,
    max_attempts=5,
    description="Render a Jinja2 email (named template or inline parts) and send it; "
    "each recipient gets it at most once.",
)
def send_email(payload: SendEmail, ctx: JobContext) -> dict[str, Any]:
    """Render a templated email and deliver it to each recipient at most once.

    A job redelivered after a crash skips the recipients the ledger already holds; a delivery
    that was in flight when a worker died is reported in `uncertain_effects`.
    """
    settings = ctx.app.settings
    recipients = list(
        {recipient_key(a): a for a in (parse_address(t, "to") for t in payload.recipients)}.values()
    )
    sender = parse_address(payload.sender or settings.mail_from, "from")
    reply_to = parse_address(payload.reply_to, "reply_to") if payload.reply_to else None
    campaign_id = check_campaign_id(payload.campaign_id) if payload.campaign_id else None
    templates = templates_for(settings.templates_dir)

    context = dict(payload.context)
    unsubscribe = None
    if campaign_id is not None:
        context.setdefault("campaign_id", campaign_id)
    if campaign_id is not None or payload.unsubscribe:
        source = payload.unsubscribe or default_unsubscribe(sender.addr_spec, campaign_id or "")
        unsubscribe = check_unsubscribe(templates.render_string(source, context, "unsubscribe"))
        context.setdefault("unsubscribe_url", unsubscribe)
    inline = {"subject": payload.subject, "text": payload.text, "html": payload.html}
    rendered = templates.render(payload.template, inline, context)

    message_id = f"<{ctx.job_id}@{sender.domain}>"
    data = build_message(
        sender=sender,
        to=recipients,
        rendered=rendered,
        message_id=message_id,
        reply_to=reply_to,
        unsubscribe=unsubscribe,
        headers={"X-Conveyor-Campaign": campaign_id} if campaign_id else None,
    )

    transport = transport_for(settings.smtp_url)
    scope = campaign_id or ctx.job_id
    skipped: list[str] = []
    refused: dict[str, str] = {}

    def deliver(session: Session, recipient: Address) -> None:
        # Runs on the connection's own thread: the key is only ever started while its send
        # proceeds, so a dead worker leaves at most one uncertain key per connection.
        if ctx.cancelled:  # while this delivery waited for the connection
            raise JobCancelled(f"cancelled before sending to {recipient.addr_spec}")
        key = ledger_key(scope, recipient_key(recipient))
        with ctx.once(key, on_uncertain=payload.on_uncertain) as first:
            if first:
                session.send(sender.addr_spec, recipient.addr_spec, data, message_id)
            else:
                skipped.append(recipient.addr_spec)

    for recipient in recipients:
        try:
            transport.run(partial(deliver, recipient=recipient))
        except RecipientRefused as exc:
            refused[recipient.addr_spec] = str(exc)
    if refused:
        raise PermanentError("; ".join(refused.values()))
    return {
        "message_id": message_id,
        "recipients": [r.addr_spec for r in recipients],
        "skipped": skipped,
    }
