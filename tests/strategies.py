"""Hypothesis strategies for sipwire's URIs, addresses and header values.

Import from any test module (``tests/`` is on ``sys.path``)::

    from strategies import sip_uris, tel_uris, uris, addresses, vias, cseqs, mutations

Every object strategy builds values through the public constructors, so each drawn
value is valid by construction; ``str(value)`` is then wire text that must parse back.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from sipwire.core.address import Address
from sipwire.core.headervalues import CSeq, Via
from sipwire.core.uri import URI, AbsoluteURI, SipURI, TelURI, quote_string

__all__ = [
    "absolute_uris",
    "addresses",
    "cseqs",
    "display_names",
    "gen_values",
    "generic_params",
    "hostnames",
    "hosts",
    "ipv4_addresses",
    "ipv6_references",
    "mutations",
    "sip_uris",
    "tel_uris",
    "tokens",
    "uris",
    "via_texts",
    "vias",
]

ALNUM = string.ascii_letters + string.digits
UNRESERVED = ALNUM + "-_.!~*'()"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
#: Characters that tend to break parsers: separators, quotes, escapes, whitespace, NUL.
NASTY = ' \t\r\n;,:<>"\\@%[]?=&/*+#\x00\x7f\xe9\u200b\udc80'


def tokens(max_size: int = 12) -> st.SearchStrategy[str]:
    """RFC 3261 §25.1 ``token``."""
    return st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=max_size)


def _escape() -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, 255), st.booleans()).map(
        lambda t: f"%{t[0]:02X}" if t[1] else f"%{t[0]:02x}"
    )


def _escaped_text(allowed: str, min_size: int = 1, max_size: int = 10) -> st.SearchStrategy[str]:
    """Strings over *allowed* plus ``%HEX HEX`` escapes (RFC 3261 §25.1 ``escaped``)."""
    return st.lists(
        st.one_of(st.sampled_from(allowed), _escape()), min_size=min_size, max_size=max_size
    ).map("".join)


def _label() -> st.SearchStrategy[str]:
    return st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)


def hostnames() -> st.SearchStrategy[str]:
    return st.lists(_label(), min_size=1, max_size=4).map(".".join)


def ipv4_addresses() -> st.SearchStrategy[str]:
    return st.ip_addresses(v=4).map(str)


def ipv6_references() -> st.SearchStrategy[str]:
    """``[IPv6address]`` (RFC 3261 §25.1, RFC 5118)."""
    return st.ip_addresses(v=6).map(lambda a: f"[{a}]")


def hosts() -> st.SearchStrategy[str]:
    return st.one_of(hostnames(), ipv4_addresses(), ipv6_references())


def _ports() -> st.SearchStrategy[int | None]:
    return st.none() | st.integers(0, 65535)


def _uri_params(
    name: st.SearchStrategy[str], value: st.SearchStrategy[str]
) -> st.SearchStrategy[tuple[tuple[str, str | None], ...]]:
    return st.lists(st.tuples(name, st.none() | value), max_size=4).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipURI:
    """``sip:``/``sips:`` URIs with users, passwords, escapes, IPv6, params and headers."""
    user = draw(st.none() | _escaped_text(UNRESERVED + "&=+$,;?/"))
    password = None if user is None else draw(st.none() | _escaped_text(UNRESERVED + "&=+$,", 0))
    paramchar = UNRESERVED + "[]/:&+$"
    special = st.sampled_from(["transport", "lr", "maddr", "user", "ttl", "method"])
    hchar = UNRESERVED + "[]/?:+$"
    return SipURI(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=password,
        host=draw(hosts()),
        port=draw(_ports()),
        params=draw(
            _uri_params(special | _escaped_text(paramchar), _escaped_text(paramchar, min_size=0))
        ),
        headers=draw(
            st.lists(
                st.tuples(_escaped_text(hchar), _escaped_text(hchar, min_size=0)), max_size=3
            ).map(tuple)
        ),
    )


@st.composite
def tel_uris(draw: st.DrawFn) -> TelURI:
    """RFC 3966 global (``+``) and local numbers with visual separators and parameters."""
    if draw(st.booleans()):
        number = draw(st.from_regex(r"\+[0-9][0-9().\-]{0,12}", fullmatch=True))
    else:
        number = draw(st.from_regex(r"[0-9A-Fa-f*#][0-9A-Fa-f*#().\-]{0,10}", fullmatch=True))
    pname = st.from_regex(r"[A-Za-z0-9\-]{1,8}", fullmatch=True)
    pvalue = _escaped_text(UNRESERVED + "[]/:&+$")
    params = list(draw(_uri_params(pname, pvalue)))
    if not number.startswith("+") or draw(st.booleans()):
        context = draw(hostnames() | st.from_regex(r"\+[0-9][0-9\-]{0,6}", fullmatch=True))
        params.insert(draw(st.integers(0, len(params))), ("phone-context", context))
    return TelURI(number=number, params=tuple(params))


def absolute_uris() -> st.SearchStrategy[AbsoluteURI]:
    """Any other scheme, opaque (RFC 3261 §25.1 absoluteURI)."""
    scheme = st.from_regex(r"[a-z][a-z0-9+.\-]{0,8}", fullmatch=True).filter(
        lambda s: s not in ("sip", "sips", "tel")
    )
    opaque = _escaped_text(UNRESERVED + ";/?:@&=+$,[]", min_size=1, max_size=16)
    return st.builds(AbsoluteURI, scheme=scheme, opaque=opaque)


def uris() -> st.SearchStrategy[URI]:
    return st.one_of(sip_uris(), tel_uris(), absolute_uris())


def _quotable_text(max_size: int) -> st.SearchStrategy[str]:
    """Any text a quoted-string can carry on the wire: no CR/LF, no lone surrogates."""
    return st.text(
        st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=max_size
    )


def display_names() -> st.SearchStrategy[str | None]:
    """None or any text a quoted-string can carry (everything but CR, LF, surrogates)."""
    return st.none() | _quotable_text(16)


def gen_values() -> st.SearchStrategy[str]:
    """RFC 3261 §25.1 ``gen-value``: token / host / quoted-string."""
    return st.one_of(
        tokens(),
        hosts(),
        _quotable_text(10).map(quote_string),
    )


def generic_params(
    exclude: frozenset[str] = frozenset(),
) -> st.SearchStrategy[tuple[tuple[str, str | None], ...]]:
    """``*( SEMI generic-param )`` whose names avoid *exclude* (compared lower-case)."""
    name = tokens(8).filter(lambda n: n.lower() not in exclude)
    return st.lists(st.tuples(name, st.none() | gen_values()), max_size=4).map(tuple)


def addresses() -> st.SearchStrategy[Address]:
    """From/To/Contact-style values: any URI, optional display name, header params."""
    return st.builds(Address, uri=uris(), display_name=display_names(), params=generic_params())


_VIA_SPECIAL = frozenset({"branch", "received", "rport", "ttl", "maddr"})


@st.composite
def vias(draw: st.DrawFn) -> Via:
    """Via values: known and unknown transports, IPv4/IPv6/hostname sent-by, branch,
    received (IPv6 with and without brackets), rport (bare or valued) and extensions."""
    params: list[tuple[str, str | None]] = []
    if draw(st.booleans()):
        params.append(("branch", "z9hG4bK" + draw(tokens())))
    if draw(st.booleans()):
        received = draw(ipv4_addresses() | ipv6_references() | st.ip_addresses(v=6).map(str))
        params.append(("received", received))
    if draw(st.booleans()):
        params.append(("rport", draw(st.none() | st.integers(0, 65535).map(str))))
    if draw(st.booleans()):
        params.append(("ttl", str(draw(st.integers(0, 255)))))
    if draw(st.booleans()):
        params.append(("maddr", draw(hosts())))
    params.extend(draw(generic_params(_VIA_SPECIAL)))
    params = draw(st.permutations(params))
    transport = draw(
        st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]) | tokens(6).map(str.upper)
    )
    return Via(
        transport=transport,
        host=draw(hosts()),
        port=draw(_ports()),
        params=tuple(params),
        protocol=draw(st.sampled_from(["SIP/2.0", "SIP/2.0", "sip/2.0", "SIP/3.0"])),
    )


@st.composite
def via_texts(draw: st.DrawFn) -> str:
    """Via wire text with optional LWS around ``/``, ``:``, ``;`` and ``=`` (RFC 3261
    §25.1 SLASH, COLON, SEMI, EQUAL; RFC 4475 §3.1.1.1 wsinv)."""
    via = draw(vias())
    ws = st.sampled_from(["", " ", "  ", "\t", "\r\n "])
    name, version = via.protocol.split("/")
    text = f"{name}{draw(ws)}/{draw(ws)}{version}{draw(ws)}/{draw(ws)}{via.transport} "
    text += via.host
    if via.port is not None:
        text += f"{draw(ws)}:{draw(ws)}{via.port}"
    for key, value in via.params:
        text += f"{draw(ws)};{draw(ws)}{key}"
        if value is not None:
            text += f"{draw(ws)}={draw(ws)}{value}"
    return text


def cseqs() -> st.SearchStrategy[CSeq]:
    return st.builds(CSeq, st.integers(0, 2**31 - 1), tokens())


@st.composite
def mutations(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """A drawn text with a few random edits: insert/replace a nasty or random character,
    delete or duplicate a slice."""
    text = draw(texts)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "replace", "delete", "duplicate"]))
        pos = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(NASTY) | st.characters())
        if op == "insert":
            text = text[:pos] + char + text[pos:]
        elif op == "replace" and pos < len(text):
            text = text[:pos] + char + text[pos + 1 :]
        elif op == "delete":
            end = draw(st.integers(pos, min(len(text), pos + 4)))
            text = text[:pos] + text[end:]
        elif op == "duplicate":
            end = draw(st.integers(pos, min(len(text), pos + 6)))
            text = text[:end] + text[pos:end] + text[end:]
    return text
