"""RFC 3263 server location, the pure plan (sipwire.core.locate) against a fake DNS.

Every rule of RFC 3263 §4.1/§4.2, RFC 2782 SRV ordering (with a seeded random source),
NAPTR filtering and ordering (RFC 3403), and the Failover table. No sockets, no clock.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable

import pytest

from sipwire.core._errors import LocalProtocolError
from sipwire.core.locate import (
    Answer,
    DnsStatus,
    Failover,
    LocationError,
    NaptrRecord,
    Query,
    SrvRecord,
    Target,
    numeric_host,
    order_srv,
    plan_location,
    run_plan,
    select_naptr,
)
from sipwire.core.uri import SipURI

NX = Answer(DnsStatus.NXDOMAIN)


class FakeDns:
    """A dict of answers; anything not configured is NXDOMAIN. Logs every query."""

    def __init__(self, answers: dict[tuple[str, str], Answer] | None = None) -> None:
        self.answers = dict(answers or {})
        self.log: list[tuple[str, str]] = []

    def naptr(self, name: str, *records: tuple[int, int, str, str, str, str]) -> None:
        self.answers[(name, "NAPTR")] = Answer(naptr=tuple(NaptrRecord(*r) for r in records))

    def srv(self, name: str, *records: tuple[int, int, int, str]) -> None:
        self.answers[(name, "SRV")] = Answer(srv=tuple(SrvRecord(*r) for r in records))

    def host(self, name: str, *addresses: str) -> None:
        v4 = tuple(a for a in addresses if ":" not in a)
        v6 = tuple(a for a in addresses if ":" in a)
        if v4:
            self.answers[(name, "A")] = Answer(addresses=v4)
        if v6:
            self.answers[(name, "AAAA")] = Answer(addresses=v6)

    def __call__(self, query: Query) -> Answer:
        self.log.append((query.name, query.rdtype))
        return self.answers.get((query.name, query.rdtype), NX)


def first(n: int) -> int:
    """A 'random' source that always picks the lowest: deterministic order."""
    assert n > 0
    return 0


def locate(uri: str, dns: FakeDns, **kwargs: object) -> list[Target]:
    kwargs.setdefault("rand_below", first)
    return run_plan(plan_location(SipURI.parse(uri), **kwargs), dns)  # type: ignore[arg-type]


def addrs(targets: Iterable[Target]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.address, t.port) for t in targets]


# ----------------------------------------------------------------- numeric TARGET, no DNS


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:alice@192.0.2.1", ("UDP", "192.0.2.1", 5060)),
        ("sip:alice@192.0.2.1:5080", ("UDP", "192.0.2.1", 5080)),
        ("sips:alice@192.0.2.1", ("TLS", "192.0.2.1", 5061)),
        ("sip:alice@192.0.2.1;transport=tcp", ("TCP", "192.0.2.1", 5060)),
        ("sip:alice@192.0.2.1;transport=TLS", ("TLS", "192.0.2.1", 5061)),
        ("sips:alice@192.0.2.1;transport=tcp", ("TLS", "192.0.2.1", 5061)),
        ("sip:[2001:db8::1]", ("UDP", "2001:db8::1", 5060)),
        ("sips:[2001:DB8:0::1]:5071", ("TLS", "2001:db8::1", 5071)),
        ("sip:alice@example.com;maddr=192.0.2.9", ("UDP", "192.0.2.9", 5060)),
        ("sip:alice@example.com:5070;maddr=[2001:db8::9]", ("UDP", "2001:db8::9", 5070)),
    ],
)
def test_numeric_target_needs_no_dns(uri: str, expected: tuple[str, str, int]) -> None:
    dns = FakeDns()
    targets = locate(uri, dns, supported_transports=("UDP", "TCP", "TLS"))
    assert addrs(targets) == [expected]
    assert targets[0].host == expected[1]  # SNI / identity: the address itself
    assert dns.log == []


def test_websocket_defaults_follow_rfc7118() -> None:
    dns = FakeDns()
    ws = ("UDP", "TCP", "TLS", "WS", "WSS")
    assert addrs(locate("sip:192.0.2.1;transport=ws", dns, supported_transports=ws)) == [
        ("WS", "192.0.2.1", 80)
    ]
    assert addrs(locate("sips:192.0.2.1;transport=ws", dns, supported_transports=ws)) == [
        ("WSS", "192.0.2.1", 443)
    ]
    assert addrs(locate("sip:192.0.2.1;transport=wss", dns, supported_transports=ws)) == [
        ("WSS", "192.0.2.1", 443)
    ]


def test_numeric_sip_without_udp_support_uses_tcp() -> None:
    targets = locate("sip:192.0.2.1", FakeDns(), supported_transports=("TCP", "TLS"))
    assert addrs(targets) == [("TCP", "192.0.2.1", 5060)]


@pytest.mark.parametrize(
    ("uri", "supported", "words"),
    [
        ("sips:192.0.2.1;transport=udp", ("UDP", "TCP", "TLS"), "udp"),
        ("sip:192.0.2.1;transport=sctp", ("UDP", "TCP", "TLS"), "sctp"),
        ("sip:192.0.2.1;transport=ws", ("UDP", "TCP", "TLS"), "WS"),
        ("sips:192.0.2.1", ("UDP", "TCP"), "SIPS"),
        ("sip:example.com;transport=tls", ("UDP", "TCP"), "TLS"),
    ],
)
def test_unusable_transport_is_a_location_error(
    uri: str, supported: tuple[str, ...], words: str
) -> None:
    dns = FakeDns()
    with pytest.raises(LocationError) as info:
        locate(uri, dns, supported_transports=supported)
    assert words in info.value.reason
    assert dns.log == []


# ----------------------------------------------------------------- explicit port: A/AAAA only


def test_explicit_port_uses_a_and_aaaa_only_even_5060() -> None:
    dns = FakeDns()
    dns.naptr("example.com", (10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com"))
    dns.srv("_sip._udp.example.com", (0, 0, 5099, "other.example.com"))
    dns.host("example.com", "192.0.2.1", "192.0.2.2", "2001:db8::1")
    targets = locate("sip:bob@Example.COM:5060", dns)
    assert addrs(targets) == [
        ("UDP", "192.0.2.1", 5060),
        ("UDP", "192.0.2.2", 5060),
        ("UDP", "2001:db8::1", 5060),
    ]
    assert {t.host for t in targets} == {"example.com"}
    assert dns.log == [("example.com", "A"), ("example.com", "AAAA")]


def test_explicit_port_transport_from_param_and_sips() -> None:
    dns = FakeDns()
    dns.host("example.com", "192.0.2.1")
    assert addrs(locate("sip:example.com:5070;transport=tcp", dns)) == [("TCP", "192.0.2.1", 5070)]
    assert addrs(locate("sips:example.com:5071", dns)) == [("TLS", "192.0.2.1", 5071)]


def test_maddr_name_overrides_host() -> None:
    dns = FakeDns()
    dns.host("proxy.example.net", "198.51.100.7")
    targets = locate("sip:alice@example.com:5062;maddr=proxy.example.net", dns)
    assert addrs(targets) == [("UDP", "198.51.100.7", 5062)]
    assert targets[0].host == "proxy.example.net"
    assert all(name == "proxy.example.net" for name, _ in dns.log)


# ----------------------------------------------------------------- transport param, no port


@pytest.mark.parametrize(
    ("uri", "srv_name", "transport"),
    [
        ("sip:example.com;transport=udp", "_sip._udp.example.com", "UDP"),
        ("sip:example.com;transport=tcp", "_sip._tcp.example.com", "TCP"),
        ("sip:example.com;transport=tls", "_sips._tcp.example.com", "TLS"),
        ("sips:example.com;transport=tcp", "_sips._tcp.example.com", "TLS"),
        ("sips:example.com", None, "TLS"),
    ],
)
def test_transport_param_queries_srv_for_that_transport(
    uri: str, srv_name: str | None, transport: str
) -> None:
    dns = FakeDns()
    name = srv_name or "_sips._tcp.example.com"
    dns.srv(name, (0, 0, 5999, "srv.example.com"))
    dns.host("srv.example.com", "192.0.2.50")
    targets = locate(uri, dns)
    assert addrs(targets) == [(transport, "192.0.2.50", 5999)]
    # The certificate identity is the SIP domain, not the SRV target (RFC 5922 §4).
    assert targets[0].host == "example.com"
    if srv_name is not None:
        assert dns.log[0] == (srv_name, "SRV")
        assert ("example.com", "NAPTR") not in dns.log


def test_transport_param_without_srv_falls_back_to_default_port() -> None:
    dns = FakeDns()
    dns.host("example.com", "192.0.2.1")
    assert addrs(locate("sip:example.com;transport=tcp", dns)) == [("TCP", "192.0.2.1", 5060)]
    assert addrs(locate("sip:example.com;transport=tls", dns)) == [("TLS", "192.0.2.1", 5061)]
    assert addrs(locate("sip:example.com;transport=ws", dns, supported_transports=("WS",))) == [
        ("WS", "192.0.2.1", 80)
    ]
    assert dns.log[:3] == [
        ("_sip._tcp.example.com", "SRV"),
        ("example.com", "A"),
        ("example.com", "AAAA"),
    ]


def test_srv_dot_target_means_not_available_no_a_fallback() -> None:
    dns = FakeDns()
    dns.srv("_sip._tcp.example.com", (0, 0, 0, "."))
    dns.host("example.com", "192.0.2.1")
    with pytest.raises(LocationError) as info:
        locate("sip:example.com;transport=tcp", dns)
    assert "not available" in info.value.reason
    assert ("example.com", "A") not in dns.log


# ----------------------------------------------------------------- NAPTR (§4.1)


def rfc_example(dns: FakeDns) -> None:
    """The records of RFC 3263 §4.1, plus hosts."""
    dns.naptr(
        "example.com",
        (50, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com"),
        (90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
        (100, 50, "s", "SIP+D2U", "", "_sip._udp.example.com"),
    )
    dns.srv("_sips._tcp.example.com", (0, 0, 5061, "tls.example.com"))
    dns.srv(
        "_sip._tcp.example.com",
        (0, 1, 5060, "server1.example.com"),
        (0, 2, 5060, "server2.example.com"),
    )
    dns.srv("_sip._udp.example.com", (0, 0, 5060, "udp.example.com"))
    dns.host("tls.example.com", "192.0.2.10")
    dns.host("server1.example.com", "192.0.2.1")
    dns.host("server2.example.com", "192.0.2.2", "2001:db8::2")
    dns.host("udp.example.com", "192.0.2.20")


def test_rfc3263_example_client_without_tls_uses_tcp_then_udp() -> None:
    dns = FakeDns()
    rfc_example(dns)
    targets = locate("sip:user@example.com", dns, supported_transports=("UDP", "TCP"))
    assert addrs(targets) == [
        ("TCP", "192.0.2.1", 5060),
        ("TCP", "192.0.2.2", 5060),
        ("TCP", "2001:db8::2", 5060),
        ("UDP", "192.0.2.20", 5060),
    ]
    assert dns.log[0] == ("example.com", "NAPTR")
    assert ("_sips._tcp.example.com", "SRV") not in dns.log
    assert {t.host for t in targets} == {"example.com"}


def test_naptr_prefers_tls_when_supported_and_lists_every_transport() -> None:
    dns = FakeDns()
    rfc_example(dns)
    targets = locate("sip:user@example.com", dns)
    assert [t.transport for t in targets] == ["TLS", "TCP", "TCP", "TCP", "UDP"]
    assert addrs(targets)[0] == ("TLS", "192.0.2.10", 5061)


def test_sips_uri_keeps_only_sips_naptr_records() -> None:
    dns = FakeDns()
    rfc_example(dns)
    targets = locate("sips:user@example.com", dns)
    assert addrs(targets) == [("TLS", "192.0.2.10", 5061)]
    assert ("_sip._tcp.example.com", "SRV") not in dns.log


def test_naptr_filtering_rules() -> None:
    records = [
        NaptrRecord(1, 1, "s", "SIP+D2U", "!^.*$!sip:x@y!", "_sip._udp.a"),  # regexp
        NaptrRecord(1, 1, "", "SIP+D2U", "", "_sip._udp.b"),  # non-terminal
        NaptrRecord(1, 1, "u", "SIP+D2U", "", "_sip._udp.c"),  # URI flag
        NaptrRecord(1, 1, "s", "SIP+D2S", "", "_sip._sctp.d"),  # SCTP: unsupported
        NaptrRecord(1, 1, "s", "E2U+sip", "", "_sip._udp.e"),  # ENUM service
        NaptrRecord(1, 1, "s", "SIP+D2U", "", "."),  # root replacement
        NaptrRecord(1, 1, "s", "SIP+D2W", "", "_sip._ws.f"),  # WS: not supported here
        NaptrRecord(5, 1, "S", "sip+d2t", "", "_sip._tcp.G."),  # case-insensitive: kept
        NaptrRecord(6, 1, "a", "SIP+D2U", "", "host.h"),  # A flag: kept
        NaptrRecord(6, 1, "s", "SIP+D2U", "", "bad name!"),  # invalid name
    ]
    choices = select_naptr(records, secure=False, supported=("UDP", "TCP"))
    assert [(c.transport, c.lookup, c.name) for c in choices] == [
        ("TCP", "SRV", "_sip._tcp.g"),
        ("UDP", "A", "host.h"),
    ]


def test_naptr_order_then_preference_independent_of_answer_order() -> None:
    records = [
        NaptrRecord(20, 10, "s", "SIP+D2U", "", "_sip._udp.x"),
        NaptrRecord(10, 90, "s", "SIP+D2T", "", "_sip._tcp.x"),
        NaptrRecord(10, 20, "s", "SIPS+D2T", "", "_sips._tcp.x"),
        NaptrRecord(10, 20, "s", "SIP+D2T", "", "_sip._tcp.y"),
    ]
    expected = [
        ("TCP", "_sip._tcp.y"),
        ("TLS", "_sips._tcp.x"),
        ("TCP", "_sip._tcp.x"),
        ("UDP", "_sip._udp.x"),
    ]
    for perm in itertools.permutations(records):
        choices = select_naptr(perm, secure=False, supported=("UDP", "TCP", "TLS"))
        assert [(c.transport, c.name) for c in choices] == expected


def test_naptr_a_flag_resolves_replacement_at_default_port() -> None:
    dns = FakeDns()
    dns.naptr("example.com", (10, 10, "a", "SIPS+D2T", "", "edge.example.com"))
    dns.host("edge.example.com", "192.0.2.33")
    assert addrs(locate("sip:example.com", dns)) == [("TLS", "192.0.2.33", 5061)]


def test_naptr_ws_service_maps_to_websocket_transports() -> None:
    dns = FakeDns()
    dns.naptr(
        "example.com",
        (10, 10, "s", "SIPS+D2W", "", "_sips._ws.example.com"),
        (20, 10, "s", "SIP+D2W", "", "_sip._ws.example.com"),
    )
    dns.srv("_sips._ws.example.com", (0, 0, 8443, "ws.example.com"))
    dns.srv("_sip._ws.example.com", (0, 0, 8080, "ws.example.com"))
    dns.host("ws.example.com", "192.0.2.44")
    targets = locate("sip:example.com", dns, supported_transports=("WS", "WSS"))
    assert addrs(targets) == [("WSS", "192.0.2.44", 8443), ("WS", "192.0.2.44", 8080)]


def test_unusable_naptr_records_fall_back_to_srv_queries() -> None:
    dns = FakeDns()
    dns.naptr("example.com", (10, 10, "s", "SIP+D2S", "", "_sip._sctp.example.com"))
    dns.srv("_sip._udp.example.com", (0, 0, 5060, "udp.example.com"))
    dns.host("udp.example.com", "192.0.2.20")
    assert addrs(locate("sip:example.com", dns)) == [("UDP", "192.0.2.20", 5060)]
    assert ("_sip._udp.example.com", "SRV") in dns.log


def test_naptr_without_srv_falls_back_to_a_with_the_naptr_transport() -> None:
    dns = FakeDns()
    dns.naptr("example.com", (10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com"))
    dns.host("example.com", "192.0.2.1")
    assert addrs(locate("sip:example.com", dns)) == [("TCP", "192.0.2.1", 5060)]


def test_naptr_srv_dot_skips_that_transport() -> None:
    dns = FakeDns()
    dns.naptr(
        "example.com",
        (10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
        (20, 10, "s", "SIP+D2U", "", "_sip._udp.example.com"),
    )
    dns.srv("_sip._tcp.example.com", (0, 0, 0, "."))
    dns.srv("_sip._udp.example.com", (0, 0, 5060, "udp.example.com"))
    dns.host("udp.example.com", "192.0.2.20")
    dns.host("example.com", "192.0.2.1")
    assert addrs(locate("sip:example.com", dns)) == [("UDP", "192.0.2.20", 5060)]


# ----------------------------------------------------------------- no NAPTR: SRV fallback


def test_no_naptr_queries_srv_for_each_supported_transport_in_order() -> None:
    dns = FakeDns()
    dns.srv("_sip._udp.example.com", (0, 0, 5060, "udp.example.com"))
    dns.srv("_sip._tcp.example.com", (0, 0, 5060, "tcp.example.com"))
    dns.host("udp.example.com", "192.0.2.20")
    dns.host("tcp.example.com", "192.0.2.30")
    targets = locate("sip:example.com", dns)
    assert addrs(targets) == [("TCP", "192.0.2.30", 5060), ("UDP", "192.0.2.20", 5060)]
    assert dns.log[:4] == [
        ("example.com", "NAPTR"),
        ("_sips._tcp.example.com", "SRV"),
        ("_sip._tcp.example.com", "SRV"),
        ("_sip._udp.example.com", "SRV"),
    ]


def test_srv_fallback_queries_are_one_batch() -> None:
    plan = plan_location(SipURI.parse("sip:example.com"), rand_below=first)
    assert next(plan) == (Query("example.com", "NAPTR"),)
    batch = plan.send((NX,))
    assert batch == (
        Query("_sips._tcp.example.com", "SRV"),
        Query("_sip._tcp.example.com", "SRV"),
        Query("_sip._udp.example.com", "SRV"),
    )
    assert plan.send((NX, NX, NX)) == (Query("example.com", "A"), Query("example.com", "AAAA"))
    plan.close()


def test_srv_fallback_filtered_by_client_transports_and_sips() -> None:
    dns = FakeDns()
    with pytest.raises(LocationError):
        locate("sip:example.com", dns, supported_transports=("UDP",))
    assert [n for n, t in dns.log if t == "SRV"] == ["_sip._udp.example.com"]
    dns = FakeDns()
    with pytest.raises(LocationError):
        locate("sips:example.com", dns)
    assert [n for n, t in dns.log if t == "SRV"] == ["_sips._tcp.example.com"]


@pytest.mark.parametrize(
    ("uri", "supported", "expected"),
    [
        ("sip:example.com", ("UDP", "TCP", "TLS"), ("UDP", "192.0.2.1", 5060)),
        ("sip:example.com", ("TCP",), ("TCP", "192.0.2.1", 5060)),
        ("sips:example.com", ("UDP", "TCP", "TLS"), ("TLS", "192.0.2.1", 5061)),
    ],
)
def test_no_naptr_no_srv_uses_a_with_default_transport_and_port(
    uri: str, supported: tuple[str, ...], expected: tuple[str, str, int]
) -> None:
    dns = FakeDns()
    dns.host("example.com", "192.0.2.1")
    assert addrs(locate(uri, dns, supported_transports=supported)) == [expected]


def test_all_srv_not_available_is_an_error_without_a_fallback() -> None:
    dns = FakeDns()
    for name in ("_sips._tcp", "_sip._tcp", "_sip._udp"):
        dns.srv(f"{name}.example.com", (0, 0, 0, "."))
    dns.host("example.com", "192.0.2.1")
    with pytest.raises(LocationError) as info:
        locate("sip:example.com", dns)
    assert "not available" in info.value.reason
    assert ("example.com", "A") not in dns.log


def test_srv_target_that_is_an_ip_address_is_used_directly() -> None:
    dns = FakeDns()
    dns.srv("_sip._udp.example.com", (0, 0, 5070, "192.0.2.77"))
    assert addrs(locate("sip:example.com;transport=udp", dns)) == [("UDP", "192.0.2.77", 5070)]
    assert ("192.0.2.77", "A") not in dns.log


# ----------------------------------------------------------------- SRV ordering (RFC 2782)


def test_srv_lower_priority_first_whatever_the_weights() -> None:
    records = [
        SrvRecord(20, 1000, 5060, "late.example.com."),
        SrvRecord(10, 0, 5060, "early.example.com"),
        SrvRecord(30, 65535, 5060, "last.example.com"),
    ]
    rng = random.Random(7)
    for _ in range(50):
        ordered = order_srv(records, rng.randrange)
        assert [r.target for r in ordered] == [
            "early.example.com",
            "late.example.com",
            "last.example.com",
        ]


def test_srv_weighted_selection_is_proportional_to_weight() -> None:
    records = [
        SrvRecord(0, 1, 5060, "one"),
        SrvRecord(0, 3, 5060, "three"),
        SrvRecord(0, 6, 5060, "six"),
    ]
    rng = random.Random(20240601)
    draws = 10_000
    firsts = Counter(order_srv(records, rng.randrange)[0].target for _ in range(draws))
    # Exact proportions 10% / 30% / 60%. An off-by-one ([0, total] inclusive) would give
    # "one" 2/11 = 18% -- far outside this band.
    assert abs(firsts["one"] / draws - 0.1) < 0.02
    assert abs(firsts["three"] / draws - 0.3) < 0.02
    assert abs(firsts["six"] / draws - 0.6) < 0.02


def test_srv_second_pick_is_weighted_among_the_rest() -> None:
    records = [SrvRecord(0, 1, 1, "a"), SrvRecord(0, 1, 1, "b"), SrvRecord(0, 8, 1, "c")]
    rng = random.Random(99)
    draws = 10_000
    orders = Counter(
        tuple(r.target for r in order_srv(records, rng.randrange)) for _ in range(draws)
    )
    # P(c, a, b) = 0.8 * 0.5; P(a, c, b) = 0.1 * 8/9.
    assert abs(orders[("c", "a", "b")] / draws - 0.4) < 0.02
    assert abs(orders[("a", "c", "b")] / draws - 0.1 * 8 / 9) < 0.02


def test_srv_zero_weights_come_after_weighted_and_are_shuffled() -> None:
    records = [SrvRecord(0, 0, 1, "z1"), SrvRecord(0, 5, 1, "w"), SrvRecord(0, 0, 1, "z2")]
    rng = random.Random(3)
    orders = Counter(
        tuple(r.target for r in order_srv(records, rng.randrange)) for _ in range(2000)
    )
    assert set(orders) == {("w", "z1", "z2"), ("w", "z2", "z1")}
    assert min(orders.values()) > 800


def test_srv_order_is_deterministic_for_stateless_proxies() -> None:
    records = [
        SrvRecord(0, 10, 5060, "b.example.com"),
        SrvRecord(0, 10, 5060, "a.example.com"),
        SrvRecord(1, 0, 5060, "c.example.com"),
        SrvRecord(0, 10, 5060, "a.example.com"),  # duplicate
        SrvRecord(0, 0, 0, "."),
    ]
    results = {tuple(order_srv(p, first)) for p in itertools.permutations(records)}
    assert len(results) == 1
    (only,) = results
    assert [r.target for r in only] == ["a.example.com", "b.example.com", "c.example.com"]


def test_bad_random_source_is_api_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        order_srv([SrvRecord(0, 1, 1, "a")], lambda n: n)


def test_locate_uses_weighted_srv_order_with_injected_random() -> None:
    dns = FakeDns()
    dns.srv(
        "_sip._udp.example.com",
        (0, 1, 5060, "light.example.com"),
        (0, 99, 5060, "heavy.example.com"),
    )
    dns.host("light.example.com", "192.0.2.1")
    dns.host("heavy.example.com", "192.0.2.2")
    rng = random.Random(5)
    firsts = Counter(
        locate("sip:example.com;transport=udp", dns, rand_below=rng.randrange)[0].address
        for _ in range(500)
    )
    assert firsts["192.0.2.2"] > 450
    assert firsts["192.0.2.1"] > 0


# ----------------------------------------------------------------- addresses


def test_ip_version_preference() -> None:
    dns = FakeDns()
    dns.host("example.com", "192.0.2.1", "2001:db8::1")
    uri = "sip:example.com:5060"
    assert [t.address for t in locate(uri, dns)] == ["192.0.2.1", "2001:db8::1"]
    assert [t.address for t in locate(uri, dns, ip_versions=(6, 4))] == [
        "2001:db8::1",
        "192.0.2.1",
    ]
    dns.log.clear()
    assert [t.address for t in locate(uri, dns, ip_versions=(4,))] == ["192.0.2.1"]
    assert dns.log == [("example.com", "A")]


def test_duplicate_targets_are_yielded_once_and_garbage_addresses_ignored() -> None:
    dns = FakeDns()
    dns.srv(
        "_sip._udp.example.com",
        (0, 0, 5060, "a.example.com"),
        (1, 0, 5060, "b.example.com"),
    )
    dns.answers[("a.example.com", "A")] = Answer(addresses=("192.0.2.1", "not-an-ip"))
    dns.host("b.example.com", "192.0.2.1", "192.0.2.2")
    targets = locate("sip:example.com;transport=udp", dns)
    assert addrs(targets) == [("UDP", "192.0.2.1", 5060), ("UDP", "192.0.2.2", 5060)]


def test_max_targets_bounds_the_list() -> None:
    dns = FakeDns()
    dns.host("example.com", *[f"192.0.2.{i}" for i in range(1, 60)])
    assert len(locate("sip:example.com:5060", dns, max_targets=5)) == 5
    assert len(locate("sip:example.com:5060", dns)) == 32


def test_numeric_host_helper() -> None:
    assert numeric_host("[2001:DB8::0:1]") == "2001:db8::1"
    assert numeric_host("192.0.2.1") == "192.0.2.1"
    assert numeric_host("example.com") is None
    assert numeric_host("[example.com]") is None


# ----------------------------------------------------------------- failures and errors


def test_nxdomain_everywhere_is_a_clear_location_error() -> None:
    dns = FakeDns()
    with pytest.raises(LocationError) as info:
        locate("sip:alice@nowhere.invalid", dns)
    err = info.value
    assert "nowhere.invalid" in err.reason
    assert "nxdomain" in err.reason
    assert err.status_hint == 503
    assert not err.timed_out


def test_timeouts_are_reported_and_do_not_stop_the_plan() -> None:
    timeout = Answer(DnsStatus.TIMEOUT)
    dns = FakeDns({("example.com", "NAPTR"): timeout})
    dns.host("example.com", "192.0.2.1")
    # A middlebox that drops NAPTR queries must not stop A lookups.
    assert addrs(locate("sip:example.com", dns)) == [("UDP", "192.0.2.1", 5060)]
    with pytest.raises(LocationError) as info:
        run_plan(
            plan_location(SipURI.parse("sip:example.com"), rand_below=first),
            lambda q: timeout,
        )
    assert info.value.timed_out
    assert "timed out" in info.value.reason


def test_server_failure_is_noted_in_the_error() -> None:
    failure = Answer(DnsStatus.ERROR, detail="NoNameservers")
    with pytest.raises(LocationError) as info:
        run_plan(plan_location(SipURI.parse("sip:example.com:5060")), lambda q: failure)
    assert "NoNameservers" in info.value.reason


def test_invalid_host_names_are_rejected_without_dns() -> None:
    dns = FakeDns()
    with pytest.raises(LocationError):
        locate("sip:alice@" + "a" * 64 + ".com", dns)
    assert dns.log == []


def test_bad_arguments_are_api_misuse() -> None:
    uri = SipURI.parse("sip:example.com")
    with pytest.raises(LocalProtocolError):
        plan_location(uri, supported_transports=("UDP", "QUIC"))
    with pytest.raises(LocalProtocolError):
        plan_location(uri, supported_transports=())
    with pytest.raises(LocalProtocolError):
        plan_location(uri, ip_versions=())
    with pytest.raises(LocalProtocolError):
        plan_location(uri, ip_versions=(4, 4))
    with pytest.raises(LocalProtocolError):
        plan_location(uri, max_targets=0)
    plan = plan_location(uri)
    next(plan)
    with pytest.raises(LocalProtocolError):
        plan.send((NX, NX))  # one answer per query


# ----------------------------------------------------------------- outbound proxy, laziness


def test_outbound_proxy_is_located_instead_of_the_request_uri() -> None:
    dns = FakeDns()
    dns.host("proxy.example.net", "198.51.100.1")
    targets = locate(
        "sip:bob@example.com",
        dns,
        outbound_proxy=SipURI.parse("sip:proxy.example.net:5070;lr"),
    )
    assert addrs(targets) == [("UDP", "198.51.100.1", 5070)]
    assert all(name == "proxy.example.net" for name, _ in dns.log)


def test_sips_request_forces_tls_to_the_outbound_proxy() -> None:
    targets = locate(
        "sips:bob@example.com", FakeDns(), outbound_proxy=SipURI.parse("sip:198.51.100.1;lr")
    )
    assert addrs(targets) == [("TLS", "198.51.100.1", 5061)]


def test_plan_yields_first_target_before_resolving_the_next_srv_target() -> None:
    dns = FakeDns()
    dns.srv(
        "_sip._udp.example.com",
        (0, 0, 5060, "a.example.com"),
        (1, 0, 5060, "b.example.com"),
    )
    dns.host("a.example.com", "192.0.2.1")
    dns.host("b.example.com", "192.0.2.2")
    plan = plan_location(SipURI.parse("sip:example.com;transport=udp"), rand_below=first)
    step = next(plan)
    while not isinstance(step, Target):
        step = plan.send(tuple(dns(q) for q in step))
    assert step.address == "192.0.2.1"
    assert ("b.example.com", "A") not in dns.log
    plan.close()


# ----------------------------------------------------------------- Failover


T1 = Target("UDP", "example.com", "192.0.2.1", 5060)
T2 = Target("UDP", "example.com", "192.0.2.2", 5060)
T3 = Target("TCP", "example.com", "192.0.2.3", 5060)


def test_failover_moves_failed_targets_last_until_the_hold_expires() -> None:
    failover = Failover(hold_time=30.0)
    assert failover.order([T1, T2, T3], now=0.0) == [T1, T2, T3]
    failover.failed(T1, now=10.0)
    assert failover.is_held(T1, now=11.0)
    assert failover.order([T1, T2, T3], now=11.0) == [T2, T3, T1]
    failover.failed(T2, now=5.0, hold_time=10.0)  # held until 15, before T1's 40
    assert failover.order([T1, T2, T3], now=12.0) == [T3, T2, T1]
    assert failover.next_expiry() == 15.0
    assert failover.order([T1, T2, T3], now=40.0) == [T1, T2, T3]
    assert len(failover) == 0


def test_failover_succeeded_releases_and_keep_held_false_drops() -> None:
    failover = Failover(keep_held=False)
    failover.failed(T1, now=0.0)
    failover.failed(T3, now=0.0)
    assert failover.order([T1, T2, T3], now=1.0) == [T2]
    failover.succeeded(T1)
    assert failover.order([T1, T2, T3], now=1.0) == [T1, T2]


def test_failover_ignores_the_sni_name_when_matching() -> None:
    failover = Failover()
    failover.failed(T1, now=0.0)
    same_server = Target("UDP", "other.example", "192.0.2.1", 5060)
    assert failover.is_held(same_server, now=1.0)


def test_failover_table_is_bounded() -> None:
    failover = Failover(hold_time=100.0, max_entries=3)
    targets = [Target("UDP", "h", f"192.0.2.{i}", 5060) for i in range(10)]
    for i, target in enumerate(targets):
        failover.failed(target, now=float(i))
        assert len(failover) <= 3
    # The three most recent failures are the ones still held.
    held = [t for t in targets if failover.is_held(t, now=10.0)]
    assert held == targets[-3:]


def test_failover_bad_configuration_is_api_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        Failover(hold_time=0)
    with pytest.raises(LocalProtocolError):
        Failover(max_entries=0)
