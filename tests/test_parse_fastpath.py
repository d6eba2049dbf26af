"""The parse fast paths agree with the general parsers.

``Address.parse``/``parse_list``/``parse_contact``, ``Via.parse``/``parse_list`` and
``CSeq.parse`` first try the common wire form (no LWS inside, simple parameters, a
plain SIP URI ...) and fall back to the general parser for everything else (see
"parse-path fast forms" in :mod:`sipwire.core.uri`).  For any text, the public parser
must give exactly what the general one gives: the same fields (compared strictly, not
with RFC 3261 §19.1.4 URI equality), the same ``str()``, ``repr()`` and hash -- or the
same error with the same reason and status hint.

The texts are drawn close to the fast forms (where the two paths meet: hyphens and
dots at host-name edges, ports around 65535, quotes and backslashes in display names,
LWS at every separator...), from the general value strategies, and mutated.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.address import Address, _parse_fast, _parse_fast_list, parse_contact
from sipwire.core.headervalues import CSeq, Via, _parse_via_fast
from sipwire.core.uri import SipURI
from strategies import addresses, cseqs, mutations, via_texts, vias

# --- strict comparison ------------------------------------------------------------------

_FIELDS: dict[type, tuple[str, ...]] = {
    SipURI: ("scheme", "user", "password", "host", "port", "params", "headers", "_text"),
    Address: ("uri", "display_name", "params"),
    Via: ("transport", "host", "port", "params", "protocol"),
    CSeq: ("seq", "method"),
}


def _fields(value: Any) -> Any:
    """A structure holding every field, recursively, with the exact types."""
    if isinstance(value, list):
        return [_fields(item) for item in value]
    names = _FIELDS.get(type(value))
    if names is None:  # tel / absolute URIs (never built by a fast path), "*"
        return (type(value).__name__, repr(value), str(value))
    return (
        type(value).__name__,
        tuple((name, _fields(getattr(value, name))) for name in names),
        str(value),
        repr(value),
        hash(value),
    )


def _outcome(parse: Any, text: str) -> Any:
    try:
        return ("ok", _fields(parse(text)))
    except RemoteProtocolError as exc:
        return ("error", type(exc), exc.reason, exc.status_hint)


def _general_contact(text: str) -> Any:
    """parse_contact without the fast path (as it was before it existed)."""
    from sipwire.core.uri import _unfold

    if _unfold(text, "Contact").strip(" \t") == "*":
        return "*"
    return Address._parse_list_general(text)


def _check_address_text(text: str) -> None:
    assert _outcome(Address.parse, text) == _outcome(Address._parse_general, text)
    assert _outcome(Address.parse_list, text) == _outcome(Address._parse_list_general, text)
    assert _outcome(parse_contact, text) == _outcome(_general_contact, text)


def _check_via_text(text: str) -> None:
    assert _outcome(Via.parse, text) == _outcome(Via._parse_general, text)
    assert _outcome(Via.parse_list, text) == _outcome(Via._parse_list_general, text)


def _check_cseq_text(text: str) -> None:
    assert _outcome(CSeq.parse, text) == _outcome(CSeq._parse_general, text)


# --- texts near the fast forms -------------------------------------------------------------

_WS = st.sampled_from(["", "", "", " ", "  ", "\t", "\r\n "])
_TOKEN = st.text("abcXYZ019-.!%*_+`'~", min_size=1, max_size=6)
# Characters where the fast forms stop: separators, quotes, escapes, controls, non-ASCII.
_EDGE = st.sampled_from(list(' \t;,:<>"\\@%[]?=&/*+#-.\x00\x7f\xe9\udc80'))


def _spiced(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """*base*, sometimes with an edge character inserted somewhere."""
    return st.one_of(
        base,
        st.tuples(base, _EDGE, st.integers(0, 20)).map(
            lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
        ),
    )


_LABEL = st.text("abcz019-_", min_size=0, max_size=5)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.sampled_from(
        ["192.0.2.1", "10.0.0.255", "256.1.1.1", "[2001:db8::1]", "[::1", "example.com.", "a..b"]
    ),
)
_PORT = st.one_of(
    st.none(),
    st.integers(0, 70000).map(str),
    st.sampled_from(["", "065535", "65535", "65536", "99999", "000001", "5o60"]),
)
_USER = st.one_of(st.none(), _spiced(st.text("alice019-_.!~*'()&=+$,;?/", max_size=8)))
_URI_PARAMS = st.lists(
    st.tuples(
        st.sampled_from(["transport", "lr", "maddr", "user", "x", "Tag", ""]),
        st.one_of(st.none(), _spiced(st.text("udp019[]/:&+$-_.!~*'()", max_size=6))),
    ),
    max_size=3,
)
_GEN_VALUE = st.one_of(
    _TOKEN,
    _HOST,
    st.sampled_from(['"quoted"', '""', '"a;b"', "x:y", "[::1]", "a=b", ""]),
)
_HEADER_PARAMS = st.lists(
    st.tuples(
        st.sampled_from(["tag", "expires", "q", "Tag", "x-y", "+sip.instance", ""]),
        st.one_of(st.none(), _GEN_VALUE),
        _WS,
    ),
    max_size=3,
)


def _render_params(params: list[tuple[str, str | None, str]]) -> str:
    return "".join(
        f"{ws};{ws}{name}" + ("" if value is None else f"{ws}={ws}{value}")
        for name, value, ws in params
    )


@st.composite
def near_fast_uris(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sip", "sips", "SIP", "tel", "http"]))
    user = draw(_USER)
    port = draw(_PORT)
    text = f"{scheme}:" + ("" if user is None else f"{user}@") + draw(_HOST)
    if port is not None:
        text += f":{port}"
    for name, value in draw(_URI_PARAMS):
        text += f";{name}" + ("" if value is None else f"={value}")
    if draw(st.integers(0, 9)) == 0:
        text += draw(st.sampled_from(["?subject=x", "?", "%41", "%4"]))
    return text


@st.composite
def near_fast_addresses(draw: st.DrawFn) -> str:
    uri = draw(near_fast_uris())
    params = _render_params(draw(_HEADER_PARAMS))
    lead, trail = draw(_WS), draw(_WS)
    if draw(st.integers(0, 4)) == 0:  # addr-spec
        return f"{lead}{uri}{params}{trail}"
    display = draw(
        st.one_of(
            st.just(""),
            st.lists(_TOKEN, min_size=1, max_size=3).flatmap(
                lambda words: st.sampled_from([" ", "  ", "\t"]).map(lambda sep: sep.join(words))
            ),
            _spiced(st.text("Alice Bob \t\xe9\u00a0", max_size=8)).map(lambda s: f'"{s}"'),
            st.sampled_from(['"a\\"b"', '"unterminated', '""', '"x"y', 'Bob"']),
        )
    )
    between = draw(_WS) if display else ""
    return f"{lead}{display}{between}<{uri}>{params}{trail}"


@st.composite
def near_fast_vias(draw: st.DrawFn) -> str:
    protocol = draw(st.sampled_from(["SIP/2.0", "SIP/2.0", "sip/2.0", "SIP/3.0"]))
    transport = draw(st.sampled_from(["UDP", "tcp", "Tls", "WSS", "X-1", "", "U;P"]))
    space = draw(st.sampled_from([" ", " ", "  ", "\t", ""]))
    text = f"{protocol}/{transport}{space}"
    text += draw(_HOST)
    port = draw(_PORT)
    if port is not None:
        text += f":{port}"
    params = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["branch", "received", "rport", "ttl", "maddr", "Branch", "RPORT", "x"]
                ),
                st.one_of(
                    st.none(),
                    st.sampled_from(["z9hG4bK776asdhds", "z9hG4bK-1.2", "a:b", "[::1]"]),
                    st.sampled_from(["192.0.2.1", "::1", "300.1.1.1", "host.example"]),
                    st.integers(0, 70000).map(str),
                    st.sampled_from(["", "0256", "255", "5060x", '"q"']),
                ),
                _WS,
            ),
            max_size=4,
        )
    )
    return text + _render_params(params) + draw(_WS)


@st.composite
def near_fast_cseqs(draw: st.DrawFn) -> str:
    number = draw(
        st.one_of(
            st.integers(0, 2**31 + 5).map(str),
            st.sampled_from(["", "0", "000000000001", "2147483647", "2147483648", "9999999999"]),
            st.sampled_from(["\u0661", "1\u00b2", "-1", "+1", "1.0"]),
        )
    )
    method = draw(
        st.sampled_from(["INVITE", "ACK", "REGISTER", "invite", "FOO", "INV ITE", "", "A;B"])
    )
    sep = draw(st.sampled_from([" ", " ", "  ", "\t", "", "\r\n "]))
    return f"{draw(_WS)}{number}{sep}{method}{draw(_WS)}"


# --- the fast paths are taken for the common forms --------------------------------------------

COMMON_ADDRESSES = [
    '"Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
    '"Bob" <sip:bob@biloxi.example.com>',
    "Bob <sip:bob@biloxi.example.com>;tag=456248",
    "<sip:alice@pc33.atlanta.example.com:5060;transport=udp>",
    "<sip:bob@192.0.2.4>;expires=7200;q=0.8",
    "<sip:proxy.biloxi.example.com;lr>",
    "sip:carol@chicago.example.com;tag=887s",
    '"Jos\xe9 \u00e1" <sips:jose@example.com:5061>',
]
COMMON_VIAS = [
    "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
    "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060;"
    "received=192.0.2.101",
    "SIP/2.0/TCP 192.0.2.4;branch=z9hG4bK-524287-1---4e1b",
    "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKyyy;rport",
]
COMMON_CSEQS = ["314159 INVITE", "1 ACK", "1826 REGISTER", "2147483647 BYE"]


@pytest.mark.parametrize("text", COMMON_ADDRESSES)
def test_common_addresses_take_the_fast_path(text: str) -> None:
    fast = _parse_fast(text)
    assert fast is not None
    assert _fields(fast) == _fields(Address._parse_general(text))
    fast_list = _parse_fast_list(f"{text} , {text}")
    assert fast_list is not None
    assert _fields(fast_list) == _fields(Address._parse_list_general(f"{text} , {text}"))


@pytest.mark.parametrize("text", COMMON_VIAS)
def test_common_vias_take_the_fast_path(text: str) -> None:
    fast = _parse_via_fast(text)
    assert fast is not None
    assert _fields(fast) == _fields(Via._parse_general(text))
    _check_via_text(f"{text}, {text}")


@pytest.mark.parametrize("text", COMMON_CSEQS)
def test_common_cseqs_parse(text: str) -> None:
    _check_cseq_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "<sip:a@-host.example.com>",  # host-name sanity: the general error
        "<sip:a@host-.example.com>",
        "<sip:a@host..example.com>",
        "<sip:a@host.example.com:65536>",
        '"a\\"b" <sip:a@b>',  # quoted-pair: general path
        "<sip:a@b>;tag=",
        "<sip:a@b>;;tag=1",
        "<sip:a@b> ;tag=1",  # LWS before ';'
        "<sip:a@b>,",
        "*",
        " * ",
        "sip:a@b,sip:c@d",
        "sip:a@b?x=y",
        "<sip:a@b>;tag=1;tag",
        "<sip:a@b>;tag=1;=2",
        "<sip:a@b>;tag=x:y;expires=[::1]",
    ],
)
def test_fast_path_boundaries_agree(text: str) -> None:
    _check_address_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP -host:5060;branch=z9hG4bK1",
        "SIP/2.0/UDP host:65536;branch=z9hG4bK1",
        "SIP/2.0/UDP host;branch=a:b",
        "SIP/2.0/UDP host;received=300.1.1.1",
        "SIP/2.0/UDP host;rport=65536",
        "SIP/2.0/UDP host;rport=",
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host;maddr=-x",
        "SIP/2.0/udp host;branch=z9hG4bK1",
        "SIP/2.0/UDP host;branch=z9hG4bK1,",
        "SIP/2.0/UDP host;branch=z9hG4bK1,,SIP/2.0/UDP h2",
        "SIP/2.0/UDP host;received=::1;ttl=256",  # a fine received, then a bad ttl
        "SIP/2.0/UDP host;received=192.0.2.1;ttl=256",
        "SIP/2.0/UDP host;rport=5060;received=192.0.2.1x",
        "SIP/2.0/UDP host;rport=65536;received=192.0.2.1",
        "SIP/2.0/UDP host;rport;branch=z9hG4bK1;received=192.0.2.256",
        "SIP/2.0/UDP host;branch=z9hG4bK1;branch=a:b",
        "SIP/2.0/UDP host;branch=z9hG4bK1;rport=;received=192.0.2.1",
    ],
)
def test_via_boundaries_agree(text: str) -> None:
    _check_via_text(text)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(near_fast_addresses())
@example("Bob\t<sip:bob@b>")
@example('"\t" <sip:a@b>')
def test_address_fast_path_agrees_near_the_fast_form(text: str) -> None:
    _check_address_text(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(near_fast_addresses(), min_size=1, max_size=3), st.sampled_from([",", " , "]))
def test_address_list_fast_path_agrees(items: list[str], sep: str) -> None:
    _check_address_text(sep.join(items))


@settings(max_examples=500, deadline=None)
@given(addresses())
def test_address_fast_path_agrees_on_generated_addresses(address: Address) -> None:
    _check_address_text(str(address))


@settings(max_examples=800, deadline=None)
@given(mutations(near_fast_addresses() | addresses().map(str)))
def test_address_fast_path_agrees_on_mutations(text: str) -> None:
    _check_address_text(text)


@settings(max_examples=1500, deadline=None)
@given(near_fast_vias())
def test_via_fast_path_agrees_near_the_fast_form(text: str) -> None:
    _check_via_text(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(near_fast_vias() | vias().map(str), min_size=1, max_size=3))
def test_via_list_fast_path_agrees(items: list[str]) -> None:
    _check_via_text(",".join(items))


@settings(max_examples=500, deadline=None)
@given(vias().map(str) | via_texts())
def test_via_fast_path_agrees_on_generated_vias(text: str) -> None:
    _check_via_text(text)


@settings(max_examples=800, deadline=None)
@given(mutations(near_fast_vias() | vias().map(str)))
def test_via_fast_path_agrees_on_mutations(text: str) -> None:
    _check_via_text(text)


@settings(max_examples=800, deadline=None)
@given(near_fast_cseqs() | cseqs().map(str) | mutations(cseqs().map(str)))
def test_cseq_fast_path_agrees(text: str) -> None:
    _check_cseq_text(text)


@settings(max_examples=800, deadline=None)
@given(near_fast_uris())
def test_sip_uri_parse_builds_what_the_constructor_builds(text: str) -> None:
    """SipURI.parse sets the fields directly: the same object the constructor makes."""
    try:
        uri = SipURI.parse(text)
    except RemoteProtocolError:
        return
    built = SipURI(
        scheme=uri.scheme,
        user=uri.user,
        password=uri.password,
        host=uri.host,
        port=uri.port,
        params=uri.params,
        headers=uri.headers,
    )
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        built.scheme,
        built.user,
        built.password,
        built.host,
        built.port,
    )
    assert (uri.params, uri.headers) == (built.params, built.headers)
    assert hash(uri) == hash(built)
    assert repr(uri) == repr(built)
    assert SipURI.parse(str(built)) == uri


# --- the parser's header index ------------------------------------------------------------


def _index_matches(msg: Any) -> bool:
    """The index the parser built (if it did) is the index of the rows; True if built."""
    headers = msg.headers
    built = headers._index
    headers._index = None
    fresh = headers._build_index()
    assert built is None or built == fresh
    assert fresh == {
        key: [value for k, _, value, _ in headers._entries if k == key]
        for key in {entry[0] for entry in headers._entries}
    }
    return built is not None


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize(
    "head",
    [
        b"v: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n",
        b"Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n  ;rport\r\nX-A: 1\r\nx-a: 2\r\n",  # folded
        b"Via: SIP/2.0/UDP a;branch=z9hG4bK1\nX-A:\t1 \n",  # bare LF line ends
    ],
)
def test_parser_index_is_the_index_of_the_rows(head: bytes, validate: bool) -> None:
    from sipwire.core.message import parse_message

    data = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        + head
        + b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\n"
        b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    if b"\r\n" not in head:
        data = data.replace(b"\r\n", b"\n")
    prebuilt = _index_matches(parse_message(data, validate=validate))
    if not validate:  # (validation looks headers up, which builds the index anyway)
        assert prebuilt == (b"\r\n " not in head)  # folded rows: built on first lookup


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.data())
def test_parser_index_of_generated_messages(validate: bool, data: st.DataObject) -> None:
    from sipwire.core.message import parse_message
    from strategies_msg import messages

    msg = data.draw(messages())
    _index_matches(parse_message(msg.to_bytes(), validate=validate))


# --- objects built by the parse paths are ordinary frozen instances ------------------------


@pytest.mark.parametrize(
    ("parse", "text", "field"),
    [
        (SipURI.parse, "sip:alice@atlanta.example.com:5060;transport=udp", "host"),
        (Address.parse, '"Alice" <sip:alice@atlanta.example.com>;tag=1', "params"),
        (Address.parse, "sip:alice@atlanta.example.com;tag=1", "uri"),
        (Via.parse, "SIP/2.0/UDP h.example.com;branch=z9hG4bK1;rport", "host"),
        (CSeq.parse, "1 INVITE", "seq"),
    ],
)
def test_parsed_objects_are_ordinary_frozen_instances(parse: Any, text: str, field: str) -> None:
    import copy
    import dataclasses
    import pickle

    value = parse(text)
    assert type(value) in (SipURI, Address, Via, CSeq)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, getattr(value, field))
    assert copy.copy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value
    rebuilt = dataclasses.replace(value)  # through the validating constructor
    assert rebuilt == value
    assert repr(rebuilt) == repr(value)
    assert hash(rebuilt) == hash(value)
    assert parse(str(value)) == value


def test_parse_on_subclasses_builds_the_subclass() -> None:
    class MyURI(SipURI):
        pass

    class MyCSeq(CSeq):
        pass

    uri = MyURI.parse("sip:a@b.example.com:5060;lr")
    assert type(uri) is MyURI
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "a",
        "b.example.com",
        5060,
        (("lr", None),),
    )
    assert str(uri) == "sip:a@b.example.com:5060;lr"
    cseq = MyCSeq.parse("7 BYE")
    assert type(cseq) is MyCSeq
    assert (cseq.seq, cseq.method) == (7, "BYE")


# --- the message's typed properties (the inlined plumbing) -----------------------------------

_HEAD = (
    "OPTIONS sip:x@example.com SIP/2.0\r\n"
    "{via}"
    "From: <sip:a@example.com>;tag=1\r\n"
    "To: <sip:x@example.com>\r\n"
    "Call-ID: c1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)
_VIA1 = "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n"


def _lazy(via: str = _VIA1, extra: str = "") -> Any:
    from sipwire.core.message import parse_message

    return parse_message(_HEAD.format(via=via, extra=extra).encode(), validate=False)


@pytest.mark.parametrize(
    ("extra", "prop", "reason"),
    [
        ("From: <sip:b@example.com>\r\n", "from_", "more than one From header"),
        ("To: <sip:b@example.com>\r\n", "to", "more than one To header"),
        ("CSeq: 2 OPTIONS\r\n", "cseq", "more than one CSeq header"),
        ("Call-ID: c2\r\n", "call_id", "more than one Call-ID header"),
        ("X-Bad line\r\n", "from_", "header line without a colon: 'X-Bad line'"),
        ("X-Bad line\r\n", "top_via", "header line without a colon: 'X-Bad line'"),
        ("X-Bad line\r\n", "contact", "header line without a colon: 'X-Bad line'"),
    ],
)
def test_typed_property_errors(extra: str, prop: str, reason: str) -> None:
    msg = _lazy(extra=extra)
    for _ in range(2):  # on the first access (headers split) and on a later one
        with pytest.raises(RemoteProtocolError) as info:
            getattr(msg, prop)
        assert info.value.reason == reason
        assert info.value.status_hint == 400


def test_missing_headers() -> None:
    from sipwire.core.message import Request

    msg = Request("OPTIONS", "sip:x@example.com")
    for prop, name in [("top_via", "Via"), ("from_", "From"), ("to", "To"), ("cseq", "CSeq")]:
        with pytest.raises(RemoteProtocolError, match=f"missing {name} header"):
            getattr(msg, prop)
    assert msg.via == []
    assert msg.contact == []
    assert not msg.contact_is_star


def test_via_and_top_via_share_objects_in_any_order() -> None:
    msg = _lazy(via=_VIA1 + "Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n")
    top = msg.top_via
    assert msg.via[0] is top
    assert [v.host for v in msg.via] == ["a.example.com", "b.example.com"]
    msg = _lazy(via=_VIA1 + "Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n")
    vias = msg.via
    assert msg.top_via is vias[0]
    msg = _lazy(via="Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b\r\n")
    assert msg.top_via.branch == "z9hG4bK1"
    assert [v.host for v in msg.via] == ["a.example.com", "b"]


def test_contact_forms() -> None:
    msg = _lazy(extra="Contact: *\r\n")
    assert msg.contact == [] and msg.contact_is_star
    msg = _lazy(extra="Contact: <sip:a@h1>, <sip:b@h2>;q=0.5\r\nm: sip:c@h3\r\n")
    assert [str(c.uri) for c in msg.contact] == ["sip:a@h1", "sip:b@h2", "sip:c@h3"]
    msg = _lazy(extra="Contact: *\r\nContact: <sip:a@h1>\r\n")
    with pytest.raises(RemoteProtocolError, match=r"Contact: \* must be the only"):
        msg.contact  # noqa: B018


def test_changed_headers_drop_cached_values() -> None:
    msg = _lazy()
    assert msg.from_.tag == "1" and msg.cseq.seq == 1 and msg.top_via.branch == "z9hG4bK1"
    msg.headers.set("From", "<sip:a@example.com>;tag=2")
    msg.headers.set("CSeq", "2 OPTIONS")
    msg.headers.insert_first("Via", "SIP/2.0/UDP p.example.com;branch=z9hG4bKp")
    assert msg.from_.tag == "2" and msg.cseq.seq == 2 and msg.top_via.branch == "z9hG4bKp"
    assert [v.branch for v in msg.via] == ["z9hG4bKp", "z9hG4bK1"]
