"""sipwire.core.uri: SIP/SIPS (RFC 3261 §19.1), tel (RFC 3966), other schemes.

Header values quoted from the RFC 4475 / RFC 5118 torture messages name the file
they come from (see /work/shared/torture/*/INDEX.md).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.uri import (
    AbsoluteURI,
    SipURI,
    TelURI,
    parse_uri,
    quote_string,
    unescape,
    unquote_string,
)
from strategies import NASTY, absolute_uris, mutations, sip_uris, tel_uris, uris


def fields(value: Any) -> tuple[Any, ...]:
    """The public dataclass fields, for exact (not RFC-equality) comparison."""
    return tuple(
        getattr(value, f.name) for f in dataclasses.fields(value) if not f.name.startswith("_")
    )


# --- parsing: components as written ----------------------------------------------------


def test_full_sip_uri_components() -> None:
    uri = SipURI.parse("sips:%61lice:secret@[2001:db8::1]:5061;transport=TCP;lr?subject=x%20y&a=b")
    assert uri.scheme == "sips"
    assert uri.user == "%61lice"
    assert uri.user_unescaped == "alice"
    assert uri.password == "secret"
    assert uri.host == "[2001:db8::1]"
    assert uri.port == 5061
    assert uri.params == (("transport", "TCP"), ("lr", None))
    assert uri.headers == (("subject", "x%20y"), ("a", "b"))
    assert uri.transport == "tcp"
    assert uri.lr
    assert uri.host_port == "[2001:db8::1]:5061"
    assert uri.is_secure


def test_semicolon_in_user_part_semiuri() -> None:
    """RFC 4475 §3.1.1.9 semiuri: the user part is ``user;par=u%40example.net``."""
    uri = SipURI.parse("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == ()


def test_esc01_request_uri_and_to() -> None:
    """RFC 4475 §3.1.1.3 esc01: escapes in user parts are kept as written."""
    ruri = SipURI.parse("sip:sips%3Auser%40example.com@example.net")
    assert ruri.user == "sips%3Auser%40example.com"
    assert ruri.user_unescaped == "sips:user@example.com"
    assert ruri.host == "example.net"
    to = SipURI.parse("sip:%75se%72@example.com")
    assert to == SipURI.parse("sip:user@example.com")


def test_esc01_escaped_param_names_and_no_recursive_unescape() -> None:
    """esc01 Contact: ``;%6C%72`` is the lr parameter; ``v%61lue%25%34%31`` is
    ``value%41``, NOT ``valueA`` (no recursive unescaping)."""
    contact = SipURI.parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert contact.lr
    assert contact.param("name") == "v%61lue%25%34%31"
    assert unescape(contact.param("name") or "") == "value%41"
    assert contact != SipURI.parse("sip:caller@host5.example.net;lr;name=valueA")
    assert contact == SipURI.parse("sip:caller@host5.example.net;lr;name=value%2541")
    assert SipURI.parse("sip:a@h;x=value%41") == SipURI.parse("sip:a@h;x=valueA")


def test_unescape_once_only() -> None:
    assert unescape("%2541") == "%41"
    assert unescape("value%41") == "valueA"
    assert unescape("a%C3%A9b") == "a\u00e9b"
    assert unescape("%FF") == "\udcff"  # not UTF-8: surrogate-escaped, nothing lost


def test_escaped_nul_does_not_shorten_escnull() -> None:
    """RFC 4475 §3.1.1.4 escnull: ``%00`` must not shorten the user name; the two
    Contacts ``%00`` and ``%00%00`` are different bindings."""
    to = SipURI.parse("sip:null-%00-null@example.com")
    assert to.user_unescaped == "null-\x00-null"
    assert len(to.user_unescaped) == 11
    assert to.aor() == "sip:null-\x00-null@example.com"
    one = SipURI.parse("sip:%00@host5.example.com")
    two = SipURI.parse("sip:%00%00@host5.example.com")
    assert one != two
    assert len({one, two}) == 2


def test_intmeth_unusual_user_and_password() -> None:
    """RFC 4475 §3.1.1.2 intmeth: every user/password character the grammar allows."""
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    uri = SipURI.parse(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


def test_route_with_unknown_params_wsinv() -> None:
    """RFC 4475 §3.1.1.1 wsinv Route URI."""
    uri = SipURI.parse("sip:services.example.com;lr;unknownwith=value;unknown-no-value")
    assert uri.lr
    assert uri.param("unknownwith") == "value"
    assert uri.has_param("unknown-no-value")
    assert uri.param("unknown-no-value") is None
    assert not uri.has_param("absent")


def test_uri_headers_regescrt() -> None:
    """RFC 4475 §3.3.14 regescrt / §3.1.2.11 escruri: an escaped Route header in a URI."""
    uri = SipURI.parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    assert uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert unescape(uri.headers[0][1]) == "<sip:sip.example.com>"
    assert uri.without_headers() == SipURI.parse("sip:user@example.com")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),  # RFC 5118 §4.1 ipv6-good
        ("sip:caller@[2001:db8::1]", "[2001:db8::1]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),  # §4.4 port-unambiguous
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # §4.3 port-ambiguous
        ("sip:ted@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),  # §4.9 ipv4-mapped
        ("sip:user@[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),  # §4.10
        ("sip:user@[2001:db8:::192.0.2.1]", "[2001:db8:::192.0.2.1]", None),  # §4.10 bug
    ],
)
def test_ipv6_references_rfc5118(text: str, host: str, port: int | None) -> None:
    uri = SipURI.parse(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_three_colon_ipv6_equals_two_colon_form() -> None:
    """RFC 5118 §4.10: tolerate ``:::`` and treat it as the correct ``::`` form."""
    assert SipURI.parse("sip:user@[2001:db8:::192.0.2.1]") == SipURI.parse(
        "sip:user@[2001:db8::192.0.2.1]"
    )


def test_ipv6_hosts_compare_by_address() -> None:
    a = SipURI.parse("sip:u@[2001:DB8:0:0::1]")
    b = SipURI.parse("sip:u@[2001:db8::1]")
    assert a == b
    assert hash(a) == hash(b)


# --- rejection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sip:user@example.com; lr", "whitespace"),  # RFC 4475 §3.1.2.8 lwsruri
        ("sip:user@example.com;\tlr", "whitespace"),
        ("<sip:user@example.com>", "'<'"),  # §3.1.2.7 ltgtruri (brackets kept by caller)
        ("sip:2001:db8::10", "IPv6"),  # RFC 5118 §4.2 ipv6-bad
        ("sip:user@example.com:65536", "port"),
        ("sip:user@example.com:99999999999999999999999", "port"),
        ("sip:user@", "empty host"),
        ("sip:", "empty"),
        ("sip:@example.com", "user"),
        ("sip:a@b@c", "'@'"),
        ("sip:user@[2001:db8::1", "IPv6"),
        ("sip:user@[2001:db8::1::2]", "IPv6"),
        ("sip:user@[example.com]", "IPv6"),
        ("sip:us%G0er@example.com", "%"),
        ("sip:user@example.com;", "param"),
        ("sip:user@example.com;;lr", "param"),
        ("sip:user@example.com?", "param"),
        ("sip:user@exa mple.com", "whitespace"),
        ("sip:user@-example.com", "host"),
        ("sip:user@example..com", "host"),
        ("sip:us\u00e9r@example.com", ""),
    ],
)
def test_malformed_sip_uris_rejected_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400
    assert why in info.value.reason
    assert "\n" not in info.value.reason


def test_sip_parse_of_other_scheme_is_416() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipURI.parse("tel:+12015550123")
    assert info.value.status_hint == 416


# --- RFC 3261 §19.1.4 comparison -------------------------------------------------------

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("SIP:alice@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=239.255.255.1", "sip:alice@atlanta.com;MADDR=239.255.255.1"),
    ("sip:a%3bb@h", "sip:a%3Bb@h"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice:pw@atlanta.com"),
    ("sip:atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;user=ip"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;ttl=1"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;method=INVITE"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=239.255.255.1"),
    ("sip:a%3Bb@h", "sip:a;b@h"),  # ';' is reserved: its escape is not equivalent
    ("sip:a@h?x=1", "sip:a@h?x=1&y=2"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    left, right = SipURI.parse(a), SipURI.parse(b)
    assert left == right
    assert right == left
    assert hash(left) == hash(right)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_not_equivalent_uris(a: str, b: str) -> None:
    left, right = SipURI.parse(a), SipURI.parse(b)
    assert left != right
    assert right != left


def test_equality_is_not_transitive_as_the_rfc_says() -> None:
    plain = SipURI.parse("sip:carol@chicago.com")
    on = SipURI.parse("sip:carol@chicago.com;security=on")
    off = SipURI.parse("sip:carol@chicago.com;security=off")
    assert plain == on and plain == off and on != off
    assert hash(plain) == hash(on) == hash(off)


def test_sip_uri_is_not_equal_to_other_types() -> None:
    assert SipURI.parse("sip:a@b") != "sip:a@b"
    assert SipURI.parse("sip:a@b") != AbsoluteURI.parse("foo:a@b")


def test_absolute_uri_refuses_the_typed_schemes() -> None:
    with pytest.raises(RemoteProtocolError):
        AbsoluteURI.parse("sip:a@b")
    with pytest.raises(LocalProtocolError):
        AbsoluteURI(scheme="tel", opaque="+1")


# --- accessors and copies --------------------------------------------------------------


def test_param_lookup_is_case_insensitive_and_none_for_valueless() -> None:
    uri = SipURI.parse("sip:h;Transport=UDP;LR;maddr=10.0.0.1;user=Phone")
    assert uri.param("transport") == "UDP"
    assert uri.transport == "udp"
    assert uri.param("lr") is None and uri.has_param("lr") and uri.lr
    assert uri.maddr == "10.0.0.1"
    assert uri.user_param == "phone"
    assert SipURI.parse("sip:h").transport is None


def test_with_and_without_param() -> None:
    uri = SipURI.parse("sip:alice@example.com;transport=udp")
    changed = uri.with_param("Transport", "tcp").with_param("lr")
    assert str(changed) == "sip:alice@example.com;transport=tcp;lr"
    assert str(changed.without_param("TRANSPORT")) == "sip:alice@example.com;lr"
    assert str(uri) == "sip:alice@example.com;transport=udp"  # unchanged original


def test_replace_revalidates() -> None:
    uri = SipURI.parse("sip:alice@example.com")
    assert str(uri.replace(port=5070, scheme="sips")) == "sips:alice@example.com:5070"
    with pytest.raises(LocalProtocolError):
        uri.replace(port=70000)
    with pytest.raises(LocalProtocolError):
        uri.replace(host="")


def test_str_keeps_the_original_spelling_of_parsed_uris() -> None:
    text = "SIP:Alice@Example.COM:05060;Transport=UDP"
    uri = SipURI.parse(text)
    assert str(uri) == text
    assert uri.scheme == "sip" and uri.port == 5060
    assert str(uri.with_param("lr")) == "sip:Alice@Example.COM:5060;Transport=UDP;lr"


def test_aor_is_canonical() -> None:
    """RFC 3261 §10.3 step 5: params removed, escapes decoded; host case-folded."""
    assert SipURI.parse("sip:%61lice@AtLanta.com:5070;transport=tcp").aor() == (
        "sip:alice@atlanta.com"
    )
    assert SipURI.parse("sips:example.com").aor() == "sips:example.com"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": ""},
        {"host": "a b"},
        {"host": "2001:db8::1"},
        {"host": "h", "scheme": "tel"},
        {"host": "h", "user": "a b"},
        {"host": "h", "user": "a@b"},
        {"host": "h", "password": "pw"},
        {"host": "h", "port": -1},
        {"host": "h", "params": (("a;b", None),)},
        {"host": "h", "params": (("a", "x y"),)},
        {"host": "h", "headers": (("a", "x&y"),)},
    ],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        SipURI(**kwargs)


def test_constructed_uri_renders() -> None:
    uri = SipURI(
        user="bob",
        host="[2001:db8::2]",
        port=5060,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("Subject", "hi%20there"),),
    )
    assert str(uri) == "sip:bob@[2001:db8::2]:5060;transport=tcp;lr?Subject=hi%20there"


# --- tel URIs (RFC 3966) ---------------------------------------------------------------


def test_tel_global_and_local() -> None:
    glob = TelURI.parse("tel:+1-201-555-0123;ext=1234")
    assert glob.is_global and glob.digits == "+12015550123" and glob.extension == "1234"
    local = TelURI.parse("tel:7042;phone-context=example.com")
    assert not local.is_global and local.phone_context == "example.com"
    assert str(local) == "tel:7042;phone-context=example.com"
    assert parse_uri("tel:863-1234;phone-context=+1-914-555") == TelURI.parse(
        "tel:8631234;phone-context=+1914555"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+1-201-555-0123", "tel:+12015550123"),
        ("tel:+1(201)555.0123", "tel:+12015550123"),
        ("tel:7042;phone-context=Example.COM", "tel:7042;phone-context=example.com"),
        ("tel:+1234;a=1;b=2", "tel:+1234;B=2;A=1"),
        ("TEL:+1234;isub=ABC", "tel:+1234;isub=abc"),
        ("tel:12ab;phone-context=x.org", "tel:12AB;phone-context=x.org"),
    ],
)
def test_tel_equivalent_rfc3966_section4(a: str, b: str) -> None:
    left, right = TelURI.parse(a), TelURI.parse(b)
    assert left == right and hash(left) == hash(right)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+1234", "tel:1234;phone-context=+1"),  # global vs local
        ("tel:+1234", "tel:+1235"),
        ("tel:+1234", "tel:+1234;ext=1"),  # a parameter in only one
        ("tel:7042;phone-context=a.com", "tel:7042;phone-context=b.com"),
    ],
)
def test_tel_not_equivalent(a: str, b: str) -> None:
    assert TelURI.parse(a) != TelURI.parse(b)


@pytest.mark.parametrize(
    "text",
    ["tel:", "tel:+", "tel:+-", "tel:---", "tel:+12 34", "tel:+1;=x", "tel:+1;a=", "tel:+1;"],
)
def test_tel_malformed(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)


def test_tel_without_phone_context_is_tolerated() -> None:
    """RFC 3966 §5.1.5 wants a phone-context on local numbers; ``tel:911`` is accepted."""
    uri = TelURI.parse("tel:911")
    assert uri.phone_context is None and uri.digits == "911"


# --- other schemes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme"),  # unkscm
        ("soap.beep://192.0.2.103:3002", "soap.beep"),  # novelsc
        ("im:user@example.com", "im"),
        ("isbn:2983792873", "isbn"),  # unksm2
        ("http://www.example.com", "http"),  # unksm2
        ("name:John_Smith", "name"),  # unksm2
        ("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "urn"),
    ],
)
def test_absolute_uris_are_opaque(text: str, scheme: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert uri.scheme == scheme
    assert str(uri) == text
    assert uri == AbsoluteURI.parse(text.replace(text.split(":", maxsplit=1)[0], scheme.upper(), 1))


@pytest.mark.parametrize(
    "text", ["", ":x", "foo:", "1foo:bar", "foo bar:x", "foo:a b", "foo:<x>", 'foo:a"b', "x"]
)
def test_absolute_uri_malformed(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)


# --- quoted strings --------------------------------------------------------------------


def test_quote_unquote() -> None:
    assert quote_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert unquote_string('"a \\"b\\" \\\\c"') == 'a "b" \\c'
    assert unquote_string("token") == "token"
    assert quote_string("BEL:\x07") == '"BEL:\\\x07"'
    with pytest.raises(LocalProtocolError):
        quote_string("a\r\nb")


# --- properties ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(uris())
def test_round_trip(uri: SipURI | TelURI | AbsoluteURI) -> None:
    """parse(str(x)) gives back exactly the same fields and renders identically."""
    parsed = parse_uri(str(uri))
    assert type(parsed) is type(uri)
    assert fields(parsed) == fields(uri)
    assert parsed == uri and hash(parsed) == hash(uri)
    assert str(parsed) == str(uri)


def _case_variant(uri: SipURI, flips: list[bool]) -> str:
    """Same URI with host/param case flipped and unreserved user chars escaped: equal
    per RFC 3261 §19.1.4."""
    flip = iter(flips * 50)
    user = None
    if uri.user is not None:
        # escape some alphanumerics outside existing escapes (lower-case hex on purpose)
        user = re.sub(
            r"%[0-9A-Fa-f]{2}|[A-Za-z0-9]",
            lambda m: (
                f"%{ord(m.group()):02x}" if len(m.group()) == 1 and next(flip, False) else m.group()
            ),
            uri.user,
        )
    return str(
        SipURI(
            scheme=uri.scheme,
            user=user,
            password=uri.password,
            host=uri.host.upper() if next(flip, False) else uri.host,
            port=uri.port,
            params=tuple(
                (k.upper(), v.upper() if v is not None and "%" not in v else v)
                if next(flip, False)
                else (k, v)
                for k, v in uri.params
            ),
            headers=tuple(reversed(uri.headers)),
        )
    )


@settings(max_examples=300, deadline=None)
@given(sip_uris(), st.lists(st.booleans(), min_size=1, max_size=8))
def test_equal_variants_hash_equal(uri: SipURI, flips: list[bool]) -> None:
    variant = SipURI.parse(_case_variant(uri, flips))
    assert variant == uri
    assert hash(variant) == hash(uri)


@settings(max_examples=200, deadline=None)
@given(sip_uris(), st.sampled_from(["loose", "strict", "port", "scheme", "header"]))
def test_which_differences_matter(uri: SipURI, change: str) -> None:
    """§19.1.4: a parameter present in only one URI is ignored unless it is transport,
    user, ttl, method or maddr; port, scheme and URI headers always count."""
    names = {k.lower() for k, _ in uri.params}
    if change == "loose":
        other, expected = uri.with_param("x-unlisted-param", "1"), True
    elif change == "strict":
        missing = [n for n in ("ttl", "method", "user", "transport", "maddr") if n not in names]
        if not missing:
            return
        other, expected = uri.with_param(missing[0], "1"), False
    elif change == "port":
        other, expected = uri.replace(port=1 if uri.port != 1 else 2), False
    elif change == "scheme":
        other, expected = uri.replace(scheme="sips" if uri.scheme == "sip" else "sip"), False
    else:
        other, expected = uri.replace(headers=(*uri.headers, ("X-Extra", "1"))), False
    assert (other == uri) is expected
    assert (uri == other) is expected
    if expected:
        assert hash(other) == hash(uri)


@settings(max_examples=200, deadline=None)
@given(tel_uris())
def test_tel_separators_do_not_matter(uri: TelURI) -> None:
    stripped = uri.replace(number=uri.digits)
    assert stripped == uri and hash(stripped) == hash(uri)


@settings(max_examples=200, deadline=None)
@given(absolute_uris())
def test_absolute_round_trip(uri: AbsoluteURI) -> None:
    assert parse_uri(str(uri)) == uri


_FUZZ_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=NASTY + "sipt:el+0123ab.[]"),
    mutations(uris().map(str)),
)


@settings(max_examples=800, deadline=None)
@given(_FUZZ_TEXT)
def test_any_text_parses_or_raises_remote_protocol_error(text: str) -> None:
    for parse in (parse_uri, SipURI.parse, TelURI.parse, AbsoluteURI.parse):
        try:
            uri = parse(text)
        except RemoteProtocolError as exc:
            assert exc.reason and "\r" not in exc.reason and "\n" not in exc.reason
            continue
        str(uri)
        hash(uri)
        assert uri == parse_uri(str(uri))
        if isinstance(uri, SipURI):
            uri.aor()
            _ = uri.user_unescaped, uri.transport, uri.host_port
