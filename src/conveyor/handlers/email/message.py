"""Building messages: strict address parsing and RFC 5322 messages with text and HTML parts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime
from html.parser import HTMLParser

from conveyor import PermanentError
from conveyor.handlers.email.rendering import Rendered

#: CRLF line endings and RFC-compliant folding, as SMTP wants them.
SMTP_POLICY = policy.SMTP

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(\.{_ATEXT})*")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_BAD_URL_CHARS = re.compile(r"[\s<>\"\\,]")


def parse_address(value: object, field: str) -> Address:
    """`user@example.com` or `Name <user@example.com>`; anything else is a PermanentError.

    Only ASCII local parts are accepted (no SMTPUTF8); international domains are converted to
    their IDNA form so envelope and headers stay ASCII.
    """
    if not isinstance(value, str):
        raise PermanentError(f"{field}: an address must be text, not {type(value).__name__}")
    if any(c in value for c in "\r\n\0"):
        raise PermanentError(f"{field}: line break or NUL in address {value!r}")
    text = value.strip()
    display = ""
    if text.endswith(">") and "<" in text:
        cut = text.rindex("<")
        display, text = text[:cut].strip(), text[cut + 1 : -1].strip()
        if len(display) >= 2 and display[0] == display[-1] == '"':
            display = display[1:-1]
        if any(c in display for c in '<>"'):
            raise PermanentError(f"{field}: invalid display name in {value!r}")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise PermanentError(f"{field}: invalid email address {value!r}")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise PermanentError(f"{field}: invalid local part in email address {value!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise PermanentError(f"{field}: invalid domain in email address {value!r}") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise PermanentError(f"{field}: invalid domain in email address {value!r}")
    try:
        return Address(display_name=display, username=local, domain=ascii_domain.lower())
    except (ValueError, IndexError) as exc:
        raise PermanentError(f"{field}: invalid email address {value!r}: {exc}") from None


def recipient_key(address: Address) -> str:
    """The address as the ledger and idempotency keys know it (case-insensitive)."""
    return address.addr_spec.lower()


def check_unsubscribe(target: str) -> str:
    """A List-Unsubscribe target: a mailto: or http(s): URL without header-breaking text."""
    target = target.strip()
    scheme = target.split(":", 1)[0].lower()
    if scheme not in ("mailto", "https", "http") or _BAD_URL_CHARS.search(target):
        raise PermanentError(f"unsubscribe must be a mailto: or https: URL, got {target!r}")
    return target


def build_message(
    *,
    sender: Address,
    to: Sequence[Address],
    rendered: Rendered,
    message_id: str,
    reply_to: Address | None = None,
    unsubscribe: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A message with a plain-text part and, given HTML, a multipart/alternative HTML part."""
    msg = EmailMessage(policy=SMTP_POLICY)
    try:
        msg["From"] = sender
        msg["To"] = tuple(to)
        if reply_to is not None:
            msg["Reply-To"] = reply_to
        msg["Subject"] = rendered.subject
        msg["Date"] = format_datetime(localtime())
        msg["Message-ID"] = message_id
        if unsubscribe:
            msg["List-Unsubscribe"] = f"<{unsubscribe}>"
            if unsubscribe.lower().startswith("https:"):
                msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        for name, value in (headers or {}).items():
            msg[name] = value
    except ValueError as exc:
        # The email package refuses CR/LF in header values: header injection.
        raise PermanentError(f"refused header value: {exc}") from None
    text = rendered.text if rendered.text is not None else html_to_text(rendered.html or "")
    msg.set_content(text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


def html_to_text(html: str) -> str:
    """A plain-text fallback for HTML-only messages: the visible text, links kept."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._hidden = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.out.append("\n")
        if tag == "li":
            self.out.append("* ")
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.out.append("\n")
        if tag == "a" and self._href:
            self.out.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.out.append(data)
