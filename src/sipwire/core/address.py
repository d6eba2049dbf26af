"""name-addr / addr-spec header values: From, To, Contact, Route, Record-Route, Path, Refer-To.

Grammar (RFC 3261 §20.10, §25.1)::

    ( name-addr / addr-spec ) *( SEMI generic-param )
    name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS) / quoted-string

Rules applied, with the RFC 4475 torture cases they come from:

* Without ``<>``, parameters after the URI are *header* parameters (RFC 3261 §20.10;
  RFC 4475 §3.3.12 ``cparam01``), and a URI containing ``,`` ``;`` or ``?`` must be
  enclosed in ``<>`` (§20; RFC 4475 §3.1.2.13 ``regbadct`` is rejected).
* No LWS is needed between the display name and ``<`` (RFC 4475 §3.1.1.6 ``lwsdisp``).
* Unterminated quotes (``quotbal``, §3.1.2.6), non-token characters in an unquoted
  display name (``baddn``, §3.1.2.15), spaces inside ``<...>`` (``badaspec``, §3.1.2.14)
  and empty parameters or list elements (``badinv01``, §3.1.2.1) are rejected with
  RemoteProtocolError 400.
* Commas inside quotes or ``<...>`` never split a list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import replace as _dc_replace
from typing import Any, Final, Literal

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.uri import (
    _QUOTED_RE,
    QUOTED_STRING,
    SIMPLE_PARAMS,
    SIMPLE_SIP_URI,
    TOKEN_CLASS,
    URI,
    AbsoluteURI,
    Params,
    SipURI,
    TelURI,
    _builder,
    _check_generic_params,
    _lookup,
    _reason_snippet,
    _render_params,
    _scan_params,
    _simple_params,
    _SipURIBuilder,
    _split_params,
    _unfold,
    _with_param,
    _without_param,
    parse_uri,
    quote_string,
    unquote_string,
)

__all__ = ["Address", "parse_contact"]

_NAME_ADDR_RE: Final = re.compile(
    rf"[ \t]*(?:(?P<quoted>{QUOTED_STRING})[ \t]*"
    rf"|(?P<tokens>[{TOKEN_CLASS}]+(?:[ \t]+[{TOKEN_CLASS}]+)*)[ \t]*)?"
    r"<(?P<uri>[^<>]*)>"
)
_ADDR_SPEC_RE: Final = re.compile(r'[ \t]*([^ \t;,?<>"]+)')
_DISPLAY_TOKENS_RE: Final = re.compile(rf"[{TOKEN_CLASS}]+(?:[ \t]+[{TOKEN_CLASS}]+)*")
_QVALUE_RE: Final = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_WS_RE: Final = re.compile(r"[ \t]+")
_URI_TYPES: Final = (SipURI, TelURI, AbsoluteURI)
# The fast form of a name-addr (see "parse-path fast forms" in sipwire.core.uri): a
# display name that is a quoted-string without quoted-pairs (qdtext only: everything
# but CTLs other than HT, '"' and '\\') or tokens separated by single spaces; a simple
# SIP/SIPS URI in <>; simple parameters. Groups: quoted display, token display, URI
# text, then SIMPLE_SIP_URI's seven, then the first header parameter's name and value
# (the usual single ;tag or ;expires, captured so that it needs no splitting), then
# the other header parameters.
_NAME_ADDR_FAST_RE: Final = re.compile(
    r'[ \t]*(?:"([^\x00-\x08\x0a-\x1f"\\\x7f]*)"[ \t]*'
    rf"|([{TOKEN_CLASS}]+(?: [{TOKEN_CLASS}]+)*)[ \t]*)?"
    rf"<({SIMPLE_SIP_URI})>"
    rf"(?:;([{TOKEN_CLASS}]+)(?:=([{TOKEN_CLASS}:\[\]]+))?)?({SIMPLE_PARAMS})[ \t]*"
)
_sip_parse: Final = SipURI.parse


def _diagnose_head(text: str, pos: int) -> RemoteProtocolError:
    """Explain why no name-addr / addr-spec starts at *pos* (errors only)."""
    rest = text[pos:].lstrip(" \t")
    snippet = _reason_snippet(rest)
    if not rest or rest[0] == ",":
        return RemoteProtocolError("empty address (stray ',' or empty header value)")
    if rest[0] == '"' and _QUOTED_RE.match(rest) is None:
        return RemoteProtocolError(f"unterminated quoted string in display name: {snippet}")
    if "<" in rest:
        lt = rest.index("<")
        before = rest[:lt].strip(" \t")
        if (
            before
            and _QUOTED_RE.fullmatch(before) is None
            and not _DISPLAY_TOKENS_RE.fullmatch(before)
        ):
            return RemoteProtocolError(
                f"display name must be a quoted-string or tokens: {_reason_snippet(before)}"
            )
        gt = rest.find(">", lt)
        if gt < 0:
            return RemoteProtocolError(f"missing '>' in address: {snippet}")
        try:
            parse_uri(rest[lt + 1 : gt])
        except RemoteProtocolError as exc:
            return exc
    if rest[0] in ";?>":
        return RemoteProtocolError(f"address without a URI: {snippet}")
    return RemoteProtocolError(f"malformed address: {snippet}")


def _diagnose_tail(text: str, pos: int, in_list: bool) -> RemoteProtocolError:
    """Explain the unexpected text after an address and its parameters (errors only)."""
    rest = text[pos:].lstrip(" \t")
    snippet = _reason_snippet(rest)
    if rest.startswith("?"):
        return RemoteProtocolError(
            f"a URI with '?' must be enclosed in <> (RFC 3261 section 20): {snippet}"
        )
    if rest.startswith(";"):
        return RemoteProtocolError(f"empty or malformed header parameter: {snippet}")
    if rest.startswith("="):
        return RemoteProtocolError(f"empty or malformed header parameter value: {snippet}")
    if rest.startswith(",") and not in_list:
        return RemoteProtocolError(f"several values where one address is expected: {snippet}")
    return RemoteProtocolError(f"unexpected text after address: {snippet}")


@dataclass(frozen=True, slots=True)
class Address:
    """A From/To/Contact/Route/... value: a URI, an optional display name, header params.

    ``display_name`` is unquoted (quoted-pairs resolved); ``None`` means no display
    name, ``""`` an empty quoted one. ``params`` are the *header* parameters (``tag``,
    ``expires``, ``q``, ...), values as written (quoted-strings keep their quotes; see
    :meth:`param_unquoted`). :meth:`__str__` always uses the ``<...>`` form (RFC 3261
    §20.10 requires it whenever the URI has ``,`` ``;`` or ``?``).
    """

    uri: URI
    display_name: str | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        if not isinstance(self.uri, _URI_TYPES):
            raise LocalProtocolError(f"Address.uri must be a URI object, not {self.uri!r}")
        if self.display_name is not None:
            quote_string(self.display_name)  # LocalProtocolError for CR, LF, lone surrogates
        _check_generic_params(self.params, "Address")

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def _parse_one(cls, text: str, pos: int) -> tuple[Address, int]:
        """Parse one ``(name-addr / addr-spec) *(SEMI generic-param)`` at *pos*."""
        display: str | None = None
        match = _NAME_ADDR_RE.match(text, pos)
        if match is not None:
            inner = match.group("uri")
            if " " in inner or "\t" in inner:
                raise RemoteProtocolError(
                    f"whitespace inside <...> (RFC 4475 section 3.1.2.14): {_reason_snippet(inner)}"
                )
            uri = parse_uri(inner)
            quoted = match.group("quoted")
            if quoted is not None:
                display = unquote_string(quoted)
            else:
                tokens = match.group("tokens")
                if tokens is not None:
                    display = _WS_RE.sub(" ", tokens)
        else:
            match = _ADDR_SPEC_RE.match(text, pos)
            if match is None:
                raise _diagnose_head(text, pos)
            try:
                uri = parse_uri(match.group(1))
            except RemoteProtocolError:
                if "<" in text[pos:]:  # a display name that is neither tokens nor quoted
                    raise _diagnose_head(text, pos) from None
                raise
        params, end = _scan_params(text, match.end())
        address = object.__new__(cls)
        object.__setattr__(address, "uri", uri)
        object.__setattr__(address, "display_name", display)
        object.__setattr__(address, "params", params)
        return address, end

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse one From/To/Route/... value (RFC 3261 §20.10, §25.1).

        Raises RemoteProtocolError 400 for anything malformed, including a list of
        several values."""
        address = _parse_fast(text)
        if address is not None:
            return address
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> Address:
        """:meth:`parse` without the fast path (every form, every error)."""
        text = _unfold(text, "address")
        address, end = cls._parse_one(text, 0)
        if end != len(text) and text[end:].strip(" \t"):
            raise _diagnose_tail(text, end, in_list=False)
        return address

    @classmethod
    def parse_list(cls, text: str) -> list[Address]:
        """Parse a comma-separated list (Contact, Route, Record-Route, Path; RFC 3261 §7.3.1).

        Commas inside quoted strings and ``<...>`` do not split. The Contact wildcard
        ``*`` (RFC 3261 §10.2.2) gives ``[]`` -- use :func:`parse_contact` to tell it
        apart. An empty value or an empty element is RemoteProtocolError 400."""
        addresses = _parse_fast_list(text)
        if addresses is not None:
            return addresses
        return cls._parse_list_general(text)

    @classmethod
    def _parse_list_general(cls, text: str) -> list[Address]:
        """:meth:`parse_list` without the fast path (every form, every error)."""
        text = _unfold(text, "address list")
        if text.strip(" \t") == "*":
            return []
        result: list[Address] = []
        pos, size = 0, len(text)
        while True:
            address, pos = cls._parse_one(text, pos)
            result.append(address)
            while pos < size and text[pos] in " \t":
                pos += 1
            if pos == size:
                return result
            if text[pos] != ",":
                raise _diagnose_tail(text, pos, in_list=True)
            pos += 1

    # -- rendering -----------------------------------------------------------------------

    def __str__(self) -> str:
        uri = f"<{self.uri}>"
        if self.display_name is not None:
            uri = f"{quote_string(self.display_name)} {uri}"
        return uri + _render_params(self.params) if self.params else uri

    # -- accessors -----------------------------------------------------------------------

    def param(self, name: str) -> str | None:
        """Header parameter value as written (case-insensitive name); None if absent or
        valueless -- see :meth:`has_param`."""
        return _lookup(self.params, name)[1]

    def has_param(self, name: str) -> bool:
        return _lookup(self.params, name)[0]

    def param_unquoted(self, name: str) -> str | None:
        """Like :meth:`param` with a quoted-string value unquoted (e.g. ``+sip.instance``)."""
        value = self.param(name)
        return None if value is None else unquote_string(value)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or None."""
        for key, value in self.params:  # _lookup(), inlined: dialog matching is hot
            if key == "tag" or key.lower() == "tag":
                return value
        return None

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter (RFC 3261 §20.10, delta-seconds 0..2**32-1).

        RemoteProtocolError 400 if it is not a decimal number in range."""
        from sipwire.core.headervalues import DELTA_SECONDS_MAX, parse_int_header

        value = self.param("expires")
        if value is None:
            return None
        return parse_int_header(value, "Contact expires", DELTA_SECONDS_MAX)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` parameter (RFC 3261 §20.10 qvalue, 0 to 1), or None.

        RemoteProtocolError 400 if it is not a qvalue."""
        value = self.param("q")
        if value is None:
            return None
        if _QVALUE_RE.fullmatch(value) is None:
            raise RemoteProtocolError(f"invalid q value {_reason_snippet(value)}")
        return float(value)

    # -- derived copies ------------------------------------------------------------------

    def replace(self, **changes: Any) -> Address:
        return _dc_replace(self, **changes)

    def with_param(self, name: str, value: str | None = None) -> Address:
        """A copy with header parameter *name* set (replaced in place if present).
        *value* must be a token, host or quoted-string (see :func:`quote_string`)."""
        return _dc_replace(self, params=_with_param(self.params, name, value))

    def without_param(self, name: str) -> Address:
        return _dc_replace(self, params=_without_param(self.params, name))

    def with_tag(self, tag: str) -> Address:
        """A copy with ``;tag=`` set (RFC 3261 §8.2.6.2, §12.1.1)."""
        return self.with_param("tag", tag)


def parse_contact(text: str) -> list[Address] | Literal["*"]:
    """Parse a Contact value: ``"*"`` for the wildcard (RFC 3261 §10.2.2, §20.10), else the
    list of addresses."""
    addresses = _parse_fast_list(text)  # never accepts the wildcard
    if addresses is not None:
        return addresses
    if _unfold(text, "Contact").strip(" \t") == "*":
        return "*"
    return Address._parse_list_general(text)


# ---------------------------------------------------------------------------------------
# The fast forms (see "parse-path fast forms" in sipwire.core.uri)
# ---------------------------------------------------------------------------------------

_AddressBuilder: Final = _builder(Address)  # see sipwire.core.uri._builder
_new: Final = object.__new__


def _parse_fast(text: str) -> Address | None:
    """One address of the common forms, or None (then the general parser decides).

    Accepted: ``[display-name] <simple-sip-uri> *(;param)`` (the fast pattern above)
    and ``sip-or-sips-URI *(;param)`` (addr-spec) whose URI has no ``,`` or ``?``.
    Parameters are the simple form (no LWS, no quoted values); SP/HT may surround the
    whole value. Never accepts CR or LF (folding is the general parser's), never ``*``.
    """
    match = _NAME_ADDR_FAST_RE.fullmatch(text)
    if match is None:
        return None if "<" in text else _parse_fast_spec(text)
    (
        quoted,
        tokens,
        uri_text,
        scheme,
        user,
        host,
        port_text,
        uri_name,
        uri_value,
        uri_rest,
        name,
        value,
        rest,
    ) = match.groups()
    if ("-" in host or ".." in host or host[0] == ".") and (
        host[0] in ".-" or host[-1] == "-" or ".." in host or "-." in host or ".-" in host
    ):
        return None  # SipURI.parse's host name check fails: its error
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None
    uri = _new(_SipURIBuilder)  # what SipURI.parse builds for this text
    uri.scheme = scheme
    uri.user = user
    uri.password = None
    uri.host = host
    uri.port = port
    if uri_name is None:  # then uri_rest is empty too (the group takes any first one)
        uri.params = _split_params(uri_rest) if uri_rest else ()
    elif not uri_rest:
        uri.params = ((uri_name, uri_value),)
    else:
        uri.params = ((uri_name, uri_value), *_split_params(uri_rest))
    uri.headers = ()
    uri._text = uri_text
    uri._key = None
    uri.__class__ = SipURI
    address = _new(_AddressBuilder)
    address.uri = uri
    address.display_name = tokens if quoted is None else quoted
    if name is None:  # then rest is empty too (the group takes any first parameter)
        address.params = _split_params(rest) if rest else ()
    elif not rest:
        address.params = ((name, value),)
    else:
        address.params = ((name, value), *_split_params(rest))
    address.__class__ = Address
    built: Address = address
    return built


def _parse_fast_spec(text: str) -> Address | None:
    """The addr-spec form of :func:`_parse_fast` (no ``<``)."""
    text = text.strip(" \t")
    if not text.startswith(("sip:", "sips:")):
        return None
    spec, semi, tail = text.partition(";")
    if "," in spec or "?" in spec:
        return None
    params = _simple_params(semi + tail)
    if params is None:
        return None
    try:
        uri = _sip_parse(spec)
    except RemoteProtocolError:
        return None
    address = _new(_AddressBuilder)
    address.uri = uri
    address.display_name = None
    address.params = params
    address.__class__ = Address
    built: Address = address
    return built


def _parse_fast_list(text: str) -> list[Address] | None:
    """A comma-separated list of :func:`_parse_fast` forms, or None.

    Splitting at every comma is safe here: a comma inside ``<...>`` or quotes leaves an
    element with an unbalanced ``<`` or ``"``, which the fast form refuses (and simple
    parameters cannot contain one), so whenever every piece is accepted the commas were
    exactly the list separators."""
    if "," not in text:
        address = _parse_fast(text)
        return None if address is None else [address]
    result: list[Address] = []
    for piece in text.split(","):
        address = _parse_fast(piece)
        if address is None:
            return None
        result.append(address)
    return result
