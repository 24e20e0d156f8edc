"""The address guard: decides which hosts the connector gateway may connect to.

The gateway opens database connections on behalf of Bitrix24, so without a guard it would be an
open relay into whatever network it runs in. The rule: public addresses are fine; loopback,
private, link-local and other special-purpose addresses only when GATEWAY_ALLOWED_NETWORKS
contains them; cloud metadata services only when that exact address is listed.

`resolve_checked` resolves a host once, checks every address and returns the IP to connect to.
Callers must connect to that IP, not to the host name again: resolving twice would let DNS answer
differently the second time (DNS rebinding).
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "GATEWAY_ALLOWED_NETWORKS"
MAX_HOST_LENGTH = 253
CLOUD_METADATA = "cloud metadata"

HOST_NOT_RESOLVED = "HOST_NOT_RESOLVED"
ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"
INVALID_HOST = "INVALID_HOST"


class AddressRefused(Exception):
    """The gateway will not connect to this host; `code` is one of the three codes above."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# AWS (IMDS, ECS task metadata, IMDS over IPv6), Alibaba Cloud, Azure WireServer, Oracle Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)


def _ranges(*pairs: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in pairs)


# Special-purpose ranges (IANA registries); the first match wins, so specific ones come first.
IPV4_RANGES = _ranges(
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "reserved"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation/benchmark"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "documentation/benchmark"),
    ("198.51.100.0/24", "documentation/benchmark"),
    ("203.0.113.0/24", "documentation/benchmark"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)

IPV6_RANGES = _ranges(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001:2::/48", "documentation/benchmark"),
    ("2001:db8::/32", "documentation/benchmark"),
    ("2001::/23", "reserved"),
    ("3fff::/20", "documentation/benchmark"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),
    ("ff00::/8", "multicast"),
)

# All public IPv6 unicast lives here; anything outside it (and not a translated IPv4) is reserved.
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


def parse_networks(value: str | Iterable[str] | None) -> tuple[Network, ...]:
    """'10.0.0.0/8, 127.0.0.1/32' -> networks; blanks are ignored, a bare address is a /32 or /128.

    Raises ValueError naming the bad entry (this parses the GATEWAY_ALLOWED_NETWORKS setting).
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    entries = [entry.strip() for item in items for entry in item.split(",")]
    return tuple(_parse_network(entry) for entry in entries if entry)


def _parse_network(entry: str) -> Network:
    try:
        return ipaddress.ip_network(entry)
    except ValueError:
        pass
    try:
        widened = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"{SETTING}: {entry!r} is not an IP network; write an address or a CIDR range "
            "such as 10.0.0.0/8 or fd00::/8, separated by commas."
        ) from None
    raise ValueError(
        f"{SETTING}: {entry!r} has bits set after the /{widened.prefixlen} prefix; "
        f"write {widened} for the whole range or {entry.split('/')[0]} for one address."
    )


def classify(address: Address) -> str | None:
    """None when `address` is public; otherwise why it is not, as a short phrase ('private').

    IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are judged
    by the IPv4 inside too, so ::ffff:10.0.0.1 is as private as 10.0.0.1.
    """
    if _without_scope(address) in METADATA_ADDRESSES:
        return CLOUD_METADATA
    if address.version == 4:
        return _lookup(address, IPV4_RANGES)
    return _classify_ipv6(address)


def _classify_ipv6(address: ipaddress.IPv6Address) -> str | None:
    translated = _translated_ipv4(address)
    if translated is not None:
        return classify(translated)
    for embedded in _embedded_ipv4s(address):
        reason = classify(embedded)
        if reason:
            return reason
    reason = _lookup(address, IPV6_RANGES)
    if reason is None and address not in IPV6_GLOBAL_UNICAST:
        return "reserved"
    return reason


def _translated_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that connecting to `address` actually reaches (mapped or NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return _low_32_bits(address)
    return None


def _embedded_ipv4s(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses tunnelled inside `address` (IPv4-compatible, 6to4, Teredo server and client)."""
    if address in IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are not IPv4-compatible
        return [_low_32_bits(address)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def _low_32_bits(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _lookup(address: Address, ranges: Iterable[tuple[Network, str]]) -> str | None:
    return next((reason for network, reason in ranges if address in network), None)


def _without_scope(address: Address) -> Address:
    """`address` without an IPv6 zone ('fe80::1%eth0' -> 'fe80::1'), for set look-ups."""
    return address if address.version == 4 else ipaddress.IPv6Address(int(address))


def is_allowed(address: Address | str, allowed: Sequence[Network]) -> bool:
    """True when `address` is public or inside one of the `allowed` networks.

    Cloud metadata addresses need their exact /32 (/128) listed: allowing 169.254.0.0/16 for a
    link-local database must not also open the instance's credentials endpoint.
    """
    address = ipaddress.ip_address(address) if isinstance(address, str) else address
    forms = _equivalent_forms(address)
    reason = classify(address)
    if reason == CLOUD_METADATA:
        return any(network.num_addresses == 1 and network.network_address in forms for network in allowed)
    return reason is None or any(form in network for form in forms for network in allowed)


def _equivalent_forms(address: Address) -> list[Address]:
    """`address` and, for ::ffff:a.b.c.d, the IPv4 address the kernel really connects to."""
    forms = [_without_scope(address)]
    if address.version == 6 and address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    return forms


def resolve_checked(
    host: str,
    port: int,
    allowed: Sequence[Network] = (),
    resolver: Callable[..., list] = socket.getaddrinfo,
) -> str:
    """Resolve `host` once and return the IP (as text) the gateway may connect to.

    Raises AddressRefused: INVALID_HOST for a malformed host, HOST_NOT_RESOLVED when resolution
    fails, ADDRESS_NOT_ALLOWED when any resolved address is refused (round-robin DNS must not
    smuggle in a private address next to a public one).
    """
    _check_host_syntax(host)
    literal = _ip_literal(host)
    addresses = [literal] if literal is not None else _resolve(host, port, resolver)
    for address in addresses:
        if not is_allowed(address, allowed):
            raise AddressRefused(ADDRESS_NOT_ALLOWED, _refusal_message(host, address, literal is not None))
    ipv4 = [address for address in addresses if address.version == 4]
    return str((ipv4 or addresses)[0])


def _check_host_syntax(host: str) -> None:
    if not isinstance(host, str) or not host:
        raise AddressRefused(INVALID_HOST, "The database host is empty; enter a host name or an IP address.")
    if len(host) > MAX_HOST_LENGTH:
        raise AddressRefused(INVALID_HOST, f"The database host is longer than {MAX_HOST_LENGTH} characters.")
    if any(char.isspace() or not char.isprintable() or char in "/@" for char in host):
        raise AddressRefused(
            INVALID_HOST,
            f"The database host {host!r} contains spaces, control characters, '/' or '@'; "
            "enter only a host name or an IP address (no URL, user name or path).",
        )
    if ":" in host and _ip_literal(host) is None:
        raise AddressRefused(
            INVALID_HOST,
            f"The database host {host!r} is neither a host name nor an IP address; "
            "put the port in its own field.",
        )


def _ip_literal(host: str) -> Address | None:
    """The IP address `host` spells, if it is one; IPv6 may come in brackets ('[::1]')."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int, resolver: Callable[..., list]) -> list[Address]:
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # the IDNA codec rejects the name, e.g. a label over 63 characters
        raise AddressRefused(INVALID_HOST, f"The database host {host!r} is not a valid host name.") from None
    except OSError as error:
        raise AddressRefused(HOST_NOT_RESOLVED, f"Could not resolve {host}: {error}.") from None
    addresses = _unique_addresses(answers)
    if not addresses:
        raise AddressRefused(HOST_NOT_RESOLVED, f"Could not resolve {host}: no IPv4 or IPv6 address found.")
    return addresses


def _unique_addresses(answers: Iterable[tuple]) -> list[Address]:
    """IP addresses from getaddrinfo answers, in the resolver's order, without repeats."""
    addresses: list[Address] = []
    for family, _type, _proto, _canonname, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _refusal_message(host: str, address: Address, is_literal: bool) -> str:
    reason = classify(address)
    subject = f"{host} is" if is_literal else f"{host} resolves to {address},"
    article = "an" if reason[0] in "aeiou" else "a"
    exact = ipaddress.ip_network((int(address), address.max_prefixlen))
    if reason == CLOUD_METADATA:
        return (
            f"{subject} {article} {reason} address; the gateway never connects to cloud metadata "
            f"services unless {SETTING} lists exactly {exact}."
        )
    return (
        f"{subject} {article} {reason} address; the gateway only connects to public addresses "
        f"unless {SETTING} allows it. To allow it, add its network (for example {exact}) to {SETTING}."
    )
