"""The email workload's plugin: registers its handlers through the `conveyor_handlers` hook."""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl
from conveyor.handlers.email.campaign import email_campaign
from conveyor.handlers.email.sending import send_email


@hookimpl
def conveyor_handlers() -> list[Any]:
    return [send_email, email_campaign]
