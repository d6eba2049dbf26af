"""Typed views of SIP header values: Via, CSeq, Content-Type, Event, Subscription-State,
RAck/RSeq, Replaces, Session-Expires, option-tag and method lists, integer headers.

Every ``parse`` accepts the header *value* (the text after ``HCOLON``; folded lines are
tolerated) and returns a frozen, slotted dataclass whose ``str()`` is a valid value
again. Bad input raises only :class:`~sipwire.core._errors.RemoteProtocolError` (400)
with a human reason; building a value with bad fields raises LocalProtocolError.
Digest challenges and credentials live in :mod:`sipwire.core.digest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import replace as _dc_replace
from typing import Any, Final, Literal

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.uri import (
    _HOSTNAME,
    _IPV4_RE,
    _IPV6REF,
    SIMPLE_PARAMS,
    TOKEN_CLASS,
    Params,
    _builder,
    _check_generic_params,
    _host_problem,
    _lookup,
    _port_value,
    _reason_snippet,
    _render_params,
    _scan_params,
    _split_params,
    _unfold,
    _with_param,
    _without_param,
    is_ip_address,
    is_token,
    unquote_string,
)

__all__ = [
    "CSEQ_MAX",
    "DELTA_SECONDS_MAX",
    "MAX_FORWARDS_MAX",
    "CSeq",
    "ContentType",
    "Event",
    "RAck",
    "Replaces",
    "SessionExpires",
    "SubscriptionState",
    "Via",
    "parse_accept",
    "parse_allow",
    "parse_content_length",
    "parse_expires",
    "parse_int_header",
    "parse_max_forwards",
    "parse_min_se",
    "parse_option_tags",
    "parse_rseq",
    "parse_token_list",
]

#: CSeq sequence numbers are 0..2**31-1 (RFC 3261 §8.1.1.5); RAck's CSeq-num likewise.
CSEQ_MAX: Final = 2**31 - 1
#: delta-seconds (Expires, Min-Expires, expires params, Session-Expires): 0..2**32-1
#: (RFC 3261 §20.19; RFC 3262 §7.1 response-num uses the same bound).
DELTA_SECONDS_MAX: Final = 2**32 - 1
#: Max-Forwards is 0..255 (RFC 3261 §20.22).
MAX_FORWARDS_MAX: Final = 255
#: Content-Length upper bound accepted by :func:`parse_content_length` by default.
CONTENT_LENGTH_MAX: Final = 2**31 - 1

_T: Final = TOKEN_CLASS
_INT_RE: Final = re.compile(r"[ \t]*([0-9]+)[ \t]*")
_SEP_RE: Final = re.compile(r"[ \t]*,")


def _bounded_int(digits: str, name: str, maximum: int) -> int:
    """``int(digits)`` for ASCII digits, refusing values above *maximum* without ever
    converting an absurdly long string (RFC 4475 §3.1.2.4 ``scalar02``)."""
    stripped = digits.lstrip("0")
    if len(stripped) > len(str(maximum)) or (stripped and int(stripped) > maximum):
        raise RemoteProtocolError(
            f"{name}: value {_reason_snippet(digits, 30)} out of range (0-{maximum})"
        )
    return int(stripped) if stripped else 0


def parse_int_header(value: str, name: str, maximum: int) -> int:
    """Parse a ``1*DIGIT`` header value (Max-Forwards, Expires, Content-Length, RSeq, ...).

    Leading zeros are fine (RFC 4475 §3.1.1.1 ``wsinv``: ``0068``). Signs, empty values
    and values above *maximum* raise RemoteProtocolError 400 (RFC 4475 §3.1.2.3 ``ncl``,
    §3.1.2.4 ``scalar02``)."""
    match = _INT_RE.fullmatch(_unfold(value, name))
    if match is None:
        raise RemoteProtocolError(
            f"{name}: {_reason_snippet(value, 30)} is not a non-negative decimal integer"
        )
    return _bounded_int(match.group(1), name, maximum)


def parse_max_forwards(value: str) -> int:
    """Max-Forwards, 0..255 (RFC 3261 §20.22)."""
    return parse_int_header(value, "Max-Forwards", MAX_FORWARDS_MAX)


def parse_expires(value: str, name: str = "Expires") -> int:
    """Expires / Min-Expires delta-seconds, 0..2**32-1 (RFC 3261 §20.19, §20.23)."""
    return parse_int_header(value, name, DELTA_SECONDS_MAX)


def parse_content_length(value: str, maximum: int = CONTENT_LENGTH_MAX) -> int:
    """Content-Length, a non-negative integer (RFC 3261 §20.14)."""
    return parse_int_header(value, "Content-Length", maximum)


def parse_rseq(value: str) -> int:
    """RSeq response-num, 0..2**32-1 (RFC 3262 §7.1, §3)."""
    return parse_int_header(value, "RSeq", DELTA_SECONDS_MAX)


def _tail_error(what: str, text: str, pos: int, in_list: bool) -> RemoteProtocolError:
    rest = text[pos:].lstrip(" \t")
    if rest.startswith((";", "=")):
        return RemoteProtocolError(f"{what}: empty or malformed parameter: {_reason_snippet(rest)}")
    if rest.startswith(",") and not in_list:
        return RemoteProtocolError(f"{what}: several values where one is expected")
    return RemoteProtocolError(f"{what}: unexpected text {_reason_snippet(rest)}")


def _at_end(text: str, pos: int) -> bool:
    return pos == len(text) or not text[pos:].strip(" \t")


# ---------------------------------------------------------------------------------------
# Token lists: Require, Supported, Unsupported, Proxy-Require, Allow, Allow-Events
# ---------------------------------------------------------------------------------------

_TOKEN_LIST_RE: Final = re.compile(rf"[ \t]*(?:[{_T}]+(?:[ \t]*,[ \t]*[{_T}]+)*[ \t]*)?")


def parse_token_list(value: str, name: str = "header") -> list[str]:
    """A comma-separated list of tokens (RFC 3261 §7.3.1); ``""`` gives ``[]``.
    Empty elements (``a,,b``) raise RemoteProtocolError 400."""
    value = _unfold(value, name)
    if _TOKEN_LIST_RE.fullmatch(value) is None:
        raise RemoteProtocolError(f"{name}: malformed token list {_reason_snippet(value)}")
    return [item.strip(" \t") for item in value.split(",")] if value.strip(" \t") else []


def parse_option_tags(value: str, name: str = "Require") -> list[str]:
    """Require / Supported / Unsupported / Proxy-Require option-tags (RFC 3261 §20.32,
    §20.37, §20.40, §20.29; RFC 4475 §3.3.5 ``bext01``)."""
    return parse_token_list(value, name)


def parse_allow(value: str) -> list[str]:
    """Allow: a list of methods (RFC 3261 §20.5); methods are case-sensitive tokens."""
    return parse_token_list(value, "Allow")


# ---------------------------------------------------------------------------------------
# Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport; RFC 5118 §4.5)
# ---------------------------------------------------------------------------------------

_VIA_RE: Final = re.compile(
    rf"[ \t]*([{_T}]+)[ \t]*/[ \t]*([{_T}]+)[ \t]*/[ \t]*([{_T}]+)[ \t]+"
    rf"({_IPV6REF}|{_HOSTNAME})(?:[ \t]*:[ \t]*([0-9]+))?"
)
# The fast form (see "parse-path fast forms" in sipwire.core.uri): SIP/2.0, no LWS but
# the one SP, a host name or IPv4 address, simple parameters. The usual layout
# ";branch=token;rport[=port];received=IPv4" is captured piece by piece (each piece
# optional, in this order), already checked by the pattern but for the rport range;
# the parameters after them are split and checked in Python.
_VIA_FAST_RE: Final = re.compile(
    rf"SIP/2\.0/([{_T}]+) ([A-Za-z0-9_.\-]+)(?::([0-9]{{1,5}}))?"
    rf"(?:;branch=([{_T}]+))?(;rport(?:=([0-9]{{1,5}}))?)?(?:;received=({_IPV4_RE.pattern}))?"
    rf"({SIMPLE_PARAMS})"
)
_PROTOCOL_RE: Final = re.compile(rf"[{_T}]+/[{_T}]+")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_VIA_CHECKED_PARAMS: Final = frozenset({"branch", "received", "rport", "ttl", "maddr"})


def _via_param_problem(name: str, value: str | None) -> str | None:
    """Check the via-params with a defined syntax (RFC 3261 §20.42 / §25.1; RFC 3581 §4)."""
    lname = name.lower()
    if lname == "branch":
        if value is None or not is_token(value):
            return "branch must be a token"
    elif lname == "received":
        if value is None or not is_ip_address(value):
            return f"received must be an IP address, not {_reason_snippet(value or '')}"
    elif lname == "rport":
        if value is not None and (
            not _DIGITS_RE.fullmatch(value) or len(value) > 5 or (int(value) > 65535)
        ):
            return f"rport must be a port number, not {_reason_snippet(value)}"
    elif lname == "ttl":
        if value is None or not _DIGITS_RE.fullmatch(value) or len(value) > 3 or int(value) > 255:
            return f"ttl must be 0-255, not {_reason_snippet(value or '')}"
    elif lname == "maddr" and (value is None or _host_problem(value) is not None):
        return f"maddr must be a host, not {_reason_snippet(value or '')}"
    return None


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm (RFC 3261 §20.42): ``SIP/2.0/UDP host[:port];params``.

    ``transport`` is upper-cased (unknown transports are kept: RFC 4475 §3.1.1.10);
    ``host`` keeps IPv6 brackets; ``params`` keep order and spelling. The ``branch``,
    ``received`` (IPv4 or IPv6, with or without brackets: RFC 5118 §4.5), ``rport``
    (RFC 3581), ``ttl`` and ``maddr`` parameters are syntax-checked when parsing.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if not is_token(self.transport):
            raise LocalProtocolError(f"Via transport {self.transport!r} is not a token")
        if not _PROTOCOL_RE.fullmatch(self.protocol):
            raise LocalProtocolError(f"Via protocol {self.protocol!r} is not name/version")
        problem = _host_problem(self.host)
        if problem is not None:
            raise LocalProtocolError(f"Via: {problem}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"Via port {self.port} out of range")
        _check_generic_params(self.params, "Via")
        for name, value in self.params:
            problem = _via_param_problem(name, value)
            if problem is not None:
                raise LocalProtocolError(f"Via: {problem}")

    @classmethod
    def _parse_at(cls, text: str, pos: int) -> tuple[Via, int]:
        match = _VIA_RE.match(text, pos)
        if match is None:
            rest = text[pos:].lstrip(" \t")
            if not rest or rest.startswith(","):
                raise RemoteProtocolError("Via: empty value (stray ',' or empty header)")
            raise RemoteProtocolError(
                "Via: expected 'SIP/2.0/transport host[:port]', got " + _reason_snippet(rest)
            )
        name, version, transport, host, port_text = match.groups()
        if host[0] in "[.-" or host[-1] == "-" or ".." in host or "-." in host or ".-" in host:
            problem = _host_problem(host)
            if problem is not None:
                raise RemoteProtocolError(f"Via: {problem}")
        port = None if port_text is None else _port_value(port_text, "Via")
        params, end = _scan_params(text, match.end())
        for pname, pvalue in params:
            if pname.lower() in _VIA_CHECKED_PARAMS:
                problem = _via_param_problem(pname, pvalue)
                if problem is not None:
                    raise RemoteProtocolError(f"Via: {problem}")
        via = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(via, "transport", transport.upper())
        setattr_(via, "host", host)
        setattr_(via, "port", port)
        setattr_(via, "params", params)
        setattr_(via, "protocol", f"{name}/{version}")
        return via, end

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm; LWS around ``/`` and ``:`` is allowed (RFC 4475 §3.1.1.1).
        RemoteProtocolError 400 for malformed values, e.g. ``;;,;,,`` (§3.1.2.1)."""
        via = _parse_via_fast(text)
        if via is not None:
            return via
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> Via:
        """:meth:`parse` without the fast path (every form, every error)."""
        text = _unfold(text, "Via")
        via, end = cls._parse_at(text, 0)
        if not _at_end(text, end):
            raise _tail_error("Via", text, end, in_list=False)
        return via

    @classmethod
    def parse_list(cls, text: str) -> list[Via]:
        """Parse a comma-separated Via value (RFC 3261 §7.3.1); never empty."""
        if "," not in text:
            via = _parse_via_fast(text)
            if via is not None:
                return [via]
        else:
            vias = []
            for piece in text.split(","):  # a simple via-parm never contains a comma
                via = _parse_via_fast(piece.strip(" \t"))
                if via is None:
                    break
                vias.append(via)
            else:
                return vias
        return cls._parse_list_general(text)

    @classmethod
    def _parse_list_general(cls, text: str) -> list[Via]:
        """:meth:`parse_list` without the fast path (every form, every error)."""
        text = _unfold(text, "Via")
        result: list[Via] = []
        pos = 0
        while True:
            via, pos = cls._parse_at(text, pos)
            result.append(via)
            if _at_end(text, pos):
                return result
            sep = _SEP_RE.match(text, pos)
            if sep is None:
                raise _tail_error("Via", text, pos, in_list=True)
            pos = sep.end()

    def __str__(self) -> str:
        host = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {host}{_render_params(self.params)}"

    # -- accessors -----------------------------------------------------------------------

    def param(self, name: str) -> str | None:
        """Parameter value as written (case-insensitive name); None if absent/valueless."""
        return _lookup(self.params, name)[1]

    def has_param(self, name: str) -> bool:
        return _lookup(self.params, name)[0]

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7)."""
        for key, value in self.params:  # _lookup(), inlined: transaction matching is hot
            if key == "branch" or key.lower() == "branch":
                return value
        return None

    @property
    def received(self) -> str | None:
        """The ``received`` IP address (RFC 3261 §18.2.1), IPv6 brackets removed
        (RFC 5118 §4.5 allows both spellings)."""
        value = self.param("received")
        if value is not None and value.startswith("["):
            return value[1:-1]
        return value

    @property
    def rport(self) -> int | None:
        """The ``rport`` value (RFC 3581 §4); None if absent or bare -- see :attr:`has_rport`."""
        value = self.param("rport")
        return None if value is None else int(value)

    @property
    def has_rport(self) -> bool:
        """True if ``rport`` is present, with or without a value (RFC 3581 §3)."""
        return self.has_param("rport")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.param("ttl")
        return None if value is None else int(value)

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port`` (RFC 3261 §20.42 sent-by)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    # -- derived copies ------------------------------------------------------------------

    def replace(self, **changes: Any) -> Via:
        return _dc_replace(self, **changes)

    def with_param(self, name: str, value: str | None = None) -> Via:
        """A copy with *name* set (replaced in place if present), e.g. a proxy adding
        ``received`` (RFC 3261 §18.2.1) or filling ``rport`` (RFC 3581 §4)."""
        return _dc_replace(self, params=_with_param(self.params, name, value))

    def without_param(self, name: str) -> Via:
        return _dc_replace(self, params=_without_param(self.params, name))


_new: Final = object.__new__
_ViaBuilder: Final = _builder(Via)  # see sipwire.core.uri._builder


def _parse_via_fast(text: str) -> Via | None:
    """``SIP/2.0/transport host[:port]*(;param)`` without LWS (but the one SP), with a
    host name or IPv4 address and simple parameters; None for anything else, including
    every malformed value (the general parser then gives the error)."""
    match = _VIA_FAST_RE.fullmatch(text)
    if match is None:
        return None
    transport, host, port_text, branch, rport, rport_value, received, params_text = match.groups()
    if ("-" in host or ".." in host or host[0] == ".") and (
        host[0] in ".-" or host[-1] == "-" or ".." in host or "-." in host or ".-" in host
    ):
        return None  # the general parser's host name error
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None
    params: Params
    if rport is None and received is None:
        if not params_text:
            params = () if branch is None else (("branch", branch),)
        else:
            rest = _split_params(params_text)
            if not _via_params_fine(rest):
                return None
            params = rest if branch is None else (("branch", branch), *rest)
    else:
        if rport_value is not None and int(rport_value) > 65535:
            return None
        items: list[tuple[str, str | None]] = []
        if branch is not None:
            items.append(("branch", branch))
        if rport is not None:
            items.append(("rport", rport_value))
        if received is not None:
            items.append(("received", received))
        if params_text:
            rest = _split_params(params_text)
            if not _via_params_fine(rest):
                return None
            items += rest
        params = tuple(items)
    via = _new(_ViaBuilder)
    via.transport = transport if transport.isupper() else transport.upper()
    via.host = host
    via.port = port
    via.params = params
    via.protocol = "SIP/2.0"
    via.__class__ = Via
    built: Via = via
    return built


def _via_params_fine(params: Params) -> bool:
    """True if the simple-form *params* pass :func:`_via_param_problem` (the common
    values are checked inline, anything else by that function)."""
    for name, value in params:
        lname = name.lower()
        if lname in _VIA_CHECKED_PARAMS:
            if lname == "rport":
                if value is not None and not (
                    value.isdigit() and len(value) < 6 and int(value) < 65536
                ):
                    return False
            elif lname == "received":
                if (value is None or _IPV4_RE.fullmatch(value) is None) and _via_param_problem(
                    name, value
                ) is not None:
                    return False
            elif lname == "branch":
                # a simple value is token characters plus ':' '[' ']'
                if value is None or (not value.isalnum() and not is_token(value)):
                    return False
            elif _via_param_problem(name, value) is not None:
                return False
    return True


# ---------------------------------------------------------------------------------------
# CSeq (RFC 3261 §20.16, §8.1.1.5)
# ---------------------------------------------------------------------------------------

_CSEQ_RE: Final = re.compile(rf"[ \t]*([0-9]+)[ \t]+([{_T}]+)[ \t]*")
# Methods of RFC 3261 and its extensions: the CSeq fast path needs no token check for them.
_KNOWN_METHODS: Final = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: seq METHOD``; seq is 0..2**31-1 (RFC 3261 §8.1.1.5), the method a
    case-sensitive token."""

    seq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= CSEQ_MAX:
            raise LocalProtocolError(f"CSeq number {self.seq} out of range (0-{CSEQ_MAX})")
        if not is_token(self.method):
            raise LocalProtocolError(f"CSeq method {self.method!r} is not a token")

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse a CSeq value; leading zeros are fine (RFC 4475 §3.1.1.1), an overlarge
        number is RemoteProtocolError 400 (§3.1.2.4 ``scalar02``)."""
        # Fast form: "digits SP METHOD" with a method every SIP element knows.
        number, space, method = text.partition(" ")
        if (
            space
            and method in _KNOWN_METHODS
            and len(number) < 10  # at most 999999999 <= CSEQ_MAX
            and number.isdigit()
            and number.isascii()
        ):
            cseq = _new(_CSeqBuilder)
            cseq.seq = int(number)
            cseq.method = method
            cseq.__class__ = CSeq
            built: CSeq = cseq
            if cls is not CSeq:  # a subclass: same fields, its own layout
                built = cls(built.seq, built.method)
            return built
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> CSeq:
        """:meth:`parse` without the fast path (every form, every error)."""
        match = _CSEQ_RE.fullmatch(_unfold(text, "CSeq"))
        if match is None:
            raise RemoteProtocolError(
                f"CSeq: expected 'number METHOD', got {_reason_snippet(text)}"
            )
        cseq = object.__new__(cls)
        object.__setattr__(cseq, "seq", _bounded_int(match.group(1), "CSeq", CSEQ_MAX))
        object.__setattr__(cseq, "method", match.group(2))
        return cseq

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSeqBuilder: Final = _builder(CSeq)  # see sipwire.core.uri._builder


# ---------------------------------------------------------------------------------------
# Content-Type and Accept (RFC 3261 §20.15, §20.1; RFC 2045)
# ---------------------------------------------------------------------------------------

_MEDIA_RE: Final = re.compile(rf"[ \t]*([{_T}]+)[ \t]*/[ \t]*([{_T}]+)")


@dataclass(frozen=True, slots=True)
class ContentType:
    """A media type ``type/subtype *(;param)`` (RFC 3261 §20.15); also an Accept
    media-range (``*/*``, ``application/*``). Type and subtype keep their spelling;
    :attr:`mime_type` is the lower-cased ``type/subtype``."""

    type: str
    subtype: str
    params: Params = ()

    def __post_init__(self) -> None:
        if not is_token(self.type) or not is_token(self.subtype):
            raise LocalProtocolError(f"invalid media type {self.type!r}/{self.subtype!r}")
        _check_generic_params(self.params, "Content-Type")

    @classmethod
    def _parse_at(cls, text: str, pos: int, what: str) -> tuple[ContentType, int]:
        match = _MEDIA_RE.match(text, pos)
        if match is None:
            raise RemoteProtocolError(
                f"{what}: expected type/subtype, got {_reason_snippet(text[pos:].strip())}"
            )
        params, end = _scan_params(text, match.end())
        value = object.__new__(cls)
        object.__setattr__(value, "type", match.group(1))
        object.__setattr__(value, "subtype", match.group(2))
        object.__setattr__(value, "params", params)
        return value, end

    @classmethod
    def parse(cls, text: str) -> ContentType:
        """Parse a Content-Type value (RFC 3261 §20.15); RemoteProtocolError 400 if bad."""
        text = _unfold(text, "Content-Type")
        value, end = cls._parse_at(text, 0, "Content-Type")
        if not _at_end(text, end):
            raise _tail_error("Content-Type", text, end, in_list=False)
        return value

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{_render_params(self.params)}"

    @property
    def mime_type(self) -> str:
        """``type/subtype`` lower-cased, e.g. ``"application/sdp"``."""
        return f"{self.type}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        """Parameter value unquoted (case-insensitive name), e.g. ``boundary``."""
        value = _lookup(self.params, name)[1]
        return None if value is None else unquote_string(value)

    def matches(self, mime_type: str) -> bool:
        """True if this media-range accepts *mime_type* (``*/*`` and ``type/*`` wildcards,
        RFC 3261 §20.1)."""
        want_type, _, want_subtype = mime_type.lower().partition("/")
        mine_type, mine_subtype = self.type.lower(), self.subtype.lower()
        if mine_type == "*":
            return True
        return mine_type == want_type and mine_subtype in ("*", want_subtype)


def parse_accept(value: str) -> list[ContentType]:
    """Accept: a comma-separated list of media-ranges (RFC 3261 §20.1); an empty value
    (no format acceptable) gives ``[]``."""
    value = _unfold(value, "Accept")
    if not value.strip(" \t"):
        return []
    result: list[ContentType] = []
    pos = 0
    while True:
        item, pos = ContentType._parse_at(value, pos, "Accept")
        result.append(item)
        if _at_end(value, pos):
            return result
        sep = _SEP_RE.match(value, pos)
        if sep is None:
            raise _tail_error("Accept", value, pos, in_list=True)
        pos = sep.end()


# ---------------------------------------------------------------------------------------
# Event and Subscription-State (RFC 6665 §8.2.1, §8.4)
# ---------------------------------------------------------------------------------------

_NODOT: Final = r"A-Za-z0-9\-!%*_+`'~"
_EVENT_TYPE: Final = rf"[{_NODOT}]+(?:\.[{_NODOT}]+)*"
_EVENT_RE: Final = re.compile(rf"[ \t]*({_EVENT_TYPE})")
_EVENT_TYPE_RE: Final = re.compile(_EVENT_TYPE)


def _parse_with_params(
    regex: re.Pattern[str], text: str, what: str
) -> tuple[re.Match[str], Params]:
    """Match *regex* at the start, then ``*(SEMI generic-param)`` to the end."""
    text = _unfold(text, what)
    match = regex.match(text)
    if match is None:
        raise RemoteProtocolError(f"{what}: malformed value {_reason_snippet(text.strip())}")
    params, end = _scan_params(text, match.end())
    if not _at_end(text, end):
        raise _tail_error(what, text, end, in_list=False)
    return match, params


@dataclass(frozen=True, slots=True)
class Event:
    """``Event: package[.template]*;id=...;params`` (RFC 6665 §8.2.1, §8.4).

    ``package`` is the whole event-type as written (``"presence"``, ``"presence.winfo"``);
    event types are compared byte by byte (RFC 6665 §8.2.1)."""

    package: str
    params: Params = ()

    def __post_init__(self) -> None:
        if not _EVENT_TYPE_RE.fullmatch(self.package):
            raise LocalProtocolError(f"invalid event type {self.package!r}")
        _check_generic_params(self.params, "Event")

    @classmethod
    def parse(cls, text: str) -> Event:
        match, params = _parse_with_params(_EVENT_RE, text, "Event")
        return cls(match.group(1), params)

    def __str__(self) -> str:
        return self.package + _render_params(self.params)

    @property
    def id(self) -> str | None:
        """The ``id`` parameter (RFC 6665 §8.2.1; deprecated but still matched)."""
        return _lookup(self.params, "id")[1]

    @property
    def event_package(self) -> str:
        """The package without templates (``"presence"`` for ``presence.winfo``)."""
        return self.package.partition(".")[0]

    @property
    def templates(self) -> tuple[str, ...]:
        """The event-template parts (``("winfo",)`` for ``presence.winfo``)."""
        return tuple(self.package.split(".")[1:])

    def param(self, name: str) -> str | None:
        return _lookup(self.params, name)[1]

    def matches(self, other: Event) -> bool:
        """Same subscription (RFC 6665 §8.2.1): equal event-type and equal ``id``."""
        return self.package == other.package and self.id == other.id


_STATE_RE: Final = re.compile(rf"[ \t]*([{_T}]+)")


def _unique_params(params: Params, what: str, names: tuple[str, ...]) -> dict[str, str | None]:
    """The values of the *names* parameters (lower-case keys); a repeated one is an error."""
    found: dict[str, str | None] = {}
    for name, value in params:
        lname = name.lower()
        if lname in names:
            if lname in found:
                raise RemoteProtocolError(f"{what}: duplicate {lname!r} parameter")
            if value is not None and value.startswith('"'):
                raise RemoteProtocolError(f"{what}: {lname!r} must not be a quoted-string")
            found[lname] = value
    return found


def _delta_param(found: dict[str, str | None], name: str, what: str) -> int | None:
    if name not in found:
        return None
    value = found[name]
    if value is None or not _DIGITS_RE.fullmatch(value):
        raise RemoteProtocolError(f"{what}: {name} must be delta-seconds")
    return _bounded_int(value, f"{what} {name}", DELTA_SECONDS_MAX)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionState:
    """``Subscription-State`` (RFC 6665 §8.2.3, §8.4): ``active``/``pending``/
    ``terminated`` (or an extension), with ``expires``, ``reason`` and ``retry-after``.
    ``state`` and ``reason`` are lower-cased (ABNF literals are case-insensitive);
    ``params`` holds the other (extension) parameters."""

    state: str
    expires: int | None = None
    reason: str | None = None
    retry_after: int | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        if not is_token(self.state):
            raise LocalProtocolError(f"invalid subscription state {self.state!r}")
        if self.reason is not None and not is_token(self.reason):
            raise LocalProtocolError(f"invalid subscription reason {self.reason!r}")
        for value in (self.expires, self.retry_after):
            if value is not None and not 0 <= value <= DELTA_SECONDS_MAX:
                raise LocalProtocolError(f"delta-seconds {value} out of range")
        _check_generic_params(self.params, "Subscription-State")
        for name, _ in self.params:
            if name.lower() in ("expires", "reason", "retry-after"):
                raise LocalProtocolError(f"use the {name!r} field, not params")

    @classmethod
    def parse(cls, text: str) -> SubscriptionState:
        what = "Subscription-State"
        match, params = _parse_with_params(_STATE_RE, text, what)
        found = _unique_params(params, what, ("expires", "reason", "retry-after"))
        reason = found.get("reason")
        if "reason" in found and (reason is None or not is_token(reason)):
            raise RemoteProtocolError(f"{what}: reason must be a token")
        return cls(
            state=match.group(1).lower(),
            expires=_delta_param(found, "expires", what),
            reason=None if reason is None else reason.lower(),
            retry_after=_delta_param(found, "retry-after", what),
            params=tuple(p for p in params if p[0].lower() not in found),
        )

    def __str__(self) -> str:
        parts = [self.state]
        if self.reason is not None:
            parts.append(f"reason={self.reason}")
        if self.expires is not None:
            parts.append(f"expires={self.expires}")
        if self.retry_after is not None:
            parts.append(f"retry-after={self.retry_after}")
        return ";".join(parts) + _render_params(self.params)


# ---------------------------------------------------------------------------------------
# RAck (RFC 3262 §7.2)
# ---------------------------------------------------------------------------------------

_RACK_RE: Final = re.compile(rf"[ \t]*([0-9]+)[ \t]+([0-9]+)[ \t]+([{_T}]+)[ \t]*")


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num Method`` (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.rseq <= DELTA_SECONDS_MAX or not 0 <= self.cseq <= CSEQ_MAX:
            raise LocalProtocolError("RAck numbers out of range")
        if not is_token(self.method):
            raise LocalProtocolError(f"RAck method {self.method!r} is not a token")

    @classmethod
    def parse(cls, text: str) -> RAck:
        match = _RACK_RE.fullmatch(_unfold(text, "RAck"))
        if match is None:
            raise RemoteProtocolError(
                f"RAck: expected 'rseq cseq METHOD', got {_reason_snippet(text)}"
            )
        return cls(
            _bounded_int(match.group(1), "RAck response-num", DELTA_SECONDS_MAX),
            _bounded_int(match.group(2), "RAck CSeq-num", CSEQ_MAX),
            match.group(3),
        )

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


# ---------------------------------------------------------------------------------------
# Replaces (RFC 3891 §6.1)
# ---------------------------------------------------------------------------------------

# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" / "(" /
#        ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
_WORD: Final = r"A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}"
_CALLID: Final = rf"[{_WORD}]+(?:@[{_WORD}]+)?"
_CALLID_RE: Final = re.compile(_CALLID)
_REPLACES_RE: Final = re.compile(rf"[ \t]*({_CALLID})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Replaces:
    """``Replaces: call-id;to-tag=..;from-tag=..[;early-only]`` (RFC 3891 §6.1).

    Exactly one ``to-tag`` and one ``from-tag`` are required (RFC 3891 §6.1).
    ``params`` holds any other (generic) parameters."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    params: Params = ()

    def __post_init__(self) -> None:
        if not _CALLID_RE.fullmatch(self.call_id):
            raise LocalProtocolError(f"invalid Call-ID {self.call_id!r}")
        if not is_token(self.to_tag) or not is_token(self.from_tag):
            raise LocalProtocolError("Replaces tags must be tokens")
        _check_generic_params(self.params, "Replaces")
        for name, _ in self.params:
            if name.lower() in ("to-tag", "from-tag", "early-only"):
                raise LocalProtocolError(f"use the field for {name!r}, not params")

    @classmethod
    def parse(cls, text: str) -> Replaces:
        """Parse a Replaces value (already unescaped if it came from a URI header)."""
        what = "Replaces"
        match, params = _parse_with_params(_REPLACES_RE, text, what)
        found = _unique_params(params, what, ("to-tag", "from-tag", "early-only"))
        to_tag, from_tag = found.get("to-tag"), found.get("from-tag")
        if to_tag is None or from_tag is None or not is_token(to_tag) or not is_token(from_tag):
            raise RemoteProtocolError(f"{what}: needs one to-tag and one from-tag token")
        if found.get("early-only", None) is not None:
            raise RemoteProtocolError(f"{what}: early-only takes no value")
        return cls(
            call_id=match.group(1),
            to_tag=to_tag,
            from_tag=from_tag,
            early_only="early-only" in found,
            params=tuple(p for p in params if p[0].lower() not in found),
        )

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return (
            f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"
            + _render_params(self.params)
        )


# ---------------------------------------------------------------------------------------
# Session-Expires and Min-SE (RFC 4028 §4, §5)
# ---------------------------------------------------------------------------------------

_DELTA_RE: Final = re.compile(r"[ \t]*([0-9]+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpires:
    """``Session-Expires: delta-seconds[;refresher=uac|uas]`` (RFC 4028 §4)."""

    delta: int
    refresher: Literal["uac", "uas"] | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        if not 0 <= self.delta <= DELTA_SECONDS_MAX:
            raise LocalProtocolError(f"Session-Expires {self.delta} out of range")
        if self.refresher not in (None, "uac", "uas"):
            raise LocalProtocolError(f"refresher must be 'uac' or 'uas', not {self.refresher!r}")
        _check_generic_params(self.params, "Session-Expires")
        if _lookup(self.params, "refresher")[0]:
            raise LocalProtocolError("use the refresher field, not params")

    @classmethod
    def parse(cls, text: str) -> SessionExpires:
        what = "Session-Expires"
        match, params = _parse_with_params(_DELTA_RE, text, what)
        found = _unique_params(params, what, ("refresher",))
        refresher: Literal["uac", "uas"] | None = None
        if "refresher" in found:
            value = (found["refresher"] or "").lower()
            if value == "uac":
                refresher = "uac"
            elif value == "uas":
                refresher = "uas"
            else:
                raise RemoteProtocolError(f"{what}: refresher must be uac or uas")
        return cls(
            delta=_bounded_int(match.group(1), what, DELTA_SECONDS_MAX),
            refresher=refresher,
            params=tuple(p for p in params if p[0].lower() != "refresher"),
        )

    def __str__(self) -> str:
        refresher = "" if self.refresher is None else f";refresher={self.refresher}"
        return f"{self.delta}{refresher}{_render_params(self.params)}"


def parse_min_se(value: str) -> int:
    """Min-SE delta-seconds (RFC 4028 §5); generic parameters are ignored."""
    match, _ = _parse_with_params(_DELTA_RE, value, "Min-SE")
    return _bounded_int(match.group(1), "Min-SE", DELTA_SECONDS_MAX)
