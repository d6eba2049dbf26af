"""sipwire.core.headervalues: Via, CSeq, integer headers, token lists, Content-Type,
Accept, Event, Subscription-State, RAck/RSeq, Replaces, Session-Expires.

Values quoted from the RFC 4475 / RFC 5118 torture messages name their file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.headervalues import (
    CSEQ_MAX,
    DELTA_SECONDS_MAX,
    ContentType,
    CSeq,
    Event,
    RAck,
    Replaces,
    SessionExpires,
    SubscriptionState,
    Via,
    parse_accept,
    parse_allow,
    parse_content_length,
    parse_expires,
    parse_int_header,
    parse_max_forwards,
    parse_min_se,
    parse_option_tags,
    parse_rseq,
    parse_token_list,
)
from strategies import NASTY, cseqs, mutations, tokens, via_texts, vias

# --- Via -------------------------------------------------------------------------------


def test_typical_via() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport")
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert (via.host, via.port) == ("pc33.atlanta.com", 5066)
    assert via.sent_by == "pc33.atlanta.com:5066"
    assert via.branch == "z9hG4bK776asdhds"
    assert via.has_rport and via.rport is None
    assert via.received is None and via.maddr is None and via.ttl is None
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport"


def test_lws_everywhere_wsinv() -> None:
    """RFC 4475 §3.1.1.1 wsinv: LWS around '/' and folded lines."""
    via = Via.parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw")
    assert (via.protocol, via.transport, via.host) == ("SIP/2.0", "UDP", "192.0.2.2")
    assert via.branch == "390skdjuw"
    first, second = Via.parse_list(
        "  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239"
    )
    assert (first.transport, first.host, first.branch) == (
        "TCP",
        "spindle.example.com",
        "z9hG4bK9ikj8",
    )
    assert (second.transport, second.host, second.branch) == (
        "UDP",
        "192.168.255.111",
        "z9hG4bK30239",
    )


def test_lws_around_port_colon() -> None:
    via = Via.parse("SIP/2.0/UDP host.example.com : 5070 ;branch=z9hG4bKx")
    assert via.port == 5070


@pytest.mark.parametrize("transport", ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP", "WSS"])
def test_unknown_transports_accepted_transports(transport: str) -> None:
    """RFC 4475 §3.1.1.10 transports."""
    via = Via.parse(f"SIP/2.0/{transport} t4.example.com;branch=z9hG4bKasd0f3en")
    assert via.transport == transport


def test_transport_is_upper_cased() -> None:
    assert Via.parse("SIP/2.0/tcp h;branch=z9hG4bKx").transport == "TCP"


@pytest.mark.parametrize(
    ("value", "host", "port", "received"),
    [
        # RFC 5118 §4.5 via-received-param-with-delim / -no-delim
        (
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
            "[2001:db8::9:1]",
            None,
            "2001:db8::9:255",
        ),
        (
            "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3",
            "[2001:db8::9:1]",
            None,
            "2001:db8::9:255",
        ),
        # §4.9 ipv4-mapped-ipv6, §4.7 mult-ip-in-header
        (
            "SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19",
            "[::ffff:192.0.2.10]",
            19823,
            None,
        ),
        ("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111", "[2001:db8::9:1]", 6050, None),
        (
            "SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200",
            "[2001:db8::9:255]",
            None,
            "192.0.2.200",
        ),
    ],
)
def test_ipv6_vias_rfc5118(value: str, host: str, port: int | None, received: str | None) -> None:
    via = Via.parse(value)
    assert (via.host, via.port, via.received) == (host, port, received)
    assert str(via) == value


def test_rport_with_value_and_longreq_branch() -> None:
    via = Via.parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-1--d87543-;rport=5071")
    assert via.rport == 5071 and via.has_rport
    long = Via.parse(
        "SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very" + "long" * 60 + "branchvalue"
    )
    assert long.received == "192.0.2.5"
    assert long.branch == "very" + "long" * 60 + "branchvalue"


def test_odd_but_valid_branches() -> None:
    """intmeth, esc02 (``%`` is a token character), badbranch (bare magic cookie)."""
    assert Via.parse("SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~").branch == (
        "z9hG4bK-.!%66*_+`'~"
    )
    assert Via.parse("SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234").branch == (
        "z9hG4bK209%fzsnel234"
    )
    assert Via.parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").branch == "z9hG4bK"


def test_broadcast_and_no_branch() -> None:
    """bcast (255.255.255.255 sent-by) and inv2543 (no branch) are syntactically fine."""
    assert Via.parse("SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23").host == (
        "255.255.255.255"
    )
    assert Via.parse("SIP/2.0/UDP iftgw.example.com").branch is None


def test_ttl_and_maddr() -> None:
    via = Via.parse("SIP/2.0/UDP h;maddr=224.2.0.1;ttl=16;branch=z9hG4bKx")
    assert (via.maddr, via.ttl) == ("224.2.0.1", 16)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("SIP/2.0/UDP 192.0.2.15;;,;,,", "parameter"),  # RFC 4475 §3.1.2.1 badinv01
        ("SIP/2.0/UDP 192.0.2.15;", "parameter"),
        ("SIP/2.0/UDP 192.0.2.15,", "several"),
        ("SIP/2.0/UDP a, SIP/2.0/UDP b", "several"),
        ("SIP/2.0/UDP", "expected"),
        ("SIP/2.0 UDP host", "expected"),
        ("SIP/2.0/UDPhost", "expected"),
        ("SIP/2.0/UDP host:99999", "port"),
        ("SIP/2.0/UDP host:", ""),
        ("SIP/2.0/UDP 2001:db8::1", ""),
        ("SIP/2.0/UDP [2001:db8::1", ""),
        ("SIP/2.0/UDP h;branch", "branch"),
        ('SIP/2.0/UDP h;branch="x"', "branch"),
        ("SIP/2.0/UDP h;received=example.com", "received"),
        ("SIP/2.0/UDP h;received=[2001:db8::1", "received"),
        ("SIP/2.0/UDP h;rport=70000", "rport"),
        ("SIP/2.0/UDP h;rport=abc", "rport"),
        ("SIP/2.0/UDP h;ttl=256", "ttl"),
        ("SIP/2.0/UDP h;maddr", "maddr"),
        ("SIP/2.0/UDP h;tag=", "parameter"),
        ("SIP/2.0/UDP h x", "unexpected"),
        ("", "empty"),
    ],
)
def test_malformed_vias(value: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Via.parse(value)
    assert info.value.status_hint == 400
    assert why in info.value.reason


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP a,",
        ", SIP/2.0/UDP a",
        "SIP/2.0/UDP a,,SIP/2.0/UDP b",
    ],
)
def test_malformed_via_lists(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Via.parse_list(value)


def test_proxy_adds_received_and_rport() -> None:
    """RFC 3261 §18.2.1 received, RFC 3581 §4 rport filled in place; RFC 5118 §4.5:
    IPv6 received without brackets."""
    via = Via.parse("SIP/2.0/UDP [2001:db8::9:1];rport;branch=z9hG4bKx")
    out = via.with_param("received", "2001:db8::9:255").with_param("rport", "5062")
    assert (
        str(out)
        == "SIP/2.0/UDP [2001:db8::9:1];rport=5062;branch=z9hG4bKx;received=2001:db8::9:255"
    )
    assert out.received == "2001:db8::9:255" and out.rport == 5062
    assert str(out.without_param("rport")).count("rport") == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transport": "U DP", "host": "h"},
        {"transport": "UDP", "host": ""},
        {"transport": "UDP", "host": "2001:db8::1"},
        {"transport": "UDP", "host": "h", "port": 65536},
        {"transport": "UDP", "host": "h", "protocol": "SIP"},
        {"transport": "UDP", "host": "h", "params": (("received", "example.com"),)},
        {"transport": "UDP", "host": "h", "params": (("branch", None),)},
    ],
)
def test_via_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        Via(**kwargs)


def test_built_via_renders() -> None:
    via = Via("TLS", "[2001:db8::1]", 5061, (("branch", "z9hG4bKabc"),))
    assert str(via) == "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKabc"


# --- CSeq ------------------------------------------------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert CSeq.parse("0009\r\n  INVITE") == CSeq(9, "INVITE")  # wsinv
    assert CSeq.parse(f"{CSEQ_MAX} ACK").seq == CSEQ_MAX
    method = "!interesting-Method0123456789_*+`.%indeed'~"  # intmeth
    assert CSeq.parse(f"139122385 {method}").method == method
    assert str(CSeq(1, "REGISTER")) == "1 REGISTER"


@pytest.mark.parametrize(
    "value",
    [
        "36893488147419103232 REGISTER",  # RFC 4475 §3.1.2.4 scalar02
        "9292394834772304023312 OPTIONS",  # §3.1.2.5 scalarlg
        f"{CSEQ_MAX + 1} INVITE",
        "-1 INVITE",
        "INVITE",
        "1",
        "1INVITE",
        "1 IN VITE",
        "1 INV@TE",
        "1, 2 INVITE",
        "9" * 5000 + " INVITE",
        "\u0661 INVITE",  # Arabic-Indic digit one: not a DIGIT
    ],
)
def test_malformed_cseq(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        CSeq.parse(value)
    assert info.value.status_hint == 400


def test_cseq_constructor_validates() -> None:
    with pytest.raises(LocalProtocolError):
        CSeq(2**31, "INVITE")
    with pytest.raises(LocalProtocolError):
        CSeq(1, "IN VITE")


# --- integer headers -------------------------------------------------------------------


def test_integer_headers() -> None:
    assert parse_max_forwards("0068") == 68  # wsinv
    assert parse_max_forwards("0") == 0  # zeromf
    assert parse_max_forwards(" 255 ") == 255
    assert parse_expires(str(DELTA_SECONDS_MAX)) == DELTA_SECONDS_MAX
    assert parse_expires("0", "Min-Expires") == 0
    assert parse_content_length("150") == 150
    assert parse_rseq("988789") == 988789
    assert parse_int_header("007", "X-Count", 7) == 7


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (parse_max_forwards, "300"),  # scalar02
        (parse_max_forwards, "256"),
        (parse_expires, "1" + "0" * 103),  # scalar02
        (parse_expires, str(DELTA_SECONDS_MAX + 1)),
        (parse_content_length, "-999"),  # RFC 4475 §3.1.2.3 ncl
        (parse_content_length, "+5"),
        (parse_content_length, ""),
        (parse_content_length, "1 2"),
        (parse_content_length, "0x10"),
        (parse_content_length, "9" * 5000),  # no int() of a huge string
        (parse_rseq, "4294967296"),
    ],
)
def test_integer_headers_reject(parse: Callable[[str], int], value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(value)
    assert info.value.status_hint == 400


# --- token lists, Accept, Content-Type -------------------------------------------------


def test_option_tags_bext01() -> None:
    """RFC 4475 §3.3.5 bext01."""
    assert parse_option_tags("nothingSupportsThis, nothingSupportsThisEither") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ]
    assert parse_option_tags("noProxiesSupportThis, norDoAnyProxiesSupportThis", "Proxy-Require")
    assert parse_option_tags("") == []
    assert parse_allow("INVITE,ACK , OPTIONS,\r\n CANCEL") == ["INVITE", "ACK", "OPTIONS", "CANCEL"]
    assert parse_token_list("presence.winfo, dialog", "Allow-Events") == [
        "presence.winfo",
        "dialog",
    ]


@pytest.mark.parametrize("value", ["a,,b", "a,", ",a", "a b", "a;b", '"a"', ","])
def test_token_list_rejects_empty_elements(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_option_tags(value)


def test_accept_semiuri_and_sdp01() -> None:
    """RFC 4475 §3.1.1.9 semiuri Accept (folded) and §3.3.15 sdp01."""
    ranges = parse_accept(
        "application/sdp, application/pkcs7-mime,\r\n        multipart/mixed, multipart/signed,\r\n"
        "        message/sip, message/sipfrag"
    )
    assert [r.mime_type for r in ranges] == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]
    [only] = parse_accept("text/nobodyKnowsThis")
    assert not only.matches("application/sdp")
    assert parse_accept("") == []
    wild = parse_accept("application/*;q=0.5, */*;q=0.1")
    assert wild[0].matches("application/SDP") and not wild[0].matches("text/plain")
    assert wild[1].matches("text/plain") and wild[0].param("q") == "0.5"


def test_content_type() -> None:
    ctype = ContentType.parse("multipart/mixed;boundary=7a9cbec02ceef655")  # mpart01
    assert ctype.mime_type == "multipart/mixed" and ctype.param("boundary") == "7a9cbec02ceef655"
    quoted = ContentType.parse('Application/SDP ; charset="UTF-8"')
    assert quoted.mime_type == "application/sdp" and quoted.param("charset") == "UTF-8"
    assert str(quoted) == 'Application/SDP;charset="UTF-8"'
    assert ContentType.parse("application/unknownformat").subtype == "unknownformat"  # invut


@pytest.mark.parametrize(
    "value", ["application", "application/", "/sdp", "application/sdp;", "a/b c", "a/b, c/d", ""]
)
def test_malformed_content_type(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        ContentType.parse(value)


# --- Event / Subscription-State (RFC 6665) ---------------------------------------------


def test_event() -> None:
    event = Event.parse("presence.winfo;id=12;foo")
    assert event.package == "presence.winfo"
    assert event.event_package == "presence" and event.templates == ("winfo",)
    assert event.id == "12" and event.param("foo") is None
    assert event.matches(Event.parse("presence.winfo ; id=12"))
    assert not event.matches(Event.parse("presence.winfo"))
    assert str(Event("dialog")) == "dialog"


@pytest.mark.parametrize("value", ["", ".presence", "presence.", "pres ence", "presence;", "a..b"])
def test_malformed_event(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Event.parse(value)


def test_subscription_state() -> None:
    state = SubscriptionState.parse("Terminated;reason=Timeout;retry-after=30;x=1")
    assert (state.state, state.reason, state.retry_after, state.expires) == (
        "terminated",
        "timeout",
        30,
        None,
    )
    assert state.params == (("x", "1"),)
    active = SubscriptionState.parse("active;expires=3600")
    assert active.expires == 3600
    assert str(SubscriptionState(state="pending", expires=60)) == "pending;expires=60"
    assert SubscriptionState.parse(str(state)) == state


@pytest.mark.parametrize(
    "value",
    [
        "",
        "active;expires",
        "active;expires=abc",
        "active;expires=99999999999",
        "active;expires=1;expires=2",
        "terminated;reason",
        'terminated;reason="x"',
        "active pending",
    ],
)
def test_malformed_subscription_state(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        SubscriptionState.parse(value)


# --- RAck / Replaces / Session-Expires -------------------------------------------------


def test_rack() -> None:
    rack = RAck.parse("776656 1 INVITE")
    assert (rack.rseq, rack.cseq, rack.method) == (776656, 1, "INVITE")
    assert str(rack) == "776656 1 INVITE"
    for bad in (
        "776656 INVITE",
        "1 2",
        "1 2 3 4",
        "4294967296 1 INVITE",
        f"1 {CSEQ_MAX + 1} INVITE",
    ):
        with pytest.raises(RemoteProtocolError):
            RAck.parse(bad)


def test_replaces() -> None:
    """RFC 3891 §6.1 example."""
    rep = Replaces.parse("98732@sip.example.com\r\n ;from-tag=r33th4x0r\r\n ;to-tag=ff87ff")
    assert (rep.call_id, rep.to_tag, rep.from_tag, rep.early_only) == (
        "98732@sip.example.com",
        "ff87ff",
        "r33th4x0r",
        False,
    )
    early = Replaces.parse("425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only")
    assert early.early_only
    assert str(early) == "425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only"
    assert Replaces.parse(str(rep)) == rep


@pytest.mark.parametrize(
    "value",
    [
        "abc@h;to-tag=1",
        "abc@h;from-tag=1",
        "abc@h;to-tag=1;to-tag=2;from-tag=3",
        "abc@h;to-tag=1;from-tag=2;early-only=yes",
        "abc@h@x;to-tag=1;from-tag=2",
        ";to-tag=1;from-tag=2",
    ],
)
def test_malformed_replaces(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Replaces.parse(value)


def test_session_expires_and_min_se() -> None:
    se = SessionExpires.parse("1800;refresher=UAC")
    assert (se.delta, se.refresher) == (1800, "uac")
    assert str(se) == "1800;refresher=uac"
    assert SessionExpires.parse("90 ; x=y").params == (("x", "y"),)
    assert parse_min_se("90;lr") == 90
    for bad in ("", "abc", "1800;refresher=proxy", "1800;refresher", "-1"):
        with pytest.raises(RemoteProtocolError):
            SessionExpires.parse(bad)


# --- properties ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(vias())
def test_via_round_trip(via: Via) -> None:
    parsed = Via.parse(str(via))
    assert parsed == via
    assert str(parsed) == str(via)


@settings(max_examples=200, deadline=None)
@given(via_texts())
def test_via_with_arbitrary_lws_parses(text: str) -> None:
    via = Via.parse(text)
    assert Via.parse(str(via)) == via


@settings(max_examples=150, deadline=None)
@given(st.lists(vias(), min_size=1, max_size=4), st.sampled_from([",", " , ", ",\r\n "]))
def test_via_list_round_trip(values: list[Via], sep: str) -> None:
    assert Via.parse_list(sep.join(map(str, values))) == values


@settings(max_examples=200, deadline=None)
@given(cseqs())
def test_cseq_round_trip(cseq: CSeq) -> None:
    assert CSeq.parse(str(cseq)) == cseq


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**30), st.integers(0, 5))
def test_int_header_range(value: int, zeros: int) -> None:
    text = "0" * zeros + str(value)
    if value <= DELTA_SECONDS_MAX:
        assert parse_expires(text) == value
    else:
        with pytest.raises(RemoteProtocolError):
            parse_expires(text)


PARSERS: list[Callable[[str], Any]] = [
    Via.parse,
    Via.parse_list,
    CSeq.parse,
    ContentType.parse,
    parse_accept,
    Event.parse,
    SubscriptionState.parse,
    RAck.parse,
    parse_rseq,
    Replaces.parse,
    SessionExpires.parse,
    parse_min_se,
    parse_option_tags,
    parse_allow,
    parse_max_forwards,
    parse_expires,
    parse_content_length,
]

_FUZZ_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=NASTY + "SIP/2.0UDP0123;branch=received"),
    mutations(via_texts()),
    mutations(cseqs().map(str)),
    mutations(
        st.sampled_from(
            [
                "active;expires=3600;reason=timeout",
                "abc@h;to-tag=1;from-tag=2;early-only",
                "1800;refresher=uac",
                "presence.winfo;id=1",
                "application/sdp;charset=utf-8, */*",
                "776656 1 INVITE",
                "100rel, timer",
            ]
        )
    ),
    tokens(),
)


@settings(max_examples=700, deadline=None)
@given(_FUZZ_TEXT)
def test_any_text_parses_or_raises_remote_protocol_error(text: str) -> None:
    for parse in PARSERS:
        try:
            result = parse(text)
        except RemoteProtocolError as exc:
            assert exc.reason and "\r" not in exc.reason and "\n" not in exc.reason
            continue
        for value in result if isinstance(result, list) else [result]:
            str(value)
            if isinstance(value, Via):
                with contextlib.suppress(RemoteProtocolError):
                    _ = (value.received, value.rport, value.ttl, value.sent_by)
                assert Via.parse(str(value)) == value
