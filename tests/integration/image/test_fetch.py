"""HTTPS sources against real loopback servers: pinning to the checked address, TLS verified
against the URL's name, every redirect hop checked, size and time capped, statuses classified.

The servers are on loopback, which the default policy refuses; these tests let exactly
127.0.0.1 through (`FetchPolicy.allow`) and keep every other check as in production."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any

import pytest
from image_samples import WebServer

from conveyor import PermanentError, RetryableError
from conveyor.handlers.image.fetch import FetchPolicy, ForbiddenUrl, SourceTooLarge, fetch_url

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def only_loopback(ip: Any) -> bool:
    return ip == LOOPBACK


@pytest.fixture
def tls(tls_web: tuple[WebServer, ssl.SSLContext]) -> WebServer:
    return tls_web[0]


@pytest.fixture
def policy(tls_web: tuple[WebServer, ssl.SSLContext]) -> FetchPolicy:
    return FetchPolicy(allow=only_loopback, verify=tls_web[1], timeout=5.0)


def test_https_fetch_verifies_the_name_and_pins_the_address(
    tls: WebServer, policy: FetchPolicy
) -> None:
    tls.routes["/img.jpg"] = (200, {}, b"jpeg bytes")
    assert fetch_url(tls.url("/img.jpg", host="localhost"), policy) == b"jpeg bytes"
    assert tls.requests == [("/img.jpg", f"localhost:{tls.port}")]


def test_connection_goes_to_the_address_that_was_checked(
    tls: WebServer, tls_web: tuple[WebServer, ssl.SSLContext]
) -> None:
    """The name is resolved once, by the policy's resolver; the connection uses that answer
    (a second lookup could be answered differently: DNS rebinding)."""
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[Any]:
        lookups.append(host)
        return [LOOPBACK]

    tls.routes["/a"] = (200, {}, b"ok")
    pinned = FetchPolicy(allow=only_loopback, verify=tls_web[1], resolver=resolver)
    assert fetch_url(tls.url("/a", host="localhost"), pinned) == b"ok"
    assert lookups == ["localhost"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[::ffff:127.0.0.2]/x", "loopback"),
        ("https://2130706434/x", "loopback"),
        ("https://127.1:1/x", None),  # 127.0.0.1 is the one address the test allows
        ("https://10.1.1.1/x", "private"),
        ("http://localhost/x", "only https"),
    ],
)
def test_every_redirect_hop_is_checked(
    tls: WebServer, policy: FetchPolicy, location: str, reason: str | None
) -> None:
    tls.routes["/start"] = (302, {"Location": location}, b"")
    with pytest.raises((ForbiddenUrl, RetryableError)) as caught:
        fetch_url(tls.url("/start", host="localhost"), policy)
    if reason is None:
        # Allowed, so it was tried: nothing listens on port 1.
        assert isinstance(caught.value, RetryableError)
    else:
        assert isinstance(caught.value, ForbiddenUrl)
        assert reason in str(caught.value)
    assert [path for path, _ in tls.requests] == ["/start"]


def test_relative_redirects_are_followed(tls: WebServer, policy: FetchPolicy) -> None:
    tls.routes["/old"] = (301, {"Location": "/new"}, b"")
    tls.routes["/new"] = (200, {}, b"here")
    assert fetch_url(tls.url("/old", host="localhost"), policy) == b"here"


def test_redirect_loops_end(tls: WebServer, policy: FetchPolicy) -> None:
    tls.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(PermanentError, match="redirects"):
        fetch_url(tls.url("/loop", host="localhost"), policy)


def test_size_is_capped(tls: WebServer, tls_web: tuple[WebServer, ssl.SSLContext]) -> None:
    tls.routes["/big"] = (200, {}, b"x" * 5000)
    small = FetchPolicy(allow=only_loopback, verify=tls_web[1], max_bytes=4096)
    with pytest.raises(SourceTooLarge):
        fetch_url(tls.url("/big", host="localhost"), small)


def test_time_is_capped(tls: WebServer, tls_web: tuple[WebServer, ssl.SSLContext]) -> None:
    tls.routes["/slow"] = (200, {}, b"late")
    tls.delays["/slow"] = 2.0
    hurried = FetchPolicy(allow=only_loopback, verify=tls_web[1], timeout=0.3)
    with pytest.raises(RetryableError, match="timed out"):
        fetch_url(tls.url("/slow", host="localhost"), hurried)


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (404, {}, False, None),
        (403, {}, False, None),
        (410, {}, False, None),
        (429, {"Retry-After": "12"}, True, 12.0),
        (503, {}, True, None),
        (500, {}, True, None),
    ],
)
def test_statuses_are_classified(
    tls: WebServer,
    policy: FetchPolicy,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    retry_after: float | None,
) -> None:
    tls.routes["/s"] = (status, headers, b"")
    with pytest.raises((PermanentError, RetryableError)) as caught:
        fetch_url(tls.url("/s", host="localhost"), policy)
    assert isinstance(caught.value, RetryableError) is retryable
    if retryable:
        assert caught.value.retry_after == retry_after
    assert str(status) in str(caught.value)


def test_untrusted_certificate_is_not_accepted(tls: WebServer) -> None:
    strict = FetchPolicy(allow=only_loopback, timeout=5.0)  # system CAs only
    tls.routes["/a"] = (200, {}, b"ok")
    with pytest.raises(RetryableError):
        fetch_url(tls.url("/a", host="localhost"), strict)
    assert tls.requests == []


def test_unknown_host_is_permanent() -> None:
    def nowhere(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(PermanentError, match="does not exist"):
        fetch_url("https://images.invalid/a.jpg", FetchPolicy(resolver=nowhere))


def test_resolver_trouble_is_retryable() -> None:
    def flaky(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(RetryableError, match="cannot resolve"):
        fetch_url("https://images.example/a.jpg", FetchPolicy(resolver=flaky))


def test_one_private_answer_refuses_the_name() -> None:
    """A name with a public and a private address is refused as a whole: which one a
    connection would pick is not ours to guess."""

    def mixed(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]

    with pytest.raises(ForbiddenUrl, match=r"10\.0\.0\.5"):
        fetch_url("https://images.example/a.jpg", FetchPolicy(resolver=mixed))
