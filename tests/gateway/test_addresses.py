"""The address guard. Addresses here are only classified or fed through a fake resolver; the one
real socket is a listener on 127.0.0.2, which must never see a connection when it is refused."""
from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from bitrix_app.gateway.addresses import (
    ADDRESS_NOT_ALLOWED,
    HOST_NOT_RESOLVED,
    INVALID_HOST,
    AddressRefused,
    classify,
    is_allowed,
    parse_networks,
    resolve_checked,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1111"

CLASSIFIED = [
    # IPv4 special-purpose ranges
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "shared (carrier-grade NAT)"),
    ("100.127.255.254", "shared (carrier-grade NAT)"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.1.1", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.10", "documentation/benchmark"),
    ("192.88.99.1", "reserved"),
    ("192.168.1.10", "private"),
    ("198.18.0.1", "documentation/benchmark"),
    ("198.19.255.255", "documentation/benchmark"),
    ("198.51.100.7", "documentation/benchmark"),
    ("203.0.113.9", "documentation/benchmark"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # cloud metadata services
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    # IPv6 special-purpose ranges
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("64:ff9b:1::a00:1", "private"),
    ("ff02::1", "multicast"),
    ("100::1", "reserved"),
    ("2001:db8::1", "documentation/benchmark"),
    ("3fff::1", "documentation/benchmark"),
    ("2001:2::1", "documentation/benchmark"),
    ("2001:10::1", "reserved"),
    ("4000::1", "reserved"),
    # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4, Teredo
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::10.1.2.3", "private"),
    ("::93.184.216.34", "reserved"),
    ("64:ff9b::192.168.0.1", "private"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("2002:0a00:0001::1", "private"),  # 6to4 around 10.0.0.1
    ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 around 169.254.169.254
    ("2001:0:0a00:0001::ffff:ffff", "private"),  # Teredo server 10.0.0.1
    ("2001:0:5db8:d822::80ff:fffe", "loopback"),  # Teredo client 127.0.0.1 (stored inverted)
    ("2001:0:5db8:d822::a247:27dd", "reserved"),  # Teredo, both IPv4 public: the tunnel is still refused
]

PUBLIC = [
    PUBLIC_V4,
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below the carrier-grade NAT range
    "100.128.0.0",  # just above it
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "168.63.129.17",  # Azure's WireServer neighbour is an ordinary address
    "223.255.255.255",
    PUBLIC_V6,
    "2a00:1450:4001:82a::200e",
    "::ffff:93.184.216.34",  # mapped public IPv4 is that public address
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize(("text", "reason"), CLASSIFIED)
def test_classify_names_the_reason_an_address_is_not_public(text, reason):
    assert classify(ipaddress.ip_address(text)) == reason


@pytest.mark.parametrize("text", PUBLIC)
def test_classify_returns_none_for_public_addresses(text):
    assert classify(ipaddress.ip_address(text)) is None


# --- parse_networks --------------------------------------------------------------------------

def test_parse_networks_reads_a_comma_separated_setting():
    networks = parse_networks(" 10.0.0.0/8, 127.0.0.1/32 ,, fd00::/8 ,")
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_parse_networks_treats_a_bare_address_as_a_single_host():
    assert parse_networks("192.168.1.5, ::1") == (
        ipaddress.ip_network("192.168.1.5/32"),
        ipaddress.ip_network("::1/128"),
    )


def test_parse_networks_accepts_a_list_and_nothing():
    assert parse_networks(["10.0.0.0/8", " ", "172.16.0.0/12, 192.168.0.0/16"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("172.16.0.0/12"),
        ipaddress.ip_network("192.168.0.0/16"),
    )
    assert parse_networks(None) == ()
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()


@pytest.mark.parametrize("entry", ["db.internal", "10.0.0.0/33", "300.1.1.1", "10.0.0.0/8/8", "fd00::/129"])
def test_parse_networks_rejects_bad_entries_by_name(entry):
    with pytest.raises(ValueError) as raised:
        parse_networks(f"127.0.0.1/32, {entry}")
    message = str(raised.value)
    assert repr(entry) in message
    assert "GATEWAY_ALLOWED_NETWORKS" in message


def test_parse_networks_rejects_host_bits_and_suggests_the_fix():
    with pytest.raises(ValueError) as raised:
        parse_networks("10.1.2.3/24")
    message = str(raised.value)
    assert "'10.1.2.3/24'" in message
    assert "10.1.2.0/24" in message and "10.1.2.3 for one address" in message


# --- is_allowed ------------------------------------------------------------------------------

def test_is_allowed_lets_public_addresses_through_without_any_setting():
    assert is_allowed(ipaddress.ip_address(PUBLIC_V4), ())
    assert is_allowed(PUBLIC_V6, ())


def test_is_allowed_needs_the_network_listed_for_special_addresses():
    assert not is_allowed("10.1.2.3", ())
    assert not is_allowed("10.1.2.3", parse_networks("192.168.0.0/16"))
    assert is_allowed("10.1.2.3", parse_networks("10.0.0.0/8"))
    assert is_allowed("fd12::5", parse_networks("fd00::/8"))


def test_is_allowed_treats_a_mapped_address_like_its_ipv4():
    assert not is_allowed("::ffff:10.1.2.3", ())
    assert is_allowed("::ffff:10.1.2.3", parse_networks("10.0.0.0/8"))


def test_is_allowed_refuses_metadata_unless_its_exact_address_is_listed():
    assert not is_allowed("169.254.169.254", parse_networks("169.254.0.0/16"))
    assert not is_allowed("169.254.169.254", parse_networks("0.0.0.0/0"))
    assert not is_allowed("168.63.129.16", parse_networks("168.63.0.0/16"))
    assert not is_allowed("fd00:ec2::254", parse_networks("fd00::/8"))
    assert not is_allowed("::ffff:169.254.169.254", parse_networks("::ffff:0:0/96"))
    assert is_allowed("169.254.169.254", parse_networks("169.254.169.254/32"))
    assert is_allowed("169.254.169.254", parse_networks("169.254.169.254"))
    assert is_allowed("fd00:ec2::254", parse_networks("fd00:ec2::254/128"))
    assert is_allowed("::ffff:169.254.169.254", parse_networks("169.254.169.254/32"))
    assert is_allowed("169.254.1.1", parse_networks("169.254.0.0/16"))


# --- resolve_checked with a fake resolver ----------------------------------------------------

def fake_resolver(*addresses: str):
    """A getaddrinfo stand-in answering with `addresses`; it records the hosts it was asked for."""
    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        resolve.calls.append(host)
        return [_answer(address, port) for address in addresses]

    resolve.calls = []
    return resolve


def _answer(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def failing_resolver(error: Exception):
    def resolve(*args, **kwargs):
        raise error
    return resolve


def must_not_resolve(*args, **kwargs):
    raise AssertionError("an IP literal must not be resolved")


def refusal(host, port=5432, allowed=(), resolver=must_not_resolve) -> AddressRefused:
    with pytest.raises(AddressRefused) as raised:
        resolve_checked(host, port, allowed, resolver=resolver)
    return raised.value


def test_a_public_host_resolves_to_its_address():
    resolver = fake_resolver(PUBLIC_V4)
    assert resolve_checked("db.example.com", 5432, resolver=resolver) == PUBLIC_V4
    assert resolver.calls == ["db.example.com"]


def test_a_private_answer_is_refused_with_the_reason_and_the_fix():
    error = refusal("db.internal", resolver=fake_resolver("10.1.2.3"))
    assert error.code == ADDRESS_NOT_ALLOWED
    assert error.message.startswith(
        "db.internal resolves to 10.1.2.3, a private address; the gateway only connects to public "
        "addresses unless GATEWAY_ALLOWED_NETWORKS allows it."
    )
    assert "add its network (for example 10.1.2.3/32) to GATEWAY_ALLOWED_NETWORKS" in error.message
    assert str(error) == error.message


def test_round_robin_dns_cannot_smuggle_a_private_address_next_to_a_public_one():
    for answers in [(PUBLIC_V4, "10.1.2.3"), ("192.168.0.7", PUBLIC_V4), (PUBLIC_V6, "fe80::1", PUBLIC_V4)]:
        error = refusal("mixed.example.com", resolver=fake_resolver(*answers))
        assert error.code == ADDRESS_NOT_ALLOWED
        assert "mixed.example.com resolves to" in error.message


def test_an_allowed_network_lets_the_private_answer_through():
    resolver = fake_resolver("10.1.2.3")
    assert resolve_checked("db.internal", 5432, parse_networks("10.0.0.0/8"), resolver=resolver) == "10.1.2.3"


def test_a_metadata_answer_is_refused_even_inside_an_allowed_network():
    error = refusal("evil.example.com", allowed=parse_networks("169.254.0.0/16"),
                    resolver=fake_resolver("169.254.169.254"))
    assert error.code == ADDRESS_NOT_ALLOWED
    assert "169.254.169.254, a cloud metadata address" in error.message
    assert "lists exactly 169.254.169.254/32" in error.message


def test_ipv4_is_preferred_when_both_families_answer():
    resolver = fake_resolver(PUBLIC_V6, PUBLIC_V4, "1.1.1.1")
    assert resolve_checked("dual.example.com", 5432, resolver=resolver) == PUBLIC_V4


def test_an_ipv6_only_host_resolves_to_its_first_address():
    resolver = fake_resolver(PUBLIC_V6, PUBLIC_V6, "2a00:1450:4001:82a::200e")
    assert resolve_checked("v6.example.com", 5432, resolver=resolver) == PUBLIC_V6


def test_resolution_failures_are_reported_as_not_resolved():
    for resolver in [failing_resolver(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
                     failing_resolver(OSError("network unreachable")),
                     fake_resolver()]:
        error = refusal("missing.example.com", resolver=resolver)
        assert error.code == HOST_NOT_RESOLVED
        assert "missing.example.com" in error.message


def test_a_name_the_idna_codec_rejects_is_invalid():
    error = refusal("x" * 64 + ".example.com", resolver=failing_resolver(UnicodeError("label too long")))
    assert error.code == INVALID_HOST


@pytest.mark.parametrize(("host", "expected"), [
    (PUBLIC_V4, PUBLIC_V4),
    (PUBLIC_V6, PUBLIC_V6),
    (f"[{PUBLIC_V6}]", PUBLIC_V6),
    ("::ffff:93.184.216.34", "::ffff:5db8:d822"),
])
def test_a_public_ip_literal_is_used_without_resolving(host, expected):
    assert resolve_checked(host, 5432, resolver=must_not_resolve) == expected


@pytest.mark.parametrize(("host", "reason"), [
    ("10.1.2.3", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("::1", "a loopback address"),
    ("[::1]", "a loopback address"),
    ("fe80::1%eth0", "a link-local address"),
    ("::ffff:10.1.2.3", "a private address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("64:ff9b::10.1.2.3", "a private address"),
    ("169.254.169.254", "a cloud metadata address"),
])
def test_a_special_ip_literal_is_still_checked(host, reason):
    error = refusal(host)
    assert error.code == ADDRESS_NOT_ALLOWED
    assert reason in error.message


def test_an_allowed_ip_literal_is_returned():
    ten = parse_networks("10.0.0.0/8")
    assert resolve_checked("::ffff:10.1.2.3", 5432, ten, must_not_resolve) == "::ffff:a01:203"
    assert resolve_checked("fd00::5", 5432, parse_networks("fd00::/8"), must_not_resolve) == "fd00::5"


@pytest.mark.parametrize("host", [
    "",
    " ",
    "db.example.com ",
    "db example.com",
    "db.example.com\n",
    "db\x00.example.com",
    "db\u200b.example.com",
    "user@db.example.com",
    "db.example.com/postgres",
    "http://db.example.com",
    "db.example.com:5432",
    "a" * 254,
    None,
])
def test_malformed_hosts_are_invalid_before_any_lookup(host):
    error = refusal(host, resolver=must_not_resolve)
    assert error.code == INVALID_HOST


def test_a_long_but_legal_name_is_resolved():
    host = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    assert resolve_checked(host, 5432, resolver=fake_resolver(PUBLIC_V4)) == PUBLIC_V4


# --- the one real socket: a loopback listener the guard must keep us away from ---------------

class Listener:
    """A TCP listener on 127.0.0.2 that counts the connections it accepts."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.2", 0))
        self.socket.listen()
        self.socket.settimeout(0.05)
        self.port = self.socket.getsockname()[1]
        self.accepted = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                connection, peer = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted.append(peer)
            connection.close()

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.socket.close()


@pytest.fixture
def listener():
    listener = Listener()
    yield listener
    listener.stop()


def test_a_refused_loopback_address_is_never_connected_to(listener):
    with pytest.raises(AddressRefused) as raised:
        resolve_checked("127.0.0.2", listener.port, allowed=parse_networks("127.0.0.1/32"))
    assert raised.value.code == ADDRESS_NOT_ALLOWED
    assert "127.0.0.2 is a loopback address" in raised.value.message
    listener.stop()
    assert listener.accepted == []


def test_an_allowed_loopback_address_is_returned_and_reachable(listener):
    address = resolve_checked("127.0.0.2", listener.port, allowed=parse_networks("127.0.0.0/8"))
    assert address == "127.0.0.2"
    assert listener.accepted == []  # resolving connects to nothing; the caller does
    # Connecting ourselves shows the listener would have seen a connection had the guard let one through.
    with socket.create_connection((address, listener.port), timeout=2):
        pass
    listener.stop()
    assert len(listener.accepted) == 1
