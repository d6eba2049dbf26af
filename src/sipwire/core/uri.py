"""URIs: SIP/SIPS (RFC 3261 §19.1, §25.1), tel (RFC 3966) and any other absoluteURI.

The three URI types are frozen, slotted dataclasses:

* :class:`SipURI` -- ``sip:`` and ``sips:`` (RFC 3261 §19.1.1), IPv6 references per
  RFC 5118. Every component is kept *as written*, ``%HEX HEX`` escapes included
  (RFC 3261 §19.1.2); :attr:`SipURI.user_unescaped` decodes them once, never
  recursively (RFC 4475 §3.1.1.3). ``==`` and ``hash`` follow RFC 3261 §19.1.4.
* :class:`TelURI` -- ``tel:`` (RFC 3966 §3), compared per RFC 3966 §4.
* :class:`AbsoluteURI` -- any other scheme (RFC 3261 §25.1 ``absoluteURI``, RFC 2396
  §3), kept opaque (RFC 4475 §3.3.2 ``unkscm``, §3.3.3 ``novelsc``, §3.3.4 ``unksm2``).

:func:`parse_uri` picks the type by scheme. Malformed input raises only
:class:`~sipwire.core._errors.RemoteProtocolError` (status hint 400) with a human reason.

This module also holds the small lexical helpers of RFC 3261 §25.1 that the header
value parsers share (tokens, quoted strings, generic parameters, line folding).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from dataclasses import replace as _dc_replace
from typing import Any, Final, TypeAlias

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "URI",
    "AbsoluteURI",
    "Params",
    "SipURI",
    "TelURI",
    "is_token",
    "parse_uri",
    "quote_string",
    "unescape",
    "unquote_string",
]

Params: TypeAlias = tuple[tuple[str, str | None], ...]
"""Parameters in order and spelling as written: ``(name, value)``; ``None`` = no ``=``."""

# ---------------------------------------------------------------------------------------
# Lexical building blocks (RFC 3261 §25.1)
# ---------------------------------------------------------------------------------------

#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CLASS: Final = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE: Final = re.compile(rf"[{TOKEN_CLASS}]+")
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII (surrogate-escaped bytes too)
_QDTEXT: Final = r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]"
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QPAIR: Final = r"\\[\x00-\x09\x0b\x0c\x0e-\x7f]"
QUOTED_STRING: Final = rf'"(?:{_QDTEXT}|{_QPAIR})*"'
_QUOTED_RE: Final = re.compile(QUOTED_STRING)
#: gen-value = token / host / quoted-string  (host adds ":" "[" "]" for IPv6)
GEN_VALUE: Final = rf"{QUOTED_STRING}|[{TOKEN_CLASS}:\[\]]+"
_GEN_VALUE_RE: Final = re.compile(GEN_VALUE)
# SEMI generic-param, with SWS around ";" and "=" (RFC 3261 §25.1 SEMI, EQUAL)
_PARAM_RE: Final = re.compile(rf"[ \t]*;[ \t]*([{TOKEN_CLASS}]+)(?:[ \t]*=[ \t]*({GEN_VALUE}))?")
# gen-value is never empty, so findall()'s "" for a missing value means "no value".
_PARAMS_RUN_RE: Final = re.compile(f"(?:{_PARAM_RE.pattern})*")
_FOLD_RE: Final = re.compile(r"[ \t]*\r?\n[ \t]+")
_ESCAPE_RUN_RE: Final = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_ESCAPE_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_QPAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)
# Surrogates other than the surrogateescape range U+DC80-U+DCFF cannot be sent as UTF-8.
_UNENCODABLE_RE: Final = re.compile(r"[\ud800-\udc7f\udd00-\udfff]")
_QUOTE_NEEDED_RE: Final = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')

# Characters that RFC 2396 §2.3 calls unreserved, plus "[" and "]" (neither reserved nor
# special in SIP param/header values): an escape of one of these equals the character
# itself (RFC 3261 §19.1.4). Escapes of anything else stay escaped (upper-cased hex).
_DECODABLE: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()[]"
)


def is_token(text: str) -> bool:
    """True if *text* is an RFC 3261 §25.1 ``token``."""
    return _TOKEN_RE.fullmatch(text) is not None


def unescape(text: str) -> str:
    """Decode ``%HEX HEX`` escapes once (RFC 3261 §19.1.2; RFC 3986 §2.4: never recursively).

    ``"%2541"`` decodes to ``"%41"``, ``"%00"`` to a NUL character (RFC 4475 §3.1.1.4:
    it must not shorten anything). Octet sequences that are not UTF-8 decode with
    ``surrogateescape`` so no information is lost.
    """
    if "%" not in text:
        return text
    return _ESCAPE_RUN_RE.sub(
        lambda m: bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogateescape"),
        text,
    )


def _canon_escapes(text: str) -> str:
    """Canonical form for comparison: decode escapes of unreserved characters, upper-case
    the hex digits of all others (RFC 3261 §19.1.4, 4th bullet)."""
    if "%" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in _DECODABLE else "%" + m.group(1).upper()

    return _ESCAPE_RE.sub(one, text)


def quote_string(text: str) -> str:
    """Render *text* as an RFC 3261 §25.1 ``quoted-string`` (``\\`` and ``"`` and control
    characters become quoted-pairs). CR and LF cannot be represented: LocalProtocolError."""
    if "\r" in text or "\n" in text:
        raise LocalProtocolError(f"a quoted-string cannot contain CR or LF: {text!r}")
    if _UNENCODABLE_RE.search(text):
        raise LocalProtocolError(f"lone surrogate in quoted-string text: {text!r}")
    return '"' + _QUOTE_NEEDED_RE.sub(lambda m: "\\" + m.group(), text) + '"'


def unquote_string(text: str) -> str:
    """Inverse of :func:`quote_string`: strip the quotes and resolve quoted-pairs.

    A value that is not a quoted-string is returned unchanged (so it can be applied to
    any ``gen-value``)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        return _QPAIR_RE.sub(r"\1", inner) if "\\" in inner else inner
    return text


def _reason_snippet(text: str, limit: int = 60) -> str:
    """An ASCII-only, bounded excerpt of peer input for an error reason (never CR/LF)."""
    return ascii(text if len(text) <= limit else text[:limit] + "...")


def _unfold(text: str, what: str) -> str:
    """Replace header line folding (RFC 3261 §7.3.1) with a single SP; reject bare CR/LF."""
    if "\r" in text or "\n" in text:
        text = _FOLD_RE.sub(" ", text)
        if "\r" in text or "\n" in text:
            raise RemoteProtocolError(f"{what}: stray CR or LF in header value")
    return text


def _scan_params(text: str, pos: int) -> tuple[Params, int]:
    """Read ``*( SEMI generic-param )`` (RFC 3261 §25.1) from *pos*; return them and the
    position after the last one. Whatever follows is the caller's to check."""
    end = _PARAMS_RUN_RE.match(text, pos).end()  # type: ignore[union-attr]  # matches ""
    if end == pos:
        return (), pos
    return tuple([(n, v or None) for n, v in _PARAM_RE.findall(text, pos, end)]), end


def _lookup(params: Params, name: str) -> tuple[bool, str | None]:
    """Case-insensitive lookup: ``(present, value)``."""
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return True, value
    return False, None


def _with_param(params: Params, name: str, value: str | None) -> Params:
    """Replace the first parameter called *name* (case-insensitively), or append it."""
    lname = name.lower()
    out = list(params)
    for index, (key, _) in enumerate(out):
        if key.lower() == lname:
            out[index] = (key, value)
            return tuple(out)
    out.append((name, value))
    return tuple(out)


def _without_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


def _check_generic_params(params: Params, what: str) -> None:
    """Validate ``generic-param`` tuples supplied by a caller (LocalProtocolError)."""
    for name, value in params:
        if not is_token(name):
            raise LocalProtocolError(f"{what}: parameter name {name!r} is not a token")
        if value is not None and _GEN_VALUE_RE.fullmatch(value) is None:
            raise LocalProtocolError(
                f"{what}: value {value!r} of {name!r} must be a token, host or quoted-string"
                " (use quote_string())"
            )


def _render_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _split_params(text: str) -> Params:
    """``;a=1;b`` (already validated) -> ``(("a", "1"), ("b", None))``."""
    out: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, sep, value = item.partition("=")
        out.append((name, value) if sep else (name, None))
    return tuple(out)


# -- parse-path fast forms -------------------------------------------------------------
#
# The header parsers first try the form nearly every value takes on the wire -- no LWS
# inside, no quoted-string parameter values, no escapes -- with one anchored regular
# expression (or str methods) and build the frozen objects without running their
# constructors' validation (the text was just checked). Anything else, well-formed or
# not, returns None and goes through the general parser, which therefore alone decides
# every error and every unusual spelling. A fast form is a strict subset of the general
# grammar and yields field-for-field the object the general parser builds
# (tests/test_parse_fastpath.py checks that with hypothesis).

#: ``*( SEMI generic-param )`` with no LWS and token/host values only (no quoted-string).
SIMPLE_PARAMS: Final = rf"(?:;[{TOKEN_CLASS}]+(?:=[{TOKEN_CLASS}:\[\]]+)?)*"
_SIMPLE_PARAMS_RE: Final = re.compile(SIMPLE_PARAMS)


def _simple_params(text: str) -> Params | None:
    """*text* as ``*( SEMI generic-param )`` if it has the simple form, else None."""
    if not text:
        return ()
    if _SIMPLE_PARAMS_RE.fullmatch(text) is None:
        return None
    return _split_params(text)


def _split_headers(text: str) -> tuple[tuple[str, str], ...]:
    """``a=1&b=2`` (already validated) -> ``(("a", "1"), ("b", "2"))``."""
    out: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, _, value = item.partition("=")
        out.append((name, value))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Hosts (RFC 3261 §25.1 host; RFC 5118 IPv6 references)
# ---------------------------------------------------------------------------------------

# Lenient hostname: labels of alphanum, "-" and "_" (seen in the wild) separated by dots.
_HOSTNAME: Final = r"[A-Za-z0-9_.\-]+"
_IPV6REF: Final = r"\[[0-9A-Fa-f:.]+\]"
_HOST_RE: Final = re.compile(rf"{_IPV6REF}|{_HOSTNAME}")
_IPV4_RE: Final = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}"
)
_IPV6_CHARS_RE: Final = re.compile(r"[0-9A-Fa-f:.]+")


def _ipv6_canonical(address: str) -> str | None:
    """Compressed form of an IPv6 address, or None if it is not one.

    RFC 5118 §4.10: an implementation must tolerate the RFC 2373 ABNF bug that allows
    ``2001:db8:::192.0.2.1`` (three colons); it is read as ``2001:db8::192.0.2.1``.
    """
    if _IPV6_CHARS_RE.fullmatch(address) is None:
        return None
    try:
        return ipaddress.IPv6Address(address).compressed
    except ValueError:
        pass
    if ":::" in address:
        try:
            return ipaddress.IPv6Address(address.replace(":::", "::", 1)).compressed
        except ValueError:
            return None
    return None


def _host_problem(host: str) -> str | None:
    """Why *host* is not an acceptable host (None if it is). Brackets are required for
    IPv6 (RFC 3261 §19.1.1, RFC 5118 §4.2)."""
    if not host:
        return "empty host"
    if host[0] == "[":
        if host[-1] != "]" or _ipv6_canonical(host[1:-1]) is None:
            return f"invalid IPv6 reference {_reason_snippet(host)}"
        return None
    if _HOST_RE.fullmatch(host) is None:
        return f"invalid host {_reason_snippet(host)}"
    if host[0] in ".-" or ".." in host or host.endswith("-") or "-." in host or ".-" in host:
        return f"invalid host name {_reason_snippet(host)}"
    return None


def _canon_host(host: str) -> str:
    if host.startswith("["):
        canonical = _ipv6_canonical(host[1:-1])
        return f"[{canonical}]" if canonical is not None else host.lower()
    return host.lower()


def is_ip_address(text: str) -> bool:
    """True for an IPv4 address or an IPv6 address with or without brackets (RFC 5118 §4.5)."""
    if _IPV4_RE.fullmatch(text):
        return True
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return ":" in text and _ipv6_canonical(text) is not None


def _port_value(digits: str, where: str) -> int:
    """Decimal port 0..65535 (RFC 3261 §25.1 port = 1*DIGIT); *where* names the context."""
    stripped = digits.lstrip("0")
    if len(stripped) > 5 or (stripped and int(stripped) > 65535):
        raise RemoteProtocolError(
            f"port {_reason_snippet(digits)} out of range (0-65535) in {_reason_snippet(where)}"
        )
    return int(stripped) if stripped else 0


# ---------------------------------------------------------------------------------------
# SIP and SIPS URIs (RFC 3261 §19.1.1, §25.1)
# ---------------------------------------------------------------------------------------

_UNRESERVED: Final = r"A-Za-z0-9\-_.!~*'()"
_ESCAPED: Final = r"%[0-9A-Fa-f]{2}"
_USER: Final = rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+"
_PASSWORD: Final = rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*"
_PARAMCHAR: Final = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})"
_HNVCHAR: Final = rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})"
# The one-pass matcher uses plain character classes with "%" (much faster in ``re`` than a
# per-character alternation); escapes are then checked with _BAD_ESCAPE_RE.
_SIP_URI_RE: Final = re.compile(
    r"([Ss][Ii][Pp][Ss]?):"
    rf"(?:([{_UNRESERVED}&=+$,;?/%]+)(?::([{_UNRESERVED}&=+$,%]*))?@)?"
    rf"({_IPV6REF}|{_HOSTNAME})"
    r"(?::([0-9]+))?"
    rf"((?:;[{_UNRESERVED}\[\]/:&+$%]+(?:=[{_UNRESERVED}\[\]/:&+$%]*)?)*)"
    rf"(?:\?([{_UNRESERVED}\[\]/?:+$%]+=[{_UNRESERVED}\[\]/?:+$%]*"
    rf"(?:&[{_UNRESERVED}\[\]/?:+$%]+=[{_UNRESERVED}\[\]/?:+$%]*)*))?"
)
_BAD_ESCAPE_RE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USER_RE: Final = re.compile(_USER)
_PASSWORD_RE: Final = re.compile(_PASSWORD)
_PNAME_RE: Final = re.compile(f"{_PARAMCHAR}+")
_PVALUE_RE: Final = re.compile(f"{_PARAMCHAR}*")
_HNAME_RE: Final = re.compile(f"{_HNVCHAR}+")
_HVALUE_RE: Final = re.compile(f"{_HNVCHAR}*")

#: The fast form of a SIP/SIPS URI (see "parse-path fast forms"), for embedding in a
#: header's fast pattern: lower-case scheme, no password, no escapes, no IPv6 reference,
#: no headers. Groups: scheme, user, host, port, the first uri-parameter's name and
#: value (the usual single ;lr or ;transport=, captured so that it needs no
#: splitting), the other uri-parameters.
SIMPLE_SIP_URI: Final = (
    rf"(sips?):(?:([{_UNRESERVED}&=+$,;?/]+)@)?({_HOSTNAME})(?::([0-9]{{1,5}}))?"
    rf"(?:;([{_UNRESERVED}\[\]/:&+$]+)(?:=([{_UNRESERVED}\[\]/:&+$]*))?)?"
    rf"((?:;[{_UNRESERVED}\[\]/:&+$]+(?:=[{_UNRESERVED}\[\]/:&+$]*)?)*)"
)

#: uri-parameters that make two URIs unequal when present in only one (§19.1.4).
_STRICT_PARAMS: Final = frozenset({"transport", "user", "ttl", "method", "maddr"})


def _bad_char_reason(text: str) -> str | None:
    """Whitespace (RFC 4475 §3.1.2.8) or ``<`` ``>`` ``"`` (§3.1.2.7) inside a URI."""
    if any(c in text for c in " \t\r\n"):
        return f"whitespace inside URI {_reason_snippet(text)}"
    for char in '<>"':
        if char in text:
            return f"character {char!r} not allowed in URI {_reason_snippet(text)}"
    return None


def _diagnose_sip(text: str) -> str:
    """A human reason why *text* is not a SIP-URI (slow path, errors only)."""
    snippet = _reason_snippet(text)
    reason = _bad_char_reason(text)
    if reason is not None:
        return reason
    rest = text.partition(":")[2]
    if not rest:
        return f"empty URI after scheme in {snippet}"
    if rest.count("@") > 1:
        return f"more than one '@' in URI {snippet}"
    hostport = rest.rpartition("@")[2] if "@" in rest else rest
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return f"unterminated IPv6 reference in URI {snippet}"
        host, after = hostport[: end + 1], hostport[end + 1 :]
    else:
        cut = min((i for i in (hostport.find(c) for c in ":;?") if i >= 0), default=len(hostport))
        host, after = hostport[:cut], hostport[cut:]
    problem = _host_problem(host)
    if problem is not None:
        return f"{problem} in URI {snippet}"
    if after.startswith(":"):
        port = re.split(r"[;?]", after[1:], maxsplit=1)[0]
        if ":" in port:
            return f"IPv6 address without [] in URI {snippet} (RFC 5118 section 4.2)"
        if not port.isascii() or not port.isdigit():
            return f"invalid port in URI {snippet}"
    if "@" in rest:
        userinfo = rest.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        if not _USER_RE.fullmatch(user):
            return f"invalid user part in URI {snippet}"
        if not _PASSWORD_RE.fullmatch(password):
            return f"invalid password in URI {snippet}"
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return f"'%' not followed by two hex digits in URI {snippet}"
    return f"malformed parameters or headers in URI {snippet}"


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1).

    Components are kept as written, escapes included; ``host`` keeps the brackets of
    an IPv6 reference (RFC 5118). Equality and hashing follow RFC 3261 §19.1.4: the
    scheme, user, password (case-sensitively, escapes decoded where equivalent), host
    (case-insensitively), port, the ``transport``/``user``/``ttl``/``method``/``maddr``
    parameters and the URI headers must all match; any other parameter matters only
    when both URIs carry it. Equality is therefore not transitive (as the RFC notes).

    The constructor validates every component (LocalProtocolError); use
    :meth:`parse` for text from the network.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"
    _text: str | None = field(default=None, init=False, repr=False, compare=False)
    _key: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise LocalProtocolError(f"SipURI scheme must be 'sip' or 'sips', not {self.scheme!r}")
        if self.user is not None and not _USER_RE.fullmatch(self.user):
            raise LocalProtocolError(f"invalid SIP URI user {self.user!r} (escape it)")
        if self.password is not None:
            if self.user is None:
                raise LocalProtocolError("a SIP URI password needs a user")
            if not _PASSWORD_RE.fullmatch(self.password):
                raise LocalProtocolError(f"invalid SIP URI password {self.password!r}")
        problem = _host_problem(self.host)
        if problem is not None:
            raise LocalProtocolError(problem)
        if self.port is not None and not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"port {self.port} out of range")
        for name, value in self.params:
            if not _PNAME_RE.fullmatch(name) or (
                value is not None and not _PVALUE_RE.fullmatch(value)
            ):
                raise LocalProtocolError(f"invalid URI parameter {name!r}={value!r}")
        for name, value in self.headers:
            if not _HNAME_RE.fullmatch(name) or not _HVALUE_RE.fullmatch(value):
                raise LocalProtocolError(f"invalid URI header {name!r}={value!r}")

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a SIP-URI / SIPS-URI (RFC 3261 §25.1). No surrounding whitespace allowed.

        Raises RemoteProtocolError 400 for malformed input (embedded LWS, ``<``, a bare
        IPv6 address, a port above 65535, an empty host, ...), 416 for another scheme.
        """
        match = _SIP_URI_RE.fullmatch(text)
        if match is None:
            scheme = text.partition(":")[0].lower()
            if ":" in text and scheme not in ("sip", "sips") and _SCHEME_RE.fullmatch(scheme):
                raise RemoteProtocolError(
                    f"not a SIP or SIPS URI: {_reason_snippet(text)}", status_hint=416
                )
            raise RemoteProtocolError(_diagnose_sip(text))
        scheme, user, password, host, port_text, params_text, headers_text = match.groups()
        if "%" in text and _BAD_ESCAPE_RE.search(text) is not None:
            raise RemoteProtocolError(_diagnose_sip(text))
        if host[0] == "[":
            if _ipv6_canonical(host[1:-1]) is None:
                raise RemoteProtocolError(f"invalid IPv6 reference in URI {_reason_snippet(text)}")
        elif host[0] in ".-" or ".." in host or host[-1] == "-" or "-." in host or ".-" in host:
            raise RemoteProtocolError(f"invalid host name in URI {_reason_snippet(text)}")
        if port_text is None:
            port = None
        elif len(port_text) < 5:  # at most 9999: in range; the regex made it ASCII digits
            port = int(port_text)
        else:
            port = _port_value(port_text, text)
        # Built without __init__ (the regex validated every component); see _builder().
        uri = _new(_SipURIBuilder)
        uri.scheme = scheme if scheme == "sip" else scheme.lower()
        uri.user = user
        uri.password = password
        uri.host = host
        uri.port = port
        uri.params = _split_params(params_text) if params_text else ()
        uri.headers = _split_headers(headers_text) if headers_text else ()
        uri._text = text
        uri._key = None
        uri.__class__ = SipURI
        built: SipURI = uri
        if cls is not SipURI:  # a subclass: same fields, its own layout
            built = _new(cls)
            for name in SipURI.__slots__:
                object.__setattr__(built, name, getattr(uri, name))
        return built

    # -- rendering -----------------------------------------------------------------------

    def __str__(self) -> str:
        text = self._text
        if text is None:
            parts = [self.scheme, ":"]
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts += [":", self.password]
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts += [":", str(self.port)]
            parts.append(_render_params(self.params))
            if self.headers:
                parts += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
            text = "".join(parts)
            object.__setattr__(self, "_text", text)
        return text

    # -- comparison (RFC 3261 §19.1.4) ---------------------------------------------------

    def _comparison_key(self) -> tuple[Any, ...]:
        key = self._key
        if key is None:
            strict = []
            loose = {}
            for name, value in self.params:
                lname = _canon_escapes(name).lower()
                lvalue = None if value is None else _canon_escapes(value).lower()
                if lname in _STRICT_PARAMS:
                    strict.append((lname, lvalue))
                else:
                    loose[lname] = lvalue
            must_match = (
                self.scheme,
                None if self.user is None else _canon_escapes(self.user),
                None if self.password is None else _canon_escapes(self.password),
                _canon_host(self.host),
                self.port,
                frozenset(strict),
                tuple(
                    sorted((_canon_escapes(k).lower(), _canon_escapes(v)) for k, v in self.headers)
                ),
            )
            key = (must_match, loose)
            object.__setattr__(self, "_key", key)
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        if self is other:
            return True
        mine, theirs = self._comparison_key(), other._comparison_key()
        if mine[0] != theirs[0]:
            return False
        loose_a, loose_b = mine[1], theirs[1]
        return all(loose_b[k] == v for k, v in loose_a.items() if k in loose_b)

    def __hash__(self) -> int:
        return hash(self._comparison_key()[0])

    # -- accessors -----------------------------------------------------------------------

    def param(self, name: str) -> str | None:
        """Value of uri-parameter *name* as written (case-insensitive name, escapes in the
        name decoded); None if absent or valueless -- see :meth:`has_param`."""
        return self._param(name)[1]

    def has_param(self, name: str) -> bool:
        """True if uri-parameter *name* is present (with or without a value)."""
        return self._param(name)[0]

    def _param(self, name: str) -> tuple[bool, str | None]:
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname or ("%" in key and _canon_escapes(key).lower() == lname):
                return True, value
        return False, None

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (``"udp"``, ``"tcp"``, ``"tls"``, ...)."""
        value = self.param("transport")
        return None if value is None else _canon_escapes(value).lower()

    @property
    def lr(self) -> bool:
        """True if the ``lr`` parameter (loose routing, RFC 3261 §19.1.1) is present."""
        return self.has_param("lr")

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter (RFC 3261 §19.1.1), as written."""
        return self.param("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user`` uri-parameter (``"phone"``, ``"ip"``), lower-cased."""
        value = self.param("user")
        return None if value is None else value.lower()

    @property
    def user_unescaped(self) -> str | None:
        """The user part with ``%HEX HEX`` decoded exactly once (RFC 4475 §3.1.1.3)."""
        return None if self.user is None else unescape(self.user)

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port`` (IPv6 keeps its brackets)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_secure(self) -> bool:
        """True for ``sips:`` (RFC 3261 §19.1)."""
        return self.scheme == "sips"

    def aor(self) -> str:
        """The address-of-record key ``scheme:user@host`` (RFC 3261 §10.3 step 5: parameters
        removed, escapes decoded, host lower-cased). The port is dropped too."""
        host = _canon_host(self.host)
        if self.user is None:
            return f"{self.scheme}:{host}"
        return f"{self.scheme}:{unescape(self.user)}@{host}"

    # -- derived copies ------------------------------------------------------------------

    def replace(self, **changes: Any) -> SipURI:
        """A copy with some fields changed (validated like the constructor)."""
        return _dc_replace(self, **changes)

    def with_param(self, name: str, value: str | None = None) -> SipURI:
        """A copy with uri-parameter *name* set (replaced in place if present)."""
        found, _ = self._param(name)
        if found:
            lname = name.lower()
            params = tuple(
                (k, value) if k.lower() == lname or _canon_escapes(k).lower() == lname else (k, v)
                for k, v in self.params
            )
        else:
            params = (*self.params, (name, value))
        return _dc_replace(self, params=params)

    def without_param(self, name: str) -> SipURI:
        """A copy without uri-parameter *name*."""
        lname = name.lower()
        return _dc_replace(
            self, params=tuple(p for p in self.params if _canon_escapes(p[0]).lower() != lname)
        )

    def without_headers(self) -> SipURI:
        """A copy without the ``?header=value`` part (RFC 3261 §19.1.5)."""
        return _dc_replace(self, headers=())


def _builder(cls: type) -> Any:
    """A plain class with exactly the slots of the frozen, slotted dataclass *cls*.

    A parse path creates an instance of it with ``object.__new__``, fills every field
    with ordinary attribute stores and then assigns ``__class__ = cls`` -- allowed
    because the two layouts are identical (Python's ``__class__`` assignment rule) --
    which gives the *cls* instance its ``__init__`` would build, without running the
    constructor's validation (the parser has just checked the text) and about twice as
    fast as ``object.__setattr__`` on the frozen class. Every field must be set."""
    return type(f"_{cls.__name__}Builder", (), {"__slots__": cls.__dict__["__slots__"]})


_new: Final = object.__new__
_SipURIBuilder: Final = _builder(SipURI)


# ---------------------------------------------------------------------------------------
# tel URIs (RFC 3966)
# ---------------------------------------------------------------------------------------

_VISUAL_SEPARATORS: Final = str.maketrans("", "", "-.()")
_TEL_PARAMCHAR: Final = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})"
_TEL_PARAMS: Final = rf"(?:;[A-Za-z0-9\-]+(?:={_TEL_PARAMCHAR}+)?)*"
_TEL_NUMBER: Final = r"\+[0-9().\-]+|[0-9A-Fa-f*#().\-]+"
_TEL_RE: Final = re.compile(
    rf"(?P<scheme>[Tt][Ee][Ll]):(?P<number>{_TEL_NUMBER})(?P<params>{_TEL_PARAMS})"
)
_TEL_NUMBER_RE: Final = re.compile(_TEL_NUMBER)
_TEL_PNAME_RE: Final = re.compile(r"[A-Za-z0-9\-]+")
_TEL_PVALUE_RE: Final = re.compile(f"{_TEL_PARAMCHAR}+")


def _tel_number_problem(number: str) -> str | None:
    if _TEL_NUMBER_RE.fullmatch(number) is None:
        return f"invalid telephone number {_reason_snippet(number)}"
    digits = number.translate(_VISUAL_SEPARATORS)
    if number.startswith("+"):
        if len(digits) < 2:
            return "global number without digits"
    elif not digits:
        return "local number without digits"
    return None


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966 §3): a global (``+`` E.164) or local number and parameters.

    ``number`` keeps its visual separators as written; :attr:`digits` drops them.
    Equality follows RFC 3966 §4: both global or both local, the same digits, the same
    set of parameters (by name, any order), ``phone-context`` compared as a host name or
    digit by digit, everything case-insensitive.

    RFC 3966 §5.1.5 requires a ``phone-context`` on local numbers; for robustness
    (``tel:911`` is common in practice) a local number without one is accepted.
    """

    number: str
    params: Params = ()
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _tel_number_problem(self.number)
        if problem is not None:
            raise LocalProtocolError(problem)
        for name, value in self.params:
            if not _TEL_PNAME_RE.fullmatch(name) or (
                value is not None and not _TEL_PVALUE_RE.fullmatch(value)
            ):
                raise LocalProtocolError(f"invalid tel URI parameter {name!r}={value!r}")

    @property
    def scheme(self) -> str:
        """Always ``"tel"``."""
        return "tel"

    @classmethod
    def parse(cls, text: str) -> TelURI:
        """Parse ``telephone-uri`` (RFC 3966 §3); RemoteProtocolError 400 if malformed."""
        match = _TEL_RE.fullmatch(text)
        if match is None:
            raise RemoteProtocolError(f"malformed tel URI {_reason_snippet(text)}")
        number = match.group("number")
        problem = _tel_number_problem(number)
        if problem is not None:
            raise RemoteProtocolError(f"{problem} in tel URI {_reason_snippet(text)}")
        params_text = match.group("params")
        params = _split_params(params_text) if params_text else ()
        uri = object.__new__(cls)
        object.__setattr__(uri, "number", number)
        object.__setattr__(uri, "params", params)
        object.__setattr__(uri, "_text", text)
        return uri

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        return f"tel:{self.number}{_render_params(self.params)}"

    @property
    def is_global(self) -> bool:
        """True for a global number (``+`` followed by E.164 digits)."""
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``-`` ``.`` ``(`` ``)``)."""
        return self.number.translate(_VISUAL_SEPARATORS)

    def param(self, name: str) -> str | None:
        """Parameter value as written (case-insensitive name); None if absent/valueless."""
        return _lookup(self.params, name)[1]

    def has_param(self, name: str) -> bool:
        return _lookup(self.params, name)[0]

    @property
    def phone_context(self) -> str | None:
        """The ``phone-context`` parameter (RFC 3966 §5.1.5)."""
        return self.param("phone-context")

    @property
    def extension(self) -> str | None:
        """The ``ext`` parameter (RFC 3966 §5.1.4)."""
        return self.param("ext")

    @property
    def isub(self) -> str | None:
        """The ``isub`` parameter (RFC 3966 §5.1.3)."""
        return self.param("isub")

    def _comparison_key(self) -> tuple[Any, ...]:
        params = []
        for name, value in self.params:
            lname = name.lower()
            if value is None:
                norm = None
            elif lname == "ext" or (lname == "phone-context" and value.startswith("+")):
                norm = _canon_escapes(value).translate(_VISUAL_SEPARATORS).lower()
            else:
                norm = _canon_escapes(value).lower()
            params.append((lname, norm))
        return (self.is_global, self.digits.lower(), frozenset(params))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TelURI):
            return NotImplemented
        return self._comparison_key() == other._comparison_key()

    def __hash__(self) -> int:
        return hash(self._comparison_key())

    def replace(self, **changes: Any) -> TelURI:
        return _dc_replace(self, **changes)

    def with_param(self, name: str, value: str | None = None) -> TelURI:
        return _dc_replace(self, params=_with_param(self.params, name, value))

    def without_param(self, name: str) -> TelURI:
        return _dc_replace(self, params=_without_param(self.params, name))


# ---------------------------------------------------------------------------------------
# Any other scheme (RFC 3261 §25.1 absoluteURI, RFC 2396 §3)
# ---------------------------------------------------------------------------------------

_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_TYPED_SCHEMES: Final = frozenset({"sip", "sips", "tel"})
# hier-part / opaque-part: 1*uric (reserved / unreserved / escaped); "[" "]" for IPv6 hosts
_OPAQUE_RE: Final = re.compile(rf"(?:[{_UNRESERVED};/?:@&=+$,\[\]]|{_ESCAPED})+")


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsoluteURI:
    """A URI of any scheme other than sip, sips and tel, kept opaque (RFC 3261 §25.1
    ``absoluteURI``; RFC 4475 §3.3.2-§3.3.4). ``scheme`` is lower-cased; ``opaque`` is
    everything after the first ``:``, compared exactly."""

    scheme: str
    opaque: str
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _SCHEME_RE.fullmatch(self.scheme) or self.scheme != self.scheme.lower():
            raise LocalProtocolError(f"invalid (or not lower-case) URI scheme {self.scheme!r}")
        if self.scheme in _TYPED_SCHEMES:
            raise LocalProtocolError(f"use SipURI/TelURI for {self.scheme!r} URIs")
        if not _OPAQUE_RE.fullmatch(self.opaque):
            raise LocalProtocolError(f"invalid URI {self.scheme}:{self.opaque!r}")

    @classmethod
    def parse(cls, text: str) -> AbsoluteURI:
        """Parse ``absoluteURI``; RemoteProtocolError 400 if malformed."""
        scheme, colon, opaque = text.partition(":")
        if not colon or not _SCHEME_RE.fullmatch(scheme):
            raise RemoteProtocolError(f"URI without a valid scheme: {_reason_snippet(text)}")
        if scheme.lower() in _TYPED_SCHEMES:
            raise RemoteProtocolError(
                f"{scheme.lower()}: URIs are not opaque (use parse_uri): {_reason_snippet(text)}"
            )
        if not _OPAQUE_RE.fullmatch(opaque):
            if not opaque:
                raise RemoteProtocolError(f"empty URI after scheme: {_reason_snippet(text)}")
            raise RemoteProtocolError(f"invalid character in URI {_reason_snippet(text)}")
        uri = object.__new__(cls)
        object.__setattr__(uri, "scheme", scheme.lower())
        object.__setattr__(uri, "opaque", opaque)
        object.__setattr__(uri, "_text", text)
        return uri

    def __str__(self) -> str:
        return self._text if self._text is not None else f"{self.scheme}:{self.opaque}"


URI: TypeAlias = SipURI | TelURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a Request-URI or addr-spec (RFC 3261 §25.1 ``Request-URI``/``addr-spec``).

    ``sip:``/``sips:`` give a :class:`SipURI`, ``tel:`` a :class:`TelURI`, any other
    well-formed scheme an :class:`AbsoluteURI` (the caller decides whether to answer
    416). Anything malformed -- embedded whitespace (RFC 4475 §3.1.2.8), ``<``/``>``
    (§3.1.2.7), a bare IPv6 address (RFC 5118 §4.2) -- raises RemoteProtocolError 400.
    """
    scheme = text[:5].partition(":")[0].lower()
    if scheme in ("sip", "sips"):
        return SipURI.parse(text)
    if scheme == "tel":
        return TelURI.parse(text)
    reason = _bad_char_reason(text)
    if reason is not None:
        raise RemoteProtocolError(reason)
    return AbsoluteURI.parse(text)
