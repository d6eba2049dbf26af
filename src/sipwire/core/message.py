"""SIP messages: :class:`Request`, :class:`Response`, parsing, serialization, builders.

RFC 3261 §7 (message format), §8.1.1/§8.2 (what a UA checks), §18.3 (framing),
§20 (header fields), §21 (status codes).

The hot path is lazy (DESIGN rule 6): :func:`parse_message` frames the datagram
(start line, Content-Length) and splits the header rows once -- with
``validate=False`` only when ``msg.headers`` is first used; a typed value
(``msg.top_via``, ``msg.cseq``, ``msg.from_``...) is parsed on first access and cached
until the headers change (the cached lists are shared: treat them as read-only).  An
unchanged message serializes to its original octets; a changed one re-serializes
unchanged rows byte for byte and keeps Content-Length equal to the body length.

Every typed accessor raises only :class:`RemoteProtocolError` when the value that
came from the network is malformed or missing (a message built locally that lacks a
required header raises the same, status hint 400).

Answering bad requests: :func:`parse_message` raises :class:`InvalidMessage` (a
RemoteProtocolError carrying the framed message) for anything framed but
unacceptable, so ``make_response(err.message, err.status_hint)`` builds the 400 /
501 / 505 from the raw Via, From, To, Call-ID and CSeq.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address, parse_contact
from sipwire.core.address import _parse_fast as _address_fast
from sipwire.core.address import _parse_fast_list as _address_list_fast
from sipwire.core.headers import Headers, _check_encodable, _Entry, is_token
from sipwire.core.headervalues import (
    ContentType,
    CSeq,
    Event,
    RAck,
    Replaces,
    SessionExpires,
    SubscriptionState,
    Via,
    parse_allow,
    parse_content_length,
    parse_expires,
    parse_max_forwards,
    parse_option_tags,
    parse_rseq,
)
from sipwire.core.headervalues import _parse_via_fast as _via_fast
from sipwire.core.uri import URI, SipURI, parse_uri

__all__ = [
    "REASON_PHRASES",
    "InvalidMessage",
    "KeepAlive",
    "Limits",
    "Message",
    "Request",
    "Response",
    "StreamParser",
    "make_ack",
    "make_cancel",
    "make_response",
    "parse_message",
    "reason_phrase",
]

_T = TypeVar("_T")
_MISSING: Any = object()

# Status code -> default reason phrase: RFC 3261 §21 and common extensions.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",  # RFC 6228
    200: "OK",
    202: "Accepted",  # RFC 3265
    204: "No Notification",  # RFC 5839
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",  # RFC 3903
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",  # RFC 4412
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028
    423: "Interval Too Brief",
    424: "Bad Location Information",  # RFC 6442
    428: "Use Identity Header",  # RFC 4474
    429: "Provide Referrer Identity",  # RFC 3892
    430: "Flow Failed",  # RFC 5626
    433: "Anonymity Disallowed",  # RFC 5079
    436: "Bad Identity-Info",  # RFC 4474
    437: "Unsupported Certificate",  # RFC 4474
    438: "Invalid Identity Header",  # RFC 4474
    439: "First Hop Lacks Outbound Support",  # RFC 5626
    440: "Max-Breadth Exceeded",  # RFC 5393
    469: "Bad Info Package",  # RFC 6086
    470: "Consent Needed",  # RFC 5360
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",  # RFC 6665
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",  # RFC 3329
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",  # RFC 8599
    580: "Precondition Failure",  # RFC 3312
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",  # RFC 8197
    608: "Rejected",  # RFC 8688
}

_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Request Failure",
    5: "Server Failure",
    6: "Global Failure",
}

# Methods an element may know (RFC 3261 and extensions); a CSeq mismatch on any
# other method is answered 501 rather than 400 (RFC 4475 §3.1.2.18).
KNOWN_METHODS = frozenset(
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


def reason_phrase(status: int) -> str:
    """The default reason phrase of ``status`` (a generic one for unknown codes)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_PHRASES.get(status // 100, "Unknown")


def _missing(name: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"missing {name} header")


def _single(headers: Headers, name: str) -> str:
    """The value of a header that must appear exactly once (RFC 3261 §7.3.1)."""
    return _exactly_one(headers, name.lower(), name)


def _exactly_one(headers: Headers, key: str, name: str) -> str:
    """:func:`_single` for a lookup key (``"from"``) and the name used in errors."""
    index = headers._index  # Headers._values(), inlined
    if index is None:
        index = headers._build_index()
    values = index.get(key)
    if values is not None and len(values) == 1:
        return values[0]
    if not values:
        raise _missing(name)
    raise RemoteProtocolError(f"more than one {name} header")


def _optional(headers: Headers, name: str, parse: Callable[[str], _T]) -> _T | None:
    """Parse a header that may appear at most once; None if absent."""
    values = headers._values(name.lower())
    if not values:
        return None
    if len(values) > 1:
        raise RemoteProtocolError(f"more than one {name} header")
    return parse(values[0])


def _tokens(headers: Headers, name: str, parse: Callable[[str], list[str]]) -> list[str]:
    out: list[str] = []
    for value in headers.values(name):
        out.extend(parse(value))
    return out


def _address_list(headers: Headers, name: str) -> list[Address]:
    out: list[Address] = []
    for value in headers.values(name):
        out.extend(Address.parse_list(value))
    return out


def _check_call_id(value: str) -> str:
    # callid = word [ "@" word ]; word has no whitespace and no comma or semicolon.
    if not value or any(c in value for c in " \t,;") or value.count("@") > 1:
        raise RemoteProtocolError(f"malformed Call-ID {value[:40]!r}")
    return value


class Message:
    """What requests and responses share: headers, body, lazy typed header values.

    ``msg.headers`` is a live :class:`Headers`; changing it drops the cached typed
    values and the cached wire form.  ``msg.body`` is bytes; setting it updates
    Content-Length.  Equality: same start line, same ``(name, value)`` rows in the
    same order, same body.
    """

    __slots__ = (
        "_body",
        "_cache",
        "_cache_version",
        "_head_text",
        "_headers",
        "_raw",
        "_raw_version",
    )

    # None while the header rows of a lazily parsed message are not split yet; then
    # ``_head_text`` holds the decoded header section (start line included).
    _headers: Headers | None
    _head_text: str | None
    _body: bytes
    _raw: bytes | None
    _raw_version: int
    _cache: dict[str, Any]
    _cache_version: int

    is_request: ClassVar[bool]

    def _init_common(
        self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes
    ) -> None:
        if not isinstance(body, bytes | bytearray):
            raise LocalProtocolError(f"body must be bytes, not {type(body).__name__}")
        if headers is None:
            self._headers = Headers()
        elif isinstance(headers, Headers):
            self._headers = headers
        else:
            self._headers = Headers(headers)
        self._body = bytes(body)
        self._head_text = None
        self._raw = None
        self._raw_version = 0
        self._cache = {}
        self._cache_version = 0
        self._fix_content_length()

    def _fix_content_length(self) -> None:
        self.headers.set("Content-Length", str(len(self._body)))

    # -- plain attributes ----------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """The header rows (mutable).

        After ``parse_message(..., validate=False)`` the rows are split on first
        access, which raises RemoteProtocolError if a header line is malformed."""
        headers = self._headers
        if headers is None:
            text = self._head_text
            assert text is not None
            headers = self._headers = _split_rows(text)
            self._head_text = None
        return headers

    @property
    def body(self) -> bytes:
        """The message body (octets after the empty line, framed by Content-Length)."""
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise LocalProtocolError(f"body must be bytes, not {type(value).__name__}")
        self._body = bytes(value)
        self._raw = None
        self._fix_content_length()

    # -- serialization -------------------------------------------------------------

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire.

        An unchanged parsed message gives back exactly the octets it was parsed from
        (less ignored trailing octets).  Otherwise unchanged rows keep their original
        text, new rows are written ``Name: value``, and Content-Length always equals
        the body length (added if missing).
        """
        raw = self._raw
        headers = self._headers
        if raw is not None and (headers is None or self._raw_version == headers._version):
            return raw
        headers = self.headers
        body = self._body
        size = str(len(body))
        lines = [self._start_line()]
        append = lines.append
        seen_length = False
        for key, name, value, text in headers._entries:
            if key == "content-length":
                if seen_length:
                    continue
                seen_length = True
                if value != size and not (
                    value.isdigit() and value.lstrip("0") == size.lstrip("0")
                ):
                    append(f"{name}: {size}")
                    continue
            append(text if text is not None else f"{name}: {value}")
        if not seen_length:
            append(f"Content-Length: {size}")
        append("")
        append("")
        data = "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
        self._raw = data
        self._raw_version = headers._version
        return data

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def copy(self: _M) -> _M:
        """An independent copy (headers copied; the cached wire form kept if valid)."""
        clone = object.__new__(type(self))
        self._copy_start_line(clone)
        headers = self._headers
        clone._headers = None if headers is None else headers.copy()
        clone._head_text = self._head_text
        clone._body = self._body
        valid = self._raw is not None and (headers is None or self._raw_version == headers._version)
        clone._raw = self._raw if valid else None
        clone._raw_version = 0
        clone._cache = {}
        clone._cache_version = 0
        return clone

    def _copy_start_line(self, clone: Any) -> None:
        raise NotImplementedError

    # -- lazy typed values ---------------------------------------------------------

    def _valid_cache(self) -> dict[str, Any]:
        headers = self._headers
        if headers is None:
            headers = self.headers
        if headers._version != self._cache_version:
            self._cache = {}
            self._cache_version = headers._version
        return self._cache

    def _typed(self, key: str, compute: Callable[[Headers], _T]) -> _T:
        headers = self._headers
        if headers is None:
            headers = self.headers
        if headers._version != self._cache_version:
            self._cache = {}
            self._cache_version = headers._version
        cache = self._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = compute(headers)
            cache[key] = value
        return value  # type: ignore[no-any-return]

    # The properties every transaction and dialog reads (via, top_via, from_, to,
    # call_id, cseq, contact) inline what _typed() does when the cache is current, read
    # the header index directly ((index or build)[key] is Headers._values(key)) and
    # call the parsers' fast forms (then, if those decline, the general parsers or the
    # _compute_* function, which also raise the errors).

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (§20.42)."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            self._valid_cache()
            headers = self.headers
        cache = self._cache
        vias: list[Via] | None = cache.get("via")
        if vias is None:
            top: Via | None = cache.get("top_via")
            rows = (headers._index or headers._build_index()).get("via", ())
            if top is not None and len(rows) == 1 and "," not in rows[0]:
                vias = [top]
            else:
                vias = _compute_vias(headers, cache)
            cache["via"] = vias
        return vias

    @property
    def top_via(self) -> Via:
        """The first Via value (the transaction's branch lives here, §17.1.3, §17.2.3).

        Only the first value is parsed (a proxy rarely needs the others)."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            self._valid_cache()
            headers = self.headers
        cache = self._cache
        top: Via | None = cache.get("top_via")
        if top is None:
            rows = (headers._index or headers._build_index()).get("via")
            if rows and "," not in rows[0] and "via" not in cache:
                top = _via_fast(rows[0]) or Via._parse_general(rows[0])
            else:
                top = _compute_top_via(headers, cache)
            cache["top_via"] = top
        return top

    @property
    def from_(self) -> Address:
        """The From header (§20.20); exactly one is required."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            return self._typed("from", _compute_from)
        cache = self._cache
        value: Address | None = cache.get("from")
        if value is None:
            rows = (headers._index or headers._build_index()).get("from")
            text = rows[0] if rows and len(rows) == 1 else _exactly_one(headers, "from", "From")
            value = cache["from"] = _address_fast(text) or Address._parse_general(text)
        return value

    @property
    def to(self) -> Address:
        """The To header (§20.39); exactly one is required."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            return self._typed("to", _compute_to)
        cache = self._cache
        value: Address | None = cache.get("to")
        if value is None:
            rows = (headers._index or headers._build_index()).get("to")
            text = rows[0] if rows and len(rows) == 1 else _exactly_one(headers, "to", "To")
            value = cache["to"] = _address_fast(text) or Address._parse_general(text)
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8), as written."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            return self._typed("call-id", _compute_call_id)
        cache = self._cache
        value: str | None = cache.get("call-id")
        if value is None:
            value = cache["call-id"] = _compute_call_id(headers)
        return value

    @property
    def cseq(self) -> CSeq:
        """The CSeq (§20.16): sequence number and method."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            return self._typed("cseq", _compute_cseq)
        cache = self._cache
        value: CSeq | None = cache.get("cseq")
        if value is None:
            rows = (headers._index or headers._build_index()).get("cseq")
            text = rows[0] if rows and len(rows) == 1 else _exactly_one(headers, "cseq", "CSeq")
            value = cache["cseq"] = CSeq.parse(text)
        return value

    @property
    def contact(self) -> list[Address]:
        """Every Contact value (§20.10); empty for ``Contact: *`` (see contact_is_star)."""
        headers = self._headers
        if headers is None or headers._version != self._cache_version:
            return self._typed("contact", _compute_contacts) or []
        cache = self._cache
        value: list[Address] | None = cache.get("contact", _MISSING)
        if value is _MISSING:
            rows = (headers._index or headers._build_index()).get("contact")
            value = _address_list_fast(rows[0]) if rows and len(rows) == 1 else None
            if value is None:  # several rows, the wildcard, other forms, errors
                value = _compute_contacts(headers)
            cache["contact"] = value
        return value or []

    @property
    def contact_is_star(self) -> bool:
        """True for the REGISTER wildcard ``Contact: *`` (§10.2.2)."""
        return "contact" in self.headers and self._typed("contact", _compute_contacts) is None

    @property
    def route(self) -> list[Address]:
        """Every Route value, top first (§20.34)."""
        return self._typed("route", lambda h: _address_list(h, "Route"))

    @property
    def record_route(self) -> list[Address]:
        """Every Record-Route value, top first (§20.30)."""
        return self._typed("record-route", lambda h: _address_list(h, "Record-Route"))

    @property
    def path(self) -> list[Address]:
        """Every Path value (RFC 3327)."""
        return self._typed("path", lambda h: _address_list(h, "Path"))

    @property
    def service_route(self) -> list[Address]:
        """Every Service-Route value (RFC 3608)."""
        return self._typed("service-route", lambda h: _address_list(h, "Service-Route"))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22), 0..255, or None if absent."""
        return self._typed(
            "max-forwards", lambda h: _optional(h, "Max-Forwards", parse_max_forwards)
        )

    @property
    def content_length(self) -> int | None:
        """The Content-Length header value, or None if absent."""
        return self._typed(
            "content-length", lambda h: _optional(h, "Content-Length", parse_content_length)
        )

    @property
    def content_type(self) -> ContentType | None:
        """The Content-Type (§20.15), or None if absent."""
        return self._typed("content-type", _compute_content_type)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (§20.19), or None if absent."""
        return self._typed("expires", lambda h: _optional(h, "Expires", parse_expires))

    @property
    def min_expires(self) -> int | None:
        """The Min-Expires header (§20.23), or None if absent."""
        return self._typed(
            "min-expires",
            lambda h: _optional(h, "Min-Expires", lambda v: parse_expires(v, "Min-Expires")),
        )

    @property
    def require(self) -> list[str]:
        """Option tags of Require (§20.32)."""
        return self._typed(
            "require", lambda h: _tokens(h, "Require", lambda v: parse_option_tags(v, "Require"))
        )

    @property
    def proxy_require(self) -> list[str]:
        """Option tags of Proxy-Require (§20.29)."""
        return self._typed(
            "proxy-require",
            lambda h: _tokens(h, "Proxy-Require", lambda v: parse_option_tags(v, "Proxy-Require")),
        )

    @property
    def supported(self) -> list[str]:
        """Option tags of Supported (§20.37)."""
        return self._typed(
            "supported",
            lambda h: _tokens(h, "Supported", lambda v: parse_option_tags(v, "Supported")),
        )

    @property
    def unsupported(self) -> list[str]:
        """Option tags of Unsupported (§20.40)."""
        return self._typed(
            "unsupported",
            lambda h: _tokens(h, "Unsupported", lambda v: parse_option_tags(v, "Unsupported")),
        )

    @property
    def allow(self) -> list[str]:
        """Methods listed in Allow (§20.5)."""
        return self._typed("allow", lambda h: _tokens(h, "Allow", parse_allow))

    @property
    def event(self) -> Event | None:
        """The Event header (RFC 6665 §8.2.1), or None if absent."""
        return self._typed("event", lambda h: _optional(h, "Event", Event.parse))

    @property
    def subscription_state(self) -> SubscriptionState | None:
        """The Subscription-State header (RFC 6665 §8.2.3), or None if absent."""
        return self._typed(
            "subscription-state",
            lambda h: _optional(h, "Subscription-State", SubscriptionState.parse),
        )

    @property
    def rseq(self) -> int | None:
        """The RSeq header (RFC 3262 §7.1), or None if absent."""
        return self._typed("rseq", lambda h: _optional(h, "RSeq", parse_rseq))

    @property
    def rack(self) -> RAck | None:
        """The RAck header (RFC 3262 §7.2), or None if absent."""
        return self._typed("rack", lambda h: _optional(h, "RAck", RAck.parse))

    @property
    def session_expires(self) -> SessionExpires | None:
        """The Session-Expires header (RFC 4028 §4), or None if absent."""
        return self._typed(
            "session-expires", lambda h: _optional(h, "Session-Expires", SessionExpires.parse)
        )

    @property
    def replaces(self) -> Replaces | None:
        """The Replaces header (RFC 3891 §6.1), or None if absent."""
        return self._typed("replaces", lambda h: _optional(h, "Replaces", Replaces.parse))

    @property
    def refer_to(self) -> Address | None:
        """The Refer-To header (RFC 3515 §2.1), or None if absent."""
        return self._typed("refer-to", lambda h: _optional(h, "Refer-To", Address.parse))

    # -- validation ----------------------------------------------------------------

    def validate(self) -> None:
        """Check what a SIP element needs before acting on the message.

        Via present and well-formed; From, To, Call-ID and CSeq exactly once and
        well-formed (RFC 4475 multi01, insuf); Max-Forwards 0..255; Contact
        well-formed (RFC 4475 badinv01, regbadct...).  Requests also: a parseable
        Request-URI without URI headers (§19.1.1 Table 1, RFC 4475 escruri) and a CSeq
        method equal to the request method (mismatch01 -> 400; 501 when the method is
        unknown, mismatch02).  Raises :class:`InvalidMessage` carrying this message.
        """
        try:
            self._validate()
        except InvalidMessage:
            raise
        except RemoteProtocolError as exc:
            assert isinstance(self, Request | Response)
            raise InvalidMessage(exc.reason, exc.status_hint, self) from None

    def _validate(self) -> None:
        headers = self.headers
        if not self.via:
            raise _missing("Via")
        self.from_  # noqa: B018  (parse = check)
        self.to  # noqa: B018
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.max_forwards  # noqa: B018
        if "Contact" in headers:
            self.contact_is_star  # noqa: B018


_M = TypeVar("_M", bound=Message)


# compute(headers) functions of the typed properties.  The hot ones call the
# parsers' fast forms directly (one call less than Address.parse / Via.parse, which do
# the same: fast form, else the general parser).


def _compute_vias(headers: Headers, cache: dict[str, Any]) -> list[Via]:
    top: Via | None = cache.get("top_via")
    vias: list[Via] = []
    for value in headers._values("via"):
        if top is not None and not vias and "," not in value:
            vias.append(top)
        else:
            vias.extend(Via.parse_list(value))
    return vias


def _compute_top_via(headers: Headers, cache: dict[str, Any]) -> Via:
    vias: list[Via] | None = cache.get("via")
    if vias:
        return vias[0]
    rows = headers._values("via")
    if not rows:
        raise _missing("Via")
    first = rows[0]
    if "," in first:
        return Via.parse_list(first)[0]
    return _via_fast(first) or Via._parse_general(first)


def _compute_from(headers: Headers) -> Address:
    text = _exactly_one(headers, "from", "From")
    return _address_fast(text) or Address._parse_general(text)


def _compute_to(headers: Headers) -> Address:
    text = _exactly_one(headers, "to", "To")
    return _address_fast(text) or Address._parse_general(text)


def _compute_call_id(headers: Headers) -> str:
    return _check_call_id(_exactly_one(headers, "call-id", "Call-ID"))


def _compute_cseq(headers: Headers) -> CSeq:
    return CSeq.parse(_exactly_one(headers, "cseq", "CSeq"))


def _compute_contacts(headers: Headers) -> list[Address] | None:
    """Every Contact address, or None for the wildcard ``Contact: *`` (§10.2.2)."""
    rows = headers._values("contact")
    if len(rows) == 1:
        addresses = _address_list_fast(rows[0])  # what parse_contact gives, or None
        if addresses is not None:
            return addresses
    out: list[Address] = []
    for row in rows:
        parsed = parse_contact(row)
        if parsed == "*":
            if len(rows) != 1:
                raise RemoteProtocolError("Contact: * must be the only Contact value (§10.2.2)")
            return None
        out.extend(parsed)
    return out


def _compute_content_type(headers: Headers) -> ContentType | None:
    value = headers.get("Content-Type")
    return None if value is None else ContentType.parse(value)


class Request(Message):
    """A SIP request: ``Request(method, uri, headers=None, body=b"")``.

    ``uri`` may be a URI object or its text; ``req.uri`` parses lazily (a parsed
    message keeps the Request-URI text as received, ``req.uri_text``).  Building a
    request sets Content-Length to the body length.
    """

    __slots__ = ("_method", "_uri", "_uri_text", "_version")

    is_request: ClassVar[bool] = True

    _method: str
    _uri: URI | None
    _uri_text: str
    _version: str

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        if not isinstance(method, str) or not is_token(method):
            raise LocalProtocolError(f"invalid method {method!r}")
        self._method = method
        self._set_uri(uri)
        self._version = "SIP/2.0"
        self._init_common(headers, body)

    def _set_uri(self, uri: URI | str) -> None:
        if isinstance(uri, str):
            text = uri
            parsed: URI | None = None
            if not text or any(c in text for c in " \t\r\n"):
                raise LocalProtocolError(f"invalid Request-URI {text!r}")
        else:
            text = str(uri)
            parsed = uri
        self._uri = parsed
        self._uri_text = text

    @property
    def method(self) -> str:
        """The method, case-sensitive as written (§7.1)."""
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if not isinstance(value, str) or not is_token(value):
            raise LocalProtocolError(f"invalid method {value!r}")
        self._method = value
        self._raw = None

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first access (RemoteProtocolError if malformed)."""
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text)
        return uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        self._set_uri(value)
        self._raw = None

    @property
    def uri_text(self) -> str:
        """The Request-URI as it appears on the start line."""
        return self._uri_text

    @property
    def version(self) -> str:
        """The SIP-Version of the start line (``SIP/2.0``)."""
        return self._version

    def _start_line(self) -> str:
        return f"{self._method} {self._uri_text} {self._version}"

    def _copy_start_line(self, clone: Any) -> None:
        clone._method = self._method
        clone._uri = self._uri
        clone._uri_text = self._uri_text
        clone._version = self._version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self._method == other._method
            and self._uri_text == other._uri_text
            and self.headers == other.headers
            and self._body == other._body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri_text}>"

    def _validate(self) -> None:
        uri = self.uri
        if isinstance(uri, SipURI) and uri.headers:
            raise RemoteProtocolError("headers are not allowed in a Request-URI (§19.1.1)")
        super()._validate()
        cseq = self.cseq
        if cseq.method != self._method:
            status = 400 if self._method in KNOWN_METHODS else 501
            raise RemoteProtocolError(
                f"CSeq method {cseq.method!r} differs from the request method", status
            )


class Response(Message):
    """A SIP response: ``Response(status, reason=None, headers=None, body=b"")``.

    ``reason=None`` uses :func:`reason_phrase`.  Building a response sets
    Content-Length to the body length.
    """

    __slots__ = ("_reason", "_status", "_version")

    is_request: ClassVar[bool] = False

    _status: int
    _reason: str
    _version: str

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self._status = _check_status(status)
        self._reason = _check_reason(reason_phrase(status) if reason is None else reason)
        self._version = "SIP/2.0"
        self._init_common(headers, body)

    @property
    def status(self) -> int:
        """The Status-Code, 100..699."""
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = _check_status(value)
        self._raw = None

    @property
    def reason(self) -> str:
        """The Reason-Phrase (may be empty, may be UTF-8, §7.2)."""
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = _check_reason(value)
        self._raw = None

    @property
    def version(self) -> str:
        """The SIP-Version of the start line (``SIP/2.0``)."""
        return self._version

    @property
    def status_class(self) -> int:
        """1..6: provisional, success, redirection, client/server/global failure."""
        return self._status // 100

    def _start_line(self) -> str:
        return f"{self._version} {self._status} {self._reason}"

    def _copy_start_line(self, clone: Any) -> None:
        clone._status = self._status
        clone._reason = self._reason
        clone._version = self._version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self._status == other._status
            and self._reason == other._reason
            and self.headers == other.headers
            and self._body == other._body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"


def _check_status(status: int) -> int:
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 699:
        raise LocalProtocolError(f"status code must be an int in 100..699, not {status!r}")
    return status


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or any(c in reason for c in "\r\n"):
        raise LocalProtocolError(f"invalid reason phrase {reason!r}")
    if not reason.isascii():
        _check_encodable(reason)
    return reason


# -- builders ----------------------------------------------------------------------


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2).

    Copies every Via (in order), From, To, Call-ID and CSeq as written; adds
    ``;tag=to_tag`` to To if given and To has no tag yet (§8.2.6.2: a UAS adds one
    to every response except 100).  A 100 (Trying) echoes Timestamp (§8.2.6.1).  A
    101..299 response copies Record-Route (§12.1.1, needed for dialogs).  Reads only
    raw header values, so it works on a request that failed validation
    (:class:`InvalidMessage` ``.message``).
    """
    if not isinstance(request, Request):
        raise LocalProtocolError("make_response needs a Request")
    # The request's rows were checked when they were parsed or added: copy them as
    # entries (no name/value re-checks), under the long header names.
    values = request.headers._values
    entries: list[_Entry] = []
    append = entries.append
    for key, name in _RESPONSE_COPIED:
        for value in values(key):
            append((key, name, value, None))
    if to_tag is not None:
        if not is_token(to_tag):
            raise LocalProtocolError(f"invalid tag {to_tag!r}")
        for i, entry in enumerate(entries):
            if entry[0] == "to":
                try:
                    has_tag = request.to.tag is not None
                except RemoteProtocolError:  # a malformed To: answer without adding one
                    has_tag = True
                if not has_tag:
                    entries[i] = ("to", "To", f"{entry[2]};tag={to_tag}", None)
                break
    if status == 100:
        for value in values("timestamp"):
            append(("timestamp", "Timestamp", value, None))
    elif 101 <= status < 300:
        for value in values("record-route"):
            append(("record-route", "Record-Route", value, None))
    return Response(status, reason, Headers._from_entries(entries))


# What make_response copies from the request, in this order: (lookup key, name written).
_RESPONSE_COPIED: tuple[tuple[str, str], ...] = (
    ("via", "Via"),
    ("from", "From"),
    ("to", "To"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
)


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, CSeq method ACK,
    only the INVITE's top Via, To from the response (with its tag), the INVITE's
    Route set, and its Max-Forwards.  (The ACK of a 2xx is a new transaction built by
    the dialog layer, §13.2.2.4.)
    """
    if not isinstance(invite, Request) or invite.method != "INVITE":
        raise LocalProtocolError("make_ack needs the INVITE request")
    if not isinstance(response, Response) or response.status < 300:
        raise LocalProtocolError("make_ack is for non-2xx final responses (§17.1.1.3)")
    src = invite.headers
    top_via = src.get("Via")
    if top_via is None:
        raise LocalProtocolError("the INVITE has no Via")
    rows: list[tuple[str, str]] = [("Via", str(invite.top_via) if "," in top_via else top_via)]
    for value in src.values("Route"):
        rows.append(("Route", value))
    rows.append(("From", _single(src, "From")))
    rows.append(("To", _single(response.headers, "To")))
    rows.append(("Call-ID", _single(src, "Call-ID")))
    rows.append(("CSeq", f"{invite.cseq.seq} ACK"))
    max_forwards = src.get("Max-Forwards")
    rows.append(("Max-Forwards", max_forwards if max_forwards is not None else "70"))
    return Request("ACK", invite.uri_text, rows)


def make_cancel(invite: Request) -> Request:
    """The CANCEL of a pending INVITE (§9.1).

    Same Request-URI, Call-ID, From, To (tags as they were) and CSeq number, CSeq
    method CANCEL, only the top Via, the INVITE's Route set and its Max-Forwards.
    """
    if not isinstance(invite, Request) or invite.method != "INVITE":
        raise LocalProtocolError("only an INVITE can be cancelled (§9.1)")
    src = invite.headers
    top_via = src.get("Via")
    if top_via is None:
        raise LocalProtocolError("the INVITE has no Via")
    rows: list[tuple[str, str]] = [("Via", str(invite.top_via) if "," in top_via else top_via)]
    for value in src.values("Route"):
        rows.append(("Route", value))
    rows.append(("From", _single(src, "From")))
    rows.append(("To", _single(src, "To")))
    rows.append(("Call-ID", _single(src, "Call-ID")))
    rows.append(("CSeq", f"{invite.cseq.seq} CANCEL"))
    max_forwards = src.get("Max-Forwards")
    rows.append(("Max-Forwards", max_forwards if max_forwards is not None else "70"))
    return Request("CANCEL", invite.uri_text, rows)


from sipwire.core._parser import (  # noqa: E402  (circular: _parser builds our classes)
    InvalidMessage,
    KeepAlive,
    Limits,
    StreamParser,
    _split_rows,
    parse_message,
)
