"""sipwire.core.address: name-addr / addr-spec values (RFC 3261 §20.10, §25.1).

Values quoted from RFC 4475 torture messages name their file (see
/work/shared/torture/rfc4475/INDEX.md); line folding is kept as in the message.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address, parse_contact
from sipwire.core.uri import AbsoluteURI, SipURI, TelURI, quote_string
from strategies import NASTY, addresses, mutations

# --- accepted values -------------------------------------------------------------------


def test_name_addr_with_tag() -> None:
    addr = Address.parse('"Alice" <sip:alice@atlanta.com>;tag=1928301774')
    assert addr.display_name == "Alice"
    assert addr.uri == SipURI.parse("sip:alice@atlanta.com")
    assert addr.tag == "1928301774"
    assert str(addr) == '"Alice" <sip:alice@atlanta.com>;tag=1928301774'


def test_wsinv_to_with_lws_around_separators() -> None:
    """RFC 4475 §3.1.1.1 wsinv ``TO :`` value (addr-spec, SWS around ';' and '=')."""
    addr = Address.parse("\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert addr.uri == SipURI.parse("sip:vivekg@chair-dnrc.example.com")
    assert addr.display_name is None
    assert addr.tag == "1918181833n"


def test_wsinv_from_quoted_pairs_and_folding() -> None:
    """wsinv ``from``: display name ``J Rosenberg \\"`` (escaped backslash and quote)."""
    addr = Address.parse(
        '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8'
    )
    assert addr.display_name == 'J Rosenberg \\"'
    assert addr.tag == "98asjd8"
    assert Address.parse(str(addr)) == addr


def test_wsinv_contact_params() -> None:
    """wsinv ``m:`` (compact Contact) with folded params and a q value."""
    [addr] = Address.parse_list(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
        "      newvalue ;\r\n  secondparam ; q = 0.33"
    )
    assert addr.display_name == 'Quoted string ""'
    assert addr.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert addr.q == pytest.approx(0.33)


def test_no_lws_between_display_name_and_laquot_lwsdisp() -> None:
    """RFC 4475 §3.1.1.6 lwsdisp: ``caller<sip:caller@example.com>`` is accepted."""
    addr = Address.parse("caller<sip:caller@example.com>;tag=323")
    assert addr.display_name == "caller"
    assert addr.tag == "323"


def test_token_display_name_intmeth() -> None:
    """RFC 4475 §3.1.1.2 intmeth From: several tokens, an odd param, a UTF-8 quoted value."""
    value = (
        "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;"
        "fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\";"
        "tag=_token~1'+`*%!-."
    )
    addr = Address.parse(value)
    assert addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert addr.param_unquoted("fromParam''~+*_!.-%") == (
        "\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"
    )
    assert addr.tag == "_token~1'+`*%!-."


def test_control_characters_as_quoted_pairs_intmeth() -> None:
    """intmeth To: ``"BEL:\\<07> NUL:\\<00> DEL:\\<7F>"`` and a URI with odd user chars."""
    addr = Address.parse(
        '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
        "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>"
    )
    assert addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert Address.parse(str(addr)) == addr


def test_percent_in_display_name_is_literal_esc02() -> None:
    """RFC 4475 §3.1.1.5 esc02: ``"%Z%45"`` is a literal display name."""
    assert Address.parse('"%Z%45" <sip:resource@example.com>').display_name == "%Z%45"


def test_addr_spec_params_are_header_params_cparam01() -> None:
    """RFC 4475 §3.3.12 cparam01: without <>, ``;unknownparam`` is a contact-param."""
    addr = Address.parse("sip:+19725552222@gw1.example.net;unknownparam")
    assert addr.has_param("unknownparam")
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.params == ()


def test_bracketed_params_are_uri_params_cparam02() -> None:
    """RFC 4475 §3.3.13 cparam02: inside <>, ``;unknownparam`` is a url-parameter."""
    addr = Address.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert addr.params == ()
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.has_param("unknownparam")


def test_escaped_header_inside_brackets_regescrt() -> None:
    """RFC 4475 §3.3.14 regescrt: the escaped Route header stays in the contact URI."""
    addr = Address.parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert isinstance(addr.uri, SipURI)
    assert addr.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(addr) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"


@pytest.mark.parametrize(
    ("value", "uri_type"),
    [
        ("isbn:2983792873", AbsoluteURI),  # unksm2 To
        ("<http://www.example.com>;tag=3234233", AbsoluteURI),  # unksm2 From
        ("<name:John_Smith>", AbsoluteURI),  # unksm2 Contact
        ("<tel:+1-201-555-0123>;tag=x", TelURI),
        ("sip:user@[2001:db8::10]", SipURI),  # RFC 5118 ipv6-in-sdp To
        ('"T. desk phone" <sip:ted@[::ffff:192.0.2.2]>', SipURI),  # ipv4-mapped-ipv6
        ('"Caller" <sip:caller@[2001:db8::1]>', SipURI),  # ipv6-good Contact
    ],
)
def test_other_uri_types(value: str, uri_type: type) -> None:
    assert isinstance(Address.parse(value).uri, uri_type)


def test_long_display_name_and_params_longreq() -> None:
    """RFC 4475 §3.1.1.7 longreq: long values are accepted whole."""
    name = "I have a user name of " + "extreme" * 10 + " proportion"
    value = f'"{name}"<sip:user@example.com:6000;unknownparam1=' + "long" * 100 + ">"
    addr = Address.parse(value + ";tag=" + "98" * 80)
    assert addr.display_name == name
    assert addr.tag == "98" * 80


def test_list_splitting_respects_quotes_and_brackets() -> None:
    addrs = Address.parse_list('<sip:a@b>, "x, y" <sip:c,d@e;lr>;q=0.5 ,sip:f@g;expires=60')
    assert [str(a) for a in addrs] == [
        "<sip:a@b>",
        '"x, y" <sip:c,d@e;lr>;q=0.5',
        "<sip:f@g>;expires=60",
    ]
    assert addrs[2].expires == 60


def test_contact_star() -> None:
    """RFC 3261 §10.2.2: ``Contact: *``."""
    assert parse_contact(" * ") == "*"
    assert Address.parse_list("*") == []
    assert parse_contact("<sip:a@b>") == [Address.parse("<sip:a@b>")]


def test_empty_quoted_display_name_is_kept() -> None:
    addr = Address.parse('"" <sip:a@b>')
    assert addr.display_name == ""
    assert str(addr) == '"" <sip:a@b>'


# --- rejected values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"Joe" <sip:joe@example.org>;;;;', "parameter"),  # §3.1.2.1 badinv01
        ('"Mr. J. User <sip:j.user@example.com>', "unterminated"),  # §3.1.2.6 quotbal
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", ""),  # §3.1.2.15 baddn
        ("Watson, Thomas <sip:t.watson@example.org>", ""),  # baddn To
        ('"Watson, Thomas" < sip:t.watson@example.org >', "whitespace"),  # §3.1.2.14
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "<>"),  # §3.1.2.13
        ("Joe sip:joe@example.org", ""),
        ("J@e <sip:joe@example.org>", "display name"),
        ("<sip:joe@example.org", ">"),
        ("<sip:joe@example.org>>", ""),
        ("<sip:joe@example.org>;tag=", "parameter"),
        ("<sip:joe@example.org>;tag=a b", ""),
        ("<sip:joe@example.org>;", "parameter"),
        ("<sip:joe@example.org> x", ""),
        ("<>", ""),
        ("", "empty"),
        ("   ", "empty"),
        ("<sip:a@b>, <sip:c@d>", "several"),
        ("*", ""),
        ("<sip:a@b>\r\nX: y", "CR"),
    ],
)
def test_malformed_addresses(value: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Address.parse(value)
    assert info.value.status_hint == 400
    assert why in info.value.reason


@pytest.mark.parametrize(
    "value",
    [
        '"Joe" <sip:joe@example.org>;;;;',  # badinv01 Contact
        "<sip:a@b>,",
        ",<sip:a@b>",
        "<sip:a@b>,,<sip:c@d>",
        "<sip:a@b> <sip:c@d>",
        "",
        "*, <sip:a@b>",
        "Bell, Alexander <sip:a.g.bell@example.com>",
    ],
)
def test_malformed_lists(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Address.parse_list(value)


def test_overlarge_contact_expires_scalar02() -> None:
    """RFC 4475 §3.1.2.4 scalar02 Contact: the value parses, its expires is rejected."""
    addr = Address.parse("<sip:user@host129.example.com>\r\n  ;expires=280297596632815")
    with pytest.raises(RemoteProtocolError):
        _ = addr.expires


@pytest.mark.parametrize("q", ["1.5", "2", "0.1234", "abc", ".5"])
def test_bad_q(q: str) -> None:
    with pytest.raises(RemoteProtocolError):
        _ = Address.parse(f"<sip:a@b>;q={q}").q


# --- building --------------------------------------------------------------------------


def test_with_tag_and_params() -> None:
    addr = Address(SipURI.parse("sip:bob@biloxi.com"), "Bob")
    tagged = addr.with_tag("a6c85cf")
    assert str(tagged) == '"Bob" <sip:bob@biloxi.com>;tag=a6c85cf'
    assert str(tagged.with_tag("zz")) == '"Bob" <sip:bob@biloxi.com>;tag=zz'
    assert str(tagged.without_param("TAG")) == '"Bob" <sip:bob@biloxi.com>'
    instance = quote_string("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
    contact = Address(SipURI.parse("sip:bob@192.0.2.4")).with_param("+sip.instance", instance)
    assert contact.param_unquoted("+sip.instance") == (
        "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    )
    assert Address.parse(str(contact)) == contact


def test_uri_params_always_rendered_inside_brackets() -> None:
    addr = Address(SipURI.parse("sip:a@b;lr"), params=(("tag", "1"),))
    assert str(addr) == "<sip:a@b;lr>;tag=1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uri": "sip:a@b"},
        {"uri": SipURI(host="b"), "display_name": "a\r\nb"},
        {"uri": SipURI(host="b"), "display_name": "lone \ud800 surrogate"},
        {"uri": SipURI(host="b"), "params": (("ta g", "1"),)},
        {"uri": SipURI(host="b"), "params": (("tag", "a b"),)},
        {"uri": SipURI(host="b"), "params": (("tag", ""),)},
    ],
)
def test_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        Address(**kwargs)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(addresses())
def test_round_trip(addr: Address) -> None:
    parsed = Address.parse(str(addr))
    assert parsed == addr
    assert (parsed.display_name, parsed.params) == (addr.display_name, addr.params)
    assert str(parsed) == str(addr)
    assert hash(parsed) == hash(addr)


@settings(max_examples=150, deadline=None)
@given(st.lists(addresses(), min_size=1, max_size=4), st.sampled_from([",", " , ", ",\r\n "]))
def test_list_round_trip(addrs: list[Address], sep: str) -> None:
    assert Address.parse_list(sep.join(map(str, addrs))) == addrs


_FUZZ_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=NASTY + 'sip:ab<>"'),
    mutations(addresses().map(str)),
    mutations(
        st.lists(addresses(), min_size=1, max_size=3).map(lambda xs: ", ".join(map(str, xs)))
    ),
)


@settings(max_examples=600, deadline=None)
@given(_FUZZ_TEXT)
def test_any_text_parses_or_raises_remote_protocol_error(text: str) -> None:
    for parse in (Address.parse, Address.parse_list, parse_contact):
        try:
            result = parse(text)
        except RemoteProtocolError as exc:
            assert exc.reason and "\r" not in exc.reason and "\n" not in exc.reason
            continue
        for addr in result if isinstance(result, list) else []:
            assert Address.parse(str(addr)) == addr
            for prop in ("expires", "q"):
                with contextlib.suppress(RemoteProtocolError):
                    getattr(addr, prop)
