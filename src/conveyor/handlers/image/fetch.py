"""Reading a source image: from blob storage, or over HTTPS with server-side request forgery
guarded against.

An HTTPS fetch resolves the host once, refuses the whole name if any of its addresses is not
public, and then connects to the very address it checked (the URL's name still goes in the
Host header and in TLS, so certificates are verified against it). Redirects are followed by
hand, each hop checked the same way. Size and total time are capped.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor.core.errors import PermanentError, RetryableError
from conveyor.handlers.image import addresses
from conveyor.handlers.image.addresses import IPAddress, Resolver

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "conveyor-resize-image/1"


class ForbiddenUrl(PermanentError):
    """The URL leads somewhere a payload must not reach (private address, bad scheme)."""


class SourceTooLarge(PermanentError):
    """The source is larger than the size cap."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What a fetch may do. `allow` decides per resolved address (None means: allowed)."""

    allow_private: bool = False
    max_bytes: int = 64 * 1024 * 1024
    timeout: float = 30.0
    connect_timeout: float = 5.0
    resolver: Resolver = addresses.resolve
    #: TLS verification: True (system CAs), or an ssl.SSLContext (private CAs, tests).
    verify: Any = True
    #: Addresses let through on top of the public ones (an intranet image host, say).
    allow: Callable[[IPAddress], bool] | None = None

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be reached under this policy, or None."""
        if self.allow_private or (self.allow is not None and self.allow(ip)):
            return None
        return addresses.forbidden_reason(ip)


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """GET `url` and return its body; classified errors for everything that can go wrong."""
    deadline = time.monotonic() + policy.timeout
    timeout = httpx.Timeout(policy.timeout, connect=policy.connect_timeout)
    # trust_env=False: a proxy from the environment would resolve names itself, undoing the check.
    with httpx.Client(
        timeout=timeout,
        verify=policy.verify,
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            request, shown = _pinned_request(client, url, policy)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise RetryableError(f"fetching {shown} timed out: {exc}") from None
            except httpx.TransportError as exc:
                raise RetryableError(f"cannot fetch {shown}: {exc}") from None
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = str(httpx.URL(url).join(response.headers["location"]))
                    continue
                _check_status(response, shown)
                return _read_body(response, shown, policy.max_bytes, deadline)
            finally:
                response.close()
    raise PermanentError(f"fetching {url} took more than {MAX_REDIRECTS} redirects")


def _pinned_request(
    client: httpx.Client, url: str, policy: FetchPolicy
) -> tuple[httpx.Request, str]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ForbiddenUrl(f"{url!r} is not a valid URL: {exc}") from None
    shown = _redacted(parsed)
    scheme = parsed.scheme
    if scheme != "https" and not (scheme == "http" and policy.allow_private):
        raise ForbiddenUrl(
            f"{shown}: only https:// sources may be fetched"
            + (" (http:// only with CONVEYOR_ALLOW_PRIVATE_URLS=1)" if scheme == "http" else "")
        )
    host = parsed.host
    if not host:
        raise ForbiddenUrl(f"{shown} names no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    try:
        found = policy.resolver(host, port)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise PermanentError(f"{shown}: host {host!r} does not exist") from None
        raise RetryableError(f"{shown}: cannot resolve {host!r}: {exc}") from None
    except (UnicodeError, ValueError) as exc:
        raise ForbiddenUrl(f"{shown}: invalid host {host!r}: {exc}") from None
    if not found:
        raise PermanentError(f"{shown}: host {host!r} has no address")
    for ip in found:
        reason = policy.refusal(ip)
        if reason:
            raise ForbiddenUrl(
                f"{shown}: {host!r} resolves to {ip}, {reason}; non-public addresses are refused "
                "(set CONVEYOR_ALLOW_PRIVATE_URLS=1 to allow them)"
            )
    ip = found[0]
    headers = {"Host": parsed.netloc.decode("ascii").rpartition("@")[2]}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    pinned = parsed.copy_with(host=str(ip))
    return client.build_request("GET", pinned, headers=headers, extensions=extensions), shown


def _check_status(response: httpx.Response, shown: str) -> None:
    status = response.status_code
    if status < 300:
        return
    if status >= 500 or status in (408, 425, 429):
        raise RetryableError(
            f"{shown} answered {status}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    raise PermanentError(f"{shown} answered {status}")


def _read_body(response: httpx.Response, shown: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise SourceTooLarge(f"{shown} is {int(declared):,} bytes; the limit is {max_bytes:,}")
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise SourceTooLarge(f"{shown} is larger than the {max_bytes:,}-byte limit")
            if time.monotonic() > deadline:
                raise RetryableError(f"fetching {shown} took longer than the time limit")
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"fetching {shown} timed out: {exc}") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"fetching {shown} broke off: {exc}") from None
    return b"".join(chunks)


def _redacted(url: httpx.URL) -> str:
    """The URL for messages: no credentials, no query string (often a signature)."""
    safe = url.copy_with(username=None, password=None, query=None, fragment=None)
    return str(safe)


def _retry_after(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None
