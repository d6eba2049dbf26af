"""sipwire.core.headers: the ordered, case-insensitive, raw-preserving multimap (RFC 3261 §7.3)."""

from __future__ import annotations

import pytest

from sipwire.core._errors import LocalProtocolError
from sipwire.core.headers import (
    COMPACT_FORMS,
    Headers,
    canonical_name,
    header_key,
    is_list_header,
    split_header_list,
)
from sipwire.core.message import parse_message

# -- names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compact", "long"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("a", "Accept-Contact"),
        ("j", "Reject-Contact"),
        ("d", "Request-Disposition"),
        ("n", "Identity-Info"),
    ],
)
def test_compact_forms(compact: str, long: str) -> None:
    assert COMPACT_FORMS[compact] == long
    assert canonical_name(compact) == long
    assert canonical_name(compact.upper()) == long
    assert header_key(compact) == long.lower()
    h = Headers([(compact.upper(), "x")])
    assert h.get(long) == "x"
    assert h.get(long.upper()) == "x"
    assert long in h and compact in h


def test_canonical_name_spelling() -> None:
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("CSEQ") == "CSeq"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("X-Custom-Thing") == "X-Custom-Thing"  # unknown: as given


# -- reading ------------------------------------------------------------------------


def test_order_and_names_kept_as_written() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("Subject", "hi"), ("VIA", "SIP/2.0/UDP b")])
    assert list(h) == [("v", "SIP/2.0/UDP a"), ("Subject", "hi"), ("VIA", "SIP/2.0/UDP b")]
    assert h.names() == ["v", "Subject", "VIA"]
    assert h.values("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert h.get("via") == "SIP/2.0/UDP a"
    assert h.count("V") == 2
    assert len(h) == 3


def test_get_missing_and_default() -> None:
    h = Headers()
    assert h.get("To") is None
    assert h.get("To", "dflt") == "dflt"
    assert h.get_all("Route") == []
    assert "To" not in h
    assert 42 not in h


def test_get_all_splits_list_headers_outside_quotes_and_angles() -> None:
    h = Headers(
        [
            ("Contact", '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>'),
            ("Contact", "<sip:e@f>"),
            ("Route", "<sip:p1;lr>,<sip:p2;lr>"),
            ("Supported", "timer, 100rel,replaces"),
        ]
    )
    assert h.get_all("m") == ['"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>", "<sip:e@f>"]
    assert h.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert h.get_all("Supported") == ["timer", "100rel", "replaces"]


@pytest.mark.parametrize(
    "name",
    [
        "WWW-Authenticate",
        "Authorization",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Date",
        "Subject",
        "Call-ID",
        "Organization",
        "User-Agent",
        "Server",
        "Retry-After",
        "X-Unknown",
    ],
)
def test_get_all_never_splits_non_list_headers(name: str) -> None:
    value = 'Digest realm="a, b", nonce="x", qop=auth, Sat, 13 Nov 2010'
    h = Headers([(name, value), (name, "second")])
    assert not is_list_header(name)
    assert h.get_all(name) == [value, "second"]


def test_split_header_list_edge_cases() -> None:
    assert split_header_list("") == []
    assert split_header_list(" , ,") == []
    assert split_header_list('"a\\", b", c') == ['"a\\", b"', "c"]  # escaped quote
    assert split_header_list("<sip:a,b>;p=1 , x") == ["<sip:a,b>;p=1", "x"]


def test_equality_is_name_value_sequence() -> None:
    a = Headers([("To", "<sip:a@b>"), ("From", "<sip:c@d>")])
    b = Headers([("To", "<sip:a@b>"), ("From", "<sip:c@d>")])
    assert a == b
    assert a != Headers([("From", "<sip:c@d>"), ("To", "<sip:a@b>")])  # order matters
    assert a != Headers([("to", "<sip:a@b>"), ("From", "<sip:c@d>")])  # names as written
    assert a != object()


# -- writing ------------------------------------------------------------------------


def test_add_set_remove_insert_first_bump_version() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:x@y>"), ("Via", "SIP/2.0/UDP b")])
    v0 = h.version
    h.insert_first("Via", "SIP/2.0/UDP new")
    assert h.values("Via") == ["SIP/2.0/UDP new", "SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert h.names()[0] == "Via"
    h.set("v", "SIP/2.0/UDP only")
    assert h.values("Via") == ["SIP/2.0/UDP only"]
    assert h.items() == [("v", "SIP/2.0/UDP only"), ("To", "<sip:x@y>")]
    h.add("Route", "<sip:r;lr>")
    assert h.items()[-1] == ("Route", "<sip:r;lr>")
    assert h.remove("route") == 1
    assert h.remove("route") == 0
    assert h.version > v0


def test_insert_first_without_existing_goes_to_top() -> None:
    h = Headers([("To", "<sip:x@y>")])
    h.insert_first("Record-Route", "<sip:p;lr>")
    assert h.names() == ["Record-Route", "To"]


def test_set_same_value_keeps_row_and_version() -> None:
    h = Headers([("Max-Forwards", "70")])
    v = h.version
    h.set("Max-Forwards", "70")
    assert h.version == v


def test_pop_first_value_of_a_comma_list_row() -> None:
    h = Headers([("Route", "<sip:p1;lr>, <sip:p2;lr>"), ("Route", "<sip:p3;lr>")])
    assert h.pop_first("Route") == "<sip:p1;lr>"
    assert h.get_all("Route") == ["<sip:p2;lr>", "<sip:p3;lr>"]
    assert h.pop_first("Route") == "<sip:p2;lr>"
    assert h.pop_first("Route") == "<sip:p3;lr>"
    assert h.pop_first("Route") is None
    assert "Route" not in h


def test_replace_first_splits_a_comma_row() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    h.replace_first("Via", "SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1")
    assert h.get_all("Via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1",
        "SIP/2.0/UDP b;branch=z9hG4bK2",
    ]
    with pytest.raises(LocalProtocolError):
        h.replace_first("Route", "<sip:x>")


def test_copy_is_independent() -> None:
    h = Headers([("To", "<sip:a@b>")])
    c = h.copy()
    c.add("From", "<sip:c@d>")
    assert "From" not in h and "From" in c


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Bad Name", "x"),
        ("", "x"),
        ("Na:me", "x"),
        ("X-Inject", "a\r\nVia: evil"),
        ("X-Inject", "a\nb"),
    ],
)
def test_invalid_names_and_values_are_local_errors(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add(name, value)
    with pytest.raises(LocalProtocolError):
        Headers([(name, value)])


# -- wire behaviour (parsed through parse_message) -----------------------------------


def _parse_headers(head: bytes) -> Headers:
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + head + b"\r\n"
    return parse_message(data, validate=False).headers


def test_folding_unfolds_to_single_space_and_keeps_raw() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\n"
        b"Subject: I know you're there,\r\n"
        b"         pick up the phone\r\n"
        b"\tand talk to me!\r\n"
        b"X-Empty-First:\r\n  value\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data, validate=False)
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert msg.headers.get("X-Empty-First") == "value"
    assert msg.to_bytes() == data
    msg.headers.add("X-New", "1")  # changed: the folded rows stay byte for byte
    out = msg.to_bytes()
    assert b"Subject: I know you're there,\r\n         pick up the phone\r\n\tand talk" in out
    assert out.endswith(b"X-New: 1\r\n\r\n")


def test_whitespace_around_colon_and_empty_values() -> None:
    h = _parse_headers(b"Subject   :   lunch  \r\nX-Empty:\r\nX-Tab:\tv\r\n")
    assert h.items()[:3] == [("Subject", "lunch"), ("X-Empty", ""), ("X-Tab", "v")]


def test_unknown_headers_kept_byte_for_byte() -> None:
    raw = b"NewFangledHeader:   newfangled value\r\nX-Weird: ;;,,;;,;\r\n"
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + raw + b"Content-Length: 0\r\n\r\n"
    msg = parse_message(data, validate=False)
    assert msg.headers.get("X-Weird") == ";;,,;;,;"
    assert msg.headers.get_all("X-Weird") == [";;,,;;,;"]
    msg.headers.set("Max-Forwards", "70")
    assert raw in msg.to_bytes()


def test_non_utf8_octets_round_trip() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nX-Bin: \xff\xfe\x80 ok\r\nContent-Length: 0\r\n\r\n"
    msg = parse_message(data, validate=False)
    value = msg.headers.get("X-Bin")
    assert value is not None
    assert value.encode("utf-8", "surrogateescape") == b"\xff\xfe\x80 ok"
    msg.headers.add("X-Other", "1")
    assert b"X-Bin: \xff\xfe\x80 ok\r\n" in msg.to_bytes()
