"""Which network addresses a payload's URL may reach: public ones only, unless the operator
allows private networks (`CONVEYOR_ALLOW_PRIVATE_URLS=1`).

Checked on the addresses the name resolves to, never on the text of the URL: `127.1`,
`2130706433`, `0x7f.0.0.1` and `[::ffff:127.0.0.1]` all land on loopback, and every spelling
goes through the same resolver the connection uses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Instance metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba): the classic
#: target of server-side request forgery, named so the refusal says what was at stake.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

Resolver = Callable[[str, int], list[IPAddress]]


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client; the server half is public by construction
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a connection to `ip` is refused ("loopback", "private", ...), or None if public."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = forbidden_reason(inner)
        return f"{reason} ({inner} inside)" if reason else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not publicly routable"  # shared 100.64/10, reserved, documentation ranges
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found
