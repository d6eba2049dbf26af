"""Parsing and serialising authentication header values (RFC 3261 §20.27, §20.28, §20.44,
§25.1; RFC 7235 §2.1; RFC 7616 §3.3-§3.5).

The grammar, shared by ``WWW-Authenticate``, ``Proxy-Authenticate``, ``Authorization`` and
``Proxy-Authorization`` (RFC 3261 §25.1, ``challenge`` / ``credentials``)::

    value      = auth-scheme LWS auth-param *(COMMA auth-param) / auth-scheme [LWS token68]
    auth-param = token EQUAL ( token / quoted-string )

is parsed by a small hand-written scanner that never splits on a comma inside a quoted string.
Names are compared case-insensitively and kept as written; whether a value was quoted is
remembered, so an unchanged value serialises back to an equivalent text and
``parse(str(x)) == x`` holds. Schemes other than ``Digest`` (RFC 4475 §3.1.2.19
``NoOneKnowsThisScheme``, ``Bearer`` with a token68, ...) are kept, not rejected.

Being liberal in what we accept (RFC 3261 §22.4 item 2 records that RFC 2617's grammar left
``uri`` unquoted, and old phones still send ``uri=sip:bob@biloxi.com``): an unquoted value
may hold any visible character except ``,`` and ``"``. Anything that cannot be read raises
:class:`~sipwire.core._errors.RemoteProtocolError` with status hint 400, and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Self

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_AUTH_PARAMS",
    "MAX_AUTH_VALUE_LENGTH",
    "AuthParam",
    "AuthenticationInfo",
    "Challenge",
    "Credentials",
]

#: Longest header value accepted (characters); a real Digest value is a few hundred.
MAX_AUTH_VALUE_LENGTH = 8192
#: Most auth-params accepted in one value.
MAX_AUTH_PARAMS = 64

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 7235 §2.1 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Folding (RFC 3261 §7.3.1): CRLF followed by whitespace is equivalent to one SP.
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_WS = " \t"


def _is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def _is_bare_char(ch: str) -> bool:
    """A character allowed in a lenient unquoted value: visible, not ``,`` or ``"``."""
    o = ord(ch)
    return o > 0x20 and o != 0x7F and ch not in ',"'


def _bare_ok(text: str) -> bool:
    return bool(text) and all(_is_bare_char(c) for c in text)


def quote(text: str) -> str:
    """Write ``text`` as a quoted-string (RFC 3261 §25.1), escaping ``"``, ``\\`` and CTLs."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in "\r\n":
            raise LocalProtocolError(f"CR/LF cannot be written in a quoted-string: {text!r}")
        if ch in '"\\' or (o < 0x20 and ch != "\t") or o == 0x7F:
            out.append("\\")
        out.append(ch)
    out.append('"')
    return "".join(out)


class AuthParam(NamedTuple):
    """One ``name=value`` auth-param: ``value`` is unquoted/unescaped (RFC 7616 §3.4.5 unq)."""

    name: str
    value: str
    quoted: bool

    def __str__(self) -> str:
        if not self.quoted and _bare_ok(self.value):
            return f"{self.name}={self.value}"
        return f"{self.name}={quote(self.value)}"


class _Scanner:
    """A cursor over one header value; every failure is a RemoteProtocolError(400)."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"malformed authentication header: {what} at {self.pos}", 400)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1
        return self.pos > start

    def token(self, what: str) -> str:
        m = _TOKEN_RE.match(self.text, self.pos)
        if m is None:
            raise self.fail(f"expected {what}")
        self.pos = m.end()
        return m.group()

    def quoted_string(self) -> str:
        # Caller has seen the opening DQUOTE.
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated quoted-string")
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                if self.pos + 1 >= len(text):
                    raise self.fail("backslash at end of quoted-string")
                nxt = text[self.pos + 1]
                if nxt in "\r\n":
                    raise self.fail("escaped CR/LF in quoted-string")
                out.append(nxt)
                self.pos += 2
                continue
            o = ord(ch)
            if (o < 0x20 and ch != "\t") or o == 0x7F:
                raise self.fail("control character in quoted-string")
            out.append(ch)
            self.pos += 1

    def bare_value(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and _is_bare_char(text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a parameter value")
        return text[start : self.pos]


def _prepare(value: str) -> str:
    if len(value) > MAX_AUTH_VALUE_LENGTH:
        raise RemoteProtocolError(
            f"authentication header longer than {MAX_AUTH_VALUE_LENGTH} characters", 400
        )
    value = _FOLD_RE.sub(" ", value).strip(" \t\r\n")
    if "\r" in value or "\n" in value:
        raise RemoteProtocolError("bare CR/LF in authentication header", 400)
    return value


def _parse_params(sc: _Scanner) -> tuple[AuthParam, ...]:
    """``auth-param *(COMMA auth-param)``, tolerating empty list elements (RFC 7230 §7)."""
    params: list[AuthParam] = []
    seen: set[str] = set()
    while True:
        sc.skip_ws()
        if sc.at_end():
            break
        if sc.peek() == ",":
            sc.pos += 1
            continue
        name = sc.token("a parameter name")
        sc.skip_ws()
        if sc.peek() != "=":
            raise sc.fail(f"expected '=' after {name!r}")
        sc.pos += 1
        sc.skip_ws()
        if sc.peek() == '"':
            param = AuthParam(name, sc.quoted_string(), True)
        else:
            param = AuthParam(name, sc.bare_value(), False)
        key = name.lower()
        if key in seen:
            # RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
            raise sc.fail(f"duplicate parameter {name!r}")
        seen.add(key)
        params.append(param)
        if len(params) > MAX_AUTH_PARAMS:
            raise sc.fail(f"more than {MAX_AUTH_PARAMS} parameters")
        sc.skip_ws()
        if sc.at_end():
            break
        if sc.peek() != ",":
            raise sc.fail("expected ',' between parameters")
        sc.pos += 1
    return tuple(params)


def _parse_scheme_value(value: str) -> tuple[str, tuple[AuthParam, ...], str | None]:
    text = _prepare(value)
    sc = _Scanner(text)
    scheme = sc.token("an auth-scheme")
    if sc.at_end():
        if scheme.lower() == "digest":
            raise sc.fail("Digest without parameters")
        return scheme, (), None
    if not sc.skip_ws():
        raise sc.fail("expected whitespace after the auth-scheme")
    rest = text[sc.pos :]
    if scheme.lower() != "digest" and _TOKEN68_RE.fullmatch(rest):
        # Only ``=`` padding may follow the characters, so ``a=b`` is never a token68.
        return scheme, (), rest
    params = _parse_params(sc)
    if not params:
        raise sc.fail("expected an auth-param")
    if scheme.lower() != "digest" and len(params) == 1:
        # ``x ,a==`` holds one parameter whose canonical text ``a==`` reads as a token68;
        # keep the token68 form so that parse(str(v)) == v.
        canonical = str(params[0])
        if _TOKEN68_RE.fullmatch(canonical):
            return scheme, (), canonical
    return scheme, params, None


@dataclass(frozen=True, slots=True)
class _SchemeValue:
    """An auth-scheme and its auth-params (or token68), names kept as written."""

    scheme: str
    params: tuple[AuthParam, ...] = ()
    token68: str | None = None

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse one header value; raise RemoteProtocolError(400) if it cannot be read."""
        scheme, params, token68 = _parse_scheme_value(value)
        return cls(scheme, params, token68)

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.params:
            return self.scheme
        return f"{self.scheme} " + ", ".join(str(p) for p in self.params)

    @property
    def is_digest(self) -> bool:
        """True for the ``Digest`` scheme (compared case-insensitively)."""
        return self.scheme.lower() == "digest"

    def param(self, name: str) -> str | None:
        """The unquoted value of parameter ``name`` (case-insensitive), or None."""
        key = name.lower()
        for p in self.params:
            if p.name.lower() == key:
                return p.value
        return None

    def has_param(self, name: str) -> bool:
        key = name.lower()
        return any(p.name.lower() == key for p in self.params)

    # Common Digest parameters, shared by challenges and credentials.
    @property
    def realm(self) -> str | None:
        return self.param("realm")

    @property
    def nonce(self) -> str | None:
        return self.param("nonce")

    @property
    def opaque(self) -> str | None:
        return self.param("opaque")

    @property
    def algorithm(self) -> str | None:
        """The ``algorithm`` token as written; None when absent (which means MD5)."""
        return self.param("algorithm")

    @property
    def userhash(self) -> bool:
        """RFC 7616 §3.4.4 ``userhash=true``."""
        v = self.param("userhash")
        return v is not None and v.lower() == "true"


def _build(
    names_values: list[tuple[str, str | None]], quoted_names: frozenset[str]
) -> tuple[AuthParam, ...]:
    return tuple(
        AuthParam(n, v, n in quoted_names or not _is_token(v))
        for n, v in names_values
        if v is not None
    )


# RFC 7616 §3.3: "a sender MUST only generate the quoted string syntax values for the
# following parameters: realm, domain, nonce, opaque, and qop" (stale, algorithm: never).
_CHALLENGE_QUOTED = frozenset({"realm", "domain", "nonce", "opaque", "qop"})
# RFC 7616 §3.4 (and RFC 3261 §22.4 item 2 for uri): quoted username, realm, nonce, uri,
# response, cnonce, opaque; never algorithm, qop, nc.
_CREDENTIALS_QUOTED = frozenset(
    {"username", "realm", "nonce", "uri", "response", "cnonce", "opaque"}
)
# RFC 7616 §3.5: quoted nextnonce, rspauth, cnonce; never qop, nc.
_INFO_QUOTED = frozenset({"nextnonce", "rspauth", "cnonce"})


@dataclass(frozen=True, slots=True)
class Challenge(_SchemeValue):
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 3261 §25.1 ``challenge``,
    RFC 7616 §3.3).

    ``Challenge.parse(text)``; ``str(challenge)``; build a Digest challenge with
    :meth:`digest`.
    """

    @classmethod
    def digest(
        cls,
        *,
        realm: str,
        nonce: str,
        algorithm: str | None = "MD5",
        qop: tuple[str, ...] | None = ("auth",),
        opaque: str | None = None,
        stale: bool = False,
        domain: str | None = None,
        userhash: bool = False,
        charset: str | None = None,
    ) -> Challenge:
        """A Digest challenge, quoting exactly as RFC 7616 §3.3 prescribes.

        RFC 3261 §22.4 item 8 / RFC 8760 §2.6 item 8: servers MUST always send ``qop``;
        ``qop=None`` exists only to test RFC 2069 clients.
        """
        items: list[tuple[str, str | None]] = [
            ("realm", realm),
            ("domain", domain),
            ("nonce", nonce),
            ("opaque", opaque),
            ("stale", "true" if stale else None),
            ("algorithm", algorithm),
            ("qop", ",".join(qop) if qop is not None else None),
            ("charset", charset),
            ("userhash", "true" if userhash else None),
        ]
        return cls("Digest", _build(items, _CHALLENGE_QUOTED))

    @property
    def stale(self) -> bool:
        """``stale=true`` (case-insensitive flag, RFC 7616 §3.3)."""
        v = self.param("stale")
        return v is not None and v.lower() == "true"

    @property
    def domain(self) -> str | None:
        return self.param("domain")

    @property
    def qop_options(self) -> tuple[str, ...] | None:
        """The offered ``qop`` values, or None when absent (RFC 2069 compatibility mode)."""
        v = self.param("qop")
        if v is None:
            return None
        return tuple(q.strip(" \t") for q in v.split(",") if q.strip(" \t"))

    @property
    def charset(self) -> str | None:
        return self.param("charset")


@dataclass(frozen=True, slots=True)
class Credentials(_SchemeValue):
    """An ``Authorization`` / ``Proxy-Authorization`` value (RFC 3261 §25.1 ``credentials``,
    RFC 7616 §3.4).

    ``Credentials.parse(text)``; ``str(credentials)``; build Digest credentials with
    :meth:`digest`.
    """

    @classmethod
    def digest(
        cls,
        *,
        username: str,
        realm: str,
        nonce: str,
        uri: str,
        response: str,
        algorithm: str | None = None,
        cnonce: str | None = None,
        opaque: str | None = None,
        qop: str | None = None,
        nc: str | None = None,
        userhash: bool = False,
    ) -> Credentials:
        """Digest credentials, quoting exactly as RFC 7616 §3.4 prescribes."""
        items: list[tuple[str, str | None]] = [
            ("username", username),
            ("realm", realm),
            ("nonce", nonce),
            ("uri", uri),
            ("response", response),
            ("algorithm", algorithm),
            ("cnonce", cnonce),
            ("opaque", opaque),
            ("qop", qop),
            ("nc", nc),
            ("userhash", "true" if userhash else None),
        ]
        return cls("Digest", _build(items, _CREDENTIALS_QUOTED))

    @property
    def username(self) -> str | None:
        """``username``, or the decoded RFC 5987 ``username*`` (RFC 7616 §3.4)."""
        v = self.param("username")
        if v is not None:
            return v
        ext = self.param("username*")
        return _decode_ext_value(ext) if ext is not None else None

    @property
    def uri(self) -> str | None:
        return self.param("uri")

    @property
    def response(self) -> str | None:
        return self.param("response")

    @property
    def cnonce(self) -> str | None:
        return self.param("cnonce")

    @property
    def qop(self) -> str | None:
        return self.param("qop")

    @property
    def nc(self) -> str | None:
        """The nonce-count exactly as written (``00000001``)."""
        return self.param("nc")


def _decode_ext_value(ext: str) -> str | None:
    """RFC 5987 §3.2 ``charset'lang'pct-encoded``; UTF-8 only (RFC 7616 §4)."""
    charset, sep1, rest = ext.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not (sep1 and sep2) or charset.lower() != "utf-8":
        return None
    out = bytearray()
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "%":
            pair = encoded[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                return None
            out.append(int(pair, 16))
            i += 3
        else:
            if ord(ch) > 0x7E:
                return None
            out.append(ord(ch))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True, slots=True)
class AuthenticationInfo:
    """An ``Authentication-Info`` / ``Proxy-Authentication-Info`` value (RFC 3261 §20.6,
    RFC 7616 §3.5): auth-params without a scheme (``nextnonce``, ``qop``, ``rspauth``,
    ``cnonce``, ``nc``)."""

    params: tuple[AuthParam, ...] = ()

    @classmethod
    def parse(cls, value: str) -> AuthenticationInfo:
        """Parse one value; raise RemoteProtocolError(400) if it cannot be read."""
        sc = _Scanner(_prepare(value))
        params = _parse_params(sc)
        if not params:
            raise sc.fail("empty Authentication-Info")
        return cls(params)

    @classmethod
    def build(
        cls,
        *,
        nextnonce: str | None = None,
        qop: str | None = None,
        rspauth: str | None = None,
        cnonce: str | None = None,
        nc: str | None = None,
    ) -> AuthenticationInfo:
        items: list[tuple[str, str | None]] = [
            ("nextnonce", nextnonce),
            ("qop", qop),
            ("rspauth", rspauth),
            ("cnonce", cnonce),
            ("nc", nc),
        ]
        params = _build(items, _INFO_QUOTED)
        if not params:
            raise LocalProtocolError("Authentication-Info needs at least one parameter")
        return cls(params)

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.params)

    def param(self, name: str) -> str | None:
        key = name.lower()
        for p in self.params:
            if p.name.lower() == key:
                return p.value
        return None

    @property
    def nextnonce(self) -> str | None:
        return self.param("nextnonce")

    @property
    def rspauth(self) -> str | None:
        return self.param("rspauth")

    @property
    def qop(self) -> str | None:
        return self.param("qop")

    @property
    def cnonce(self) -> str | None:
        return self.param("cnonce")

    @property
    def nc(self) -> str | None:
        return self.param("nc")
