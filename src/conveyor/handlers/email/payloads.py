"""Payload models of `send_email` and `email_campaign` (pinned in CONTRACT.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OnUncertain = Literal["skip", "repeat"]

#: Campaign ids end up in ledger keys (500 characters at most, with an address of up to 254).
CAMPAIGN_ID_MAX = 200
RECIPIENTS_MAX = 100_000


class _Parts(BaseModel):
    """A named template, inline Jinja2 parts, or both (inline parts override the template's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    template: str | None = Field(default=None, max_length=200)
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = Field(default=None, alias="from")
    reply_to: str | None = None
    #: List-Unsubscribe target (mailto: or https:, a Jinja2 template); campaigns get a mailto
    #: to the sender by default.
    unsubscribe: str | None = None
    on_uncertain: OnUncertain = "skip"

    @model_validator(mode="after")
    def _has_content(self) -> _Parts:
        if self.template is None:
            if self.subject is None:
                raise ValueError("give a template name, or an inline subject with text or html")
            if self.text is None and self.html is None:
                raise ValueError("an inline email needs text, html or both")
        return self


class SendEmail(_Parts):
    """One message to one or more recipients."""

    to: str | list[str] = Field(min_length=1)
    campaign_id: str | None = Field(default=None, min_length=1, max_length=CAMPAIGN_ID_MAX)

    @property
    def recipients(self) -> list[str]:
        return [self.to] if isinstance(self.to, str) else list(self.to)


class Recipient(BaseModel):
    """One campaign recipient and the variables only their message sees."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    context: dict[str, Any] = Field(default_factory=dict)


class EmailCampaign(_Parts):
    """The same templated message to many recipients, one `send_email` job each."""

    campaign_id: str = Field(min_length=1, max_length=CAMPAIGN_ID_MAX)
    recipients: list[Recipient] = Field(min_length=1, max_length=RECIPIENTS_MAX)
    rate_per_second: float | None = Field(default=None, gt=0)
