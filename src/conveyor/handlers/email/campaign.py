"""`email_campaign`: one `send_email` per recipient, in one bulk insert, as a batch."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

from conveyor import JobContext, handler
from conveyor.handlers.email.message import parse_address
from conveyor.handlers.email.payloads import EmailCampaign
from conveyor.handlers.email.rendering import templates_for
from conveyor.handlers.email.sending import check_campaign_id

IDEMPOTENCY_KEY_MAX = 255
#: Fields every message of the campaign shares, copied into each `send_email` payload.
SHARED_FIELDS = {
    "template",
    "subject",
    "text",
    "html",
    "sender",
    "reply_to",
    "unsubscribe",
    "on_uncertain",
}


def child_key(campaign_id: str, recipient: str) -> str:
    """The idempotency key of a campaign's message to one recipient."""
    key = f"email:{campaign_id}:{recipient}"
    if len(key) <= IDEMPOTENCY_KEY_MAX:
        return key
    return "email:sha256:" + hashlib.sha256(f"{campaign_id}\0{recipient}".encode()).hexdigest()


@handler(
    "email_campaign",
    payload=EmailCampaign,
    max_attempts=5,
    description="Send one templated email per recipient as a batch of send_email jobs, "
    "throttled to rate_per_second; nobody is emailed twice for one campaign.",
)
def email_campaign(payload: EmailCampaign, ctx: JobContext) -> dict[str, Any]:
    """Fan a campaign out into one `send_email` job per distinct recipient.

    The jobs are written in one transaction as a batch. Each carries an idempotency key per
    (campaign, recipient), so running the campaign again (a redelivery, or the same
    `campaign_id` submitted twice) creates no second job for anyone, and each send is in the
    effects ledger under the same pair. With `rate_per_second`, job i runs at start + i/rate,
    which paces the campaign across every worker without any coordination between them.
    """
    settings = ctx.app.settings
    campaign_id = check_campaign_id(payload.campaign_id)
    # What would fail every message fails the campaign before it fans out.
    templates_for(settings.templates_dir).load(
        payload.template, {"subject": payload.subject, "text": payload.text, "html": payload.html}
    )
    parse_address(payload.sender or settings.mail_from, "from")
    if payload.reply_to:
        parse_address(payload.reply_to, "reply_to")

    distinct: dict[str, Any] = {}
    for recipient in payload.recipients:
        distinct.setdefault(recipient.email.strip().lower(), recipient)
    shared = payload.model_dump(
        mode="json", by_alias=True, include=SHARED_FIELDS, exclude_none=True
    )
    start = time.time()
    jobs = []
    for index, (key, recipient) in enumerate(distinct.items()):
        address = recipient.email.strip()
        job: dict[str, Any] = {
            "type": "send_email",
            "payload": {
                **shared,
                "to": address,
                "campaign_id": campaign_id,
                "context": {**payload.context, "email": address, **recipient.context},
            },
            "idempotency_key": child_key(campaign_id, key),
            "queue": ctx.queue,
        }
        if payload.rate_per_second and index:
            job["run_at"] = start + index / payload.rate_per_second
        jobs.append(job)
    created = ctx.submit_many(
        jobs,
        batch_kind="email_campaign",
        batch_meta={
            "campaign_id": campaign_id,
            "campaign_job": ctx.job_id,
            "rate_per_second": payload.rate_per_second,
        },
    )
    # A repeat finds the jobs of the first run: report the batch most of them belong to.
    batch_id = Counter(job.batch_id for job in created).most_common(1)[0][0]
    ctx.progress(len(created), len(created))
    return {"batch_id": batch_id, "recipients": len(created), "campaign_id": campaign_id}
