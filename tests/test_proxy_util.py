"""The proxy's pure helpers: best response (§16.7 step 6), challenge aggregation (step 7),
503 -> 500, loop hash and stateless branch (§16.6 step 8, §16.11), destinations."""

from __future__ import annotations

import pytest

from sipwire.aio._transport_common import Destination
from sipwire.apps._proxy_util import (
    aggregate_challenges,
    best_response,
    branch_loop_part,
    loop_hash,
    make_branch,
    parse_source,
    record_route_value,
    response_destination,
    stateless_key,
    without_503,
)
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.headervalues import Via
from sipwire.core.message import Request, Response, make_cancel


def resp(status: int, *headers: tuple[str, str]) -> Response:
    return Response(status, None, list(headers))


@pytest.mark.parametrize(
    ("statuses", "best"),
    [
        ([404, 486, 603], 603),
        ([302, 404], 302),
        ([404, 486], 486),
        ([480, 486], 486),
        ([404, 480], 480),
        ([404, 410], 404),  # no preference: the first one
        ([500, 404], 404),
        ([503, 500], 500),
        ([503], 503),
        ([415, 486, 407], 407),
        ([401, 407], 401),
        ([600, 603], 600),
    ],
)
def test_best_response(statuses: list[int], best: int) -> None:
    chosen = best_response([resp(s) for s in statuses])
    assert chosen is not None and chosen.status == best


def test_best_response_ignores_provisionals_and_needs_a_final() -> None:
    assert best_response([]) is None
    assert best_response([resp(180)]) is None


def test_challenges_are_aggregated_unmodified() -> None:
    a = resp(407, ("Proxy-Authenticate", 'Digest realm="a"'))
    b = resp(401, ("WWW-Authenticate", 'Digest realm="b"'))
    c = resp(407, ("Proxy-Authenticate", 'Digest realm="a"'))  # a duplicate is not repeated
    d = resp(486)
    out = aggregate_challenges(a, [a, b, c, d])
    assert out.headers.values("Proxy-Authenticate") == ['Digest realm="a"']
    assert out.headers.values("WWW-Authenticate") == ['Digest realm="b"']
    assert a.headers.values("WWW-Authenticate") == []  # the original is untouched
    assert aggregate_challenges(d, [a, d]) is d


def test_503_becomes_500_without_retry_after() -> None:
    out = without_503(resp(503, ("Retry-After", "30"), ("X-Keep", "1")))
    assert (out.status, out.reason) == (500, "Server Internal Error")
    assert "Retry-After" not in out.headers and out.headers.get("X-Keep") == "1"
    same = resp(486)
    assert without_503(same) is same


def invite(uri: str = "sip:bob@example.test", *, route: str | None = None) -> Request:
    rows = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc"),
        ("From", "<sip:alice@example.test>;tag=f1"),
        ("To", "<sip:bob@example.test>"),
        ("Call-ID", "c1"),
        ("CSeq", "7 INVITE"),
        ("Max-Forwards", "70"),
    ]
    if route:
        rows.append(("Route", route))
    return Request("INVITE", uri, rows)


def test_loop_hash_covers_routing_fields_only() -> None:
    base = loop_hash(invite())
    # The CANCEL and a retransmission hash the same (the method is not included) ...
    assert loop_hash(make_cancel(invite())) == base
    other_via = invite()
    other_via.headers.replace_first("Via", "SIP/2.0/TCP 198.51.100.1;branch=z9hG4bKzzz")
    assert loop_hash(other_via) == base  # the top Via changes at every hop: not included
    tagged = invite()
    tagged.headers.set("To", "<sip:bob@example.test>;tag=t9")
    assert loop_hash(tagged) == base  # the non-2xx ACK carries the response's To tag
    # ... while what changes routing gives another hash (a spiral, not a loop).
    assert loop_hash(invite("sip:carol@example.test")) != base
    assert loop_hash(invite(route="<sip:edge.example.test;lr>")) != base
    later = invite()
    later.headers.set("CSeq", "8 INVITE")
    assert loop_hash(later) != base


def test_branch_layout() -> None:
    branch = make_branch("0123abcd", "u1")
    assert branch.startswith("z9hG4bK") and branch_loop_part(branch) == "0123abcd"
    assert branch_loop_part("z9hG4bKother") is None
    assert branch_loop_part(None) is None
    assert branch_loop_part("z9hG4bKsw.") is None


def test_stateless_key_is_stable_for_retransmissions_and_the_cancel() -> None:
    key = stateless_key(invite())
    assert stateless_key(invite()) == key
    assert stateless_key(make_cancel(invite())) == key
    other = invite()
    other.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKdef")
    assert stateless_key(other) != key
    legacy = invite()
    legacy.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=1")
    legacy2 = invite()
    legacy2.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=1")
    legacy2.headers.set("Call-ID", "c2")
    assert stateless_key(legacy) != stateless_key(legacy2)  # RFC 2543: Call-ID counts


def test_record_route_value() -> None:
    assert record_route_value("192.0.2.1", 5060, "UDP") == "<sip:192.0.2.1:5060;transport=udp;lr>"
    assert record_route_value("::1", 5061, "TLS") == "<sip:[::1]:5061;transport=tls;lr>"


def test_parse_source() -> None:
    assert parse_source("UDP 127.0.0.1:5071") == Destination(
        transport="UDP", host="127.0.0.1", port=5071
    )
    assert parse_source("tcp [::1]:5080") == Destination(transport="TCP", host="::1", port=5080)
    assert parse_source("TLS 192.0.2.1") == Destination(
        transport="TLS", host="192.0.2.1", port=5061
    )
    for bad in (None, "", "UDP", "SCTP 1.2.3.4:5", "UDP [::1", "UDP 1.2.3.4:99999"):
        assert parse_source(bad) is None


def test_response_destination() -> None:
    def dest(text: str) -> Destination:
        return response_destination(Via.parse(text))

    assert dest("SIP/2.0/UDP 192.0.2.1:5070;received=198.51.100.2;rport=4000") == Destination(
        transport="UDP", host="198.51.100.2", port=4000
    )
    assert dest("SIP/2.0/UDP 192.0.2.1:5070;received=198.51.100.2") == Destination(
        transport="UDP", host="198.51.100.2", port=5070
    )
    assert dest("SIP/2.0/UDP 192.0.2.1;maddr=239.1.1.1") == Destination(
        transport="UDP", host="239.1.1.1", port=5060
    )
    assert dest("SIP/2.0/TLS 192.0.2.1") == Destination(
        transport="TLS", host="192.0.2.1", port=5061
    )
    with pytest.raises(RemoteProtocolError):
        dest("SIP/2.0/SCTP 192.0.2.1")
