"""The address checker behind every https fetch: public addresses pass, everything else is
refused with the reason, whatever the spelling."""

from __future__ import annotations

import ipaddress

import pytest

from conveyor.handlers.image.addresses import forbidden_reason, resolve
from conveyor.handlers.image.fetch import FetchPolicy, ForbiddenUrl, fetch_url


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not publicly routable"),
        ("192.0.2.1", "private"),  # documentation range
        ("240.0.0.1", "private"),  # reserved; Python counts it private
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
    ],
)
def test_odd_spellings_resolve_to_what_they_mean(host: str, expected: str) -> None:
    assert resolve(host, 443) == [ipaddress.ip_address(expected)]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/a.jpg",
        "https://2130706433/a.jpg",
        "https://0x7f.0.0.1/a.jpg",
        "https://[::ffff:127.0.0.1]/a.jpg",
        "https://[::1]/a.jpg",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/a.jpg",
        "https://user:secret@10.0.0.1/a.jpg?signature=abc",
    ],
)
def test_fetch_refuses_before_connecting(url: str) -> None:
    with pytest.raises(ForbiddenUrl) as caught:
        fetch_url(url, FetchPolicy())
    message = str(caught.value)
    assert "CONVEYOR_ALLOW_PRIVATE_URLS" in message
    assert "secret" not in message and "signature" not in message  # no credentials in errors


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "http://8.8.8.8/"])
def test_only_https_unless_private_urls_are_allowed(url: str) -> None:
    with pytest.raises(ForbiddenUrl, match="only https"):
        fetch_url(url, FetchPolicy())


def test_allow_private_lets_loopback_through_the_check() -> None:
    policy = FetchPolicy(allow_private=True)
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert FetchPolicy().refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
