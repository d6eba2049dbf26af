"""SDP, the Session Description Protocol (RFC 8866), as typed, immutable values.

:func:`parse` turns an ``application/sdp`` body into a :class:`SessionDescription`;
:meth:`SessionDescription.serialize` / :meth:`~SessionDescription.to_bytes` turn it back
into text with CRLF line endings. ``parse(sd.serialize()) == sd`` holds for every value
the constructors accept, and a well-formed document in canonical field order serializes
to the same text it was parsed from (attribute values, ``s=``/``i=``/``u=``/``e=``/``p=``
text and unknown attributes are kept verbatim, in order).

Leniency (RFC 8866 §5 asks parsers to accept bare-LF line endings; real phones are
sloppier still):

* bare LF line endings, blank lines, runs of spaces between sub-fields and trailing
  whitespace on structured lines are accepted;
* session-level lines may come in any order (RFC 3264 §9's own example puts ``c=`` after
  ``t=``); they are serialized in the RFC 8866 §5 order;
* a missing ``s=`` or ``t=`` line is accepted (``session_name is None``,
  ``timings == ()``) and not invented on output;
* ``z=`` may follow any ``t=``/``r=`` group (RFC 8866 §9) or all of them (RFC 4566);
* ``k=`` lines are dropped, as RFC 8866 §5.12 requires; lines with a type letter SDP does
  not define are ignored (§5 allows ignoring them);
* an IPv6 connection address written in brackets is accepted and stored without them.

Anything else that is malformed raises :class:`~sipwire.core._errors.RemoteProtocolError`
(``status_hint`` 400; a user agent usually answers an unusable offer with 488) naming
the line. Input is bounded by :class:`SdpLimits`.

The typed accessors (:meth:`MediaDescription.rtpmaps`, :attr:`MediaDescription.ptime`,
:attr:`MediaDescription.rtcp`, ...) skip an attribute whose value they cannot parse, as
RFC 8866 §5.13 asks for attributes a receiver does not understand.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_SDP_LIMITS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "RepeatTime",
    "Rtcp",
    "RtpMap",
    "SdpLimits",
    "SessionDescription",
    "Timing",
    "ZoneAdjustment",
    "parse",
    "typed_time_seconds",
]


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True, kw_only=True, slots=True)
class SdpLimits:
    """Bounds applied by :func:`parse` (DESIGN rule 8).

    * ``max_size`` -- 65,536 octets (characters for ``str`` input). Real offers are a
      few hundred octets; WebRTC-style offers with many ICE candidates reach ~20 KB.
    * ``max_lines`` -- 2,048 lines, blank lines included.
    * ``max_media`` -- 64 ``m=`` lines.
    * ``max_attributes`` -- 1,024 ``a=`` lines per section (session or one media).
    """

    max_size: int = 65536
    max_lines: int = 2048
    max_media: int = 64
    max_attributes: int = 1024


DEFAULT_SDP_LIMITS = SdpLimits()


# --------------------------------------------------------------------------- helpers

_DIGITS = re.compile(r"[0-9]+")
_TYPED_TIME = re.compile(r"[0-9]{1,20}[dhms]?")
_OFFSET = re.compile(r"-?[0-9]{1,20}[dhms]?")
_REAL = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,10})?")
# IPv4/IPv6 literals (RFC 5952, with an optional %zone) and RFC 1035 host names.
_IP_HOST = re.compile(r"[A-Za-z0-9._:%-]+")
_BAD_TEXT = re.compile(r"[\r\n\x00]")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _uint(text: str, what: str, *, max_digits: int = 20, maximum: int | None = None) -> int:
    """Parse a decimal field from the network (ASCII digits only, bounded length)."""
    if len(text) > max_digits or not _DIGITS.fullmatch(text):
        raise RemoteProtocolError(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise RemoteProtocolError(f"{what} out of range: {value}")
    return value


def _check(condition: bool, message: str) -> None:
    """Constructor validation: a value that could not be serialized is API misuse."""
    if not condition:
        raise LocalProtocolError(message)


def _is_text(value: str) -> bool:
    return _BAD_TEXT.search(value) is None


def _is_word(value: str) -> bool:
    """A non-empty sub-field: no whitespace, no CR/LF/NUL (``non-ws-string``)."""
    return bool(value) and not any(c.isspace() or c == "\x00" for c in value)


def _is_ip_family(addrtype: str) -> bool:
    return addrtype.upper() in ("IP4", "IP6")


def typed_time_seconds(typed_time: str) -> int:
    """Seconds in an ``r=``/``z=`` typed time such as ``"7d"``, ``"-1h"`` or ``"3600"``.

    RFC 8866 §5.10, Table 1: the units ``d``, ``h``, ``m`` and ``s`` are case-sensitive.
    """
    sign = -1 if typed_time.startswith("-") else 1
    body = typed_time.lstrip("-")
    unit = _UNIT_SECONDS.get(body[-1:], 0) if body else 0
    if unit:
        body = body[:-1]
    if not _DIGITS.fullmatch(body):
        raise LocalProtocolError(f"not a typed time: {typed_time!r}")
    return sign * int(body) * (unit or 1)


# --------------------------------------------------------------------------- enums


class Direction(enum.StrEnum):
    """The media direction attributes of RFC 8866 §6.7 (RFC 3264 §5.1 semantics).

    The direction is always from the point of view of the SDP's author.
    """

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """Whether the author of the SDP sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether the author of the SDP receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        """The direction that sends and/or receives as asked."""
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same flow seen from the peer: sendonly <-> recvonly (RFC 3264 §6.1)."""
        return Direction.from_flags(send=self.receives, receive=self.sends)


_DIRECTIONS = frozenset(d.value for d in Direction)


# --------------------------------------------------------------------------- value types


class Attribute(NamedTuple):
    """One ``a=`` line (RFC 8866 §5.13): a property (``value is None``) or a value.

    The value is kept verbatim (leading and trailing whitespace included); a tuple
    ``("rtpmap", "0 PCMU/8000")`` compares equal to ``Attribute("rtpmap", "0 PCMU/8000")``.
    """

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def _normalize_attributes(attributes: Iterable[tuple[str, str | None]]) -> tuple[Attribute, ...]:
    """Validate attributes and turn plain ``(name, value)`` pairs into :class:`Attribute`."""
    result = []
    for attribute in attributes:
        _check(
            isinstance(attribute, tuple) and len(attribute) == 2,
            f"attribute {attribute!r} is not a (name, value) pair",
        )
        name, value = attribute
        _check(
            isinstance(name, str) and _is_word(name) and ":" not in name,
            f"bad attribute name {name!r}",
        )
        _check(
            value is None or (isinstance(value, str) and _is_text(value)),
            f"attribute {name} value has CR/LF/NUL",
        )
        result.append(attribute if type(attribute) is Attribute else Attribute(name, value))
    return tuple(result)


def _freeze(obj: object, *names: str) -> None:
    """Store sequence fields as tuples, so values hash and compare predictably."""
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, tuple):
            object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 8866 §5.2).

    ``session_id`` is kept as written (a numeric string by the grammar, compared as
    text); ``session_version`` is an integer because RFC 3264 §8 increments it.
    """

    username: str = "-"
    session_id: str
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str

    def __post_init__(self) -> None:
        _check(
            re.fullmatch(r"[^\s\x00]+(?: [^\s\x00]+)*", self.username) is not None,
            f"bad o= username {self.username!r}",
        )
        for name in ("session_id", "nettype", "addrtype", "address"):
            _check(_is_word(getattr(self, name)), f"bad o= {name} {getattr(self, name)!r}")
        _check(self.session_version >= 0, "o= session version must not be negative")

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def same_session(self, other: Origin) -> bool:
        """Whether both name the same session: every field but the version is equal.

        RFC 8866 §5.2: the fields other than ``<sess-version>`` identify the session.
        """
        return replace(self, session_version=0) == replace(other, session_version=0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 8866 §5.7).

    For ``IP4``, ``ttl`` and ``address_count`` are the ``/<ttl>/<number>`` suffixes of a
    multicast address; for ``IP6`` only ``/<number>`` exists, so ``ttl`` stays ``None``.
    For other address types the address is opaque and carries no suffixes.
    """

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str
    ttl: int | None = None
    address_count: int | None = None

    def __post_init__(self) -> None:
        _check(_is_word(self.nettype), f"bad c= nettype {self.nettype!r}")
        _check(_is_word(self.addrtype), f"bad c= addrtype {self.addrtype!r}")
        kind = self.addrtype.upper() if _is_ip_family(self.addrtype) else None
        ttl, count = self.ttl, self.address_count
        if kind is None:
            _check(_is_word(self.address), f"bad c= address {self.address!r}")
            _check(ttl is None and count is None, "ttl/count are only defined for IP4/IP6")
            return
        _check(_IP_HOST.fullmatch(self.address) is not None, f"bad c= address {self.address!r}")
        _check(ttl is None or (kind == "IP4" and 0 <= ttl <= 255), "c= ttl: IP4 only, 0..255")
        _check(count is None or count >= 1, "c= address count must be >= 1")
        _check(count is None or kind == "IP6" or ttl is not None, "IP4 c= count needs a ttl")

    def __str__(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.address_count is not None:
            address += f"/{self.address_count}"
        return f"{self.nettype} {self.addrtype} {address}"

    def _ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not _is_ip_family(self.addrtype) or len(self.address) > 64:
            return None
        try:
            return ipaddress.ip_address(self.address)
        except ValueError:  # a host name
            return None

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: RFC 2543 hold, "send no RTP or RTCP" (RFC 3264 §8.4)."""
        ip = self._ip()
        return ip is not None and ip.is_unspecified

    @property
    def is_multicast(self) -> bool:
        """An IPv4 224.0.0.0/4 or IPv6 ff00::/8 group address (RFC 8866 §5.7)."""
        ip = self._ip()
        return ip is not None and ip.is_multicast


@dataclass(frozen=True, kw_only=True, slots=True)
class Bandwidth:
    """A ``b=<bwtype>:<bandwidth>`` line (RFC 8866 §5.8), e.g. ``AS`` in kbit/s."""

    bwtype: str
    bandwidth: int

    def __post_init__(self) -> None:
        _check(_is_word(self.bwtype) and ":" not in self.bwtype, f"bad bwtype {self.bwtype!r}")
        _check(self.bandwidth >= 0, "bandwidth must not be negative")

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, kw_only=True, slots=True)
class RepeatTime:
    """An ``r=`` line (RFC 8866 §5.10); typed times are kept as written (``"7d"``)."""

    interval: str
    duration: str
    offsets: tuple[str, ...]

    def __post_init__(self) -> None:
        _freeze(self, "offsets")
        for value in (self.interval, self.duration, *self.offsets):
            _check(_TYPED_TIME.fullmatch(value) is not None, f"bad r= typed time {value!r}")
        _check(len(self.offsets) >= 1, "r= needs at least one offset")

    def __str__(self) -> str:
        return " ".join((self.interval, self.duration, *self.offsets))


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneAdjustment:
    """One ``<adjustment time> <offset>`` pair of a ``z=`` line (RFC 8866 §5.11)."""

    time: int
    offset: str

    def __post_init__(self) -> None:
        _check(self.time >= 0, "z= adjustment time must not be negative")
        _check(_OFFSET.fullmatch(self.offset) is not None, f"bad z= offset {self.offset!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """A time description: ``t=`` plus its ``r=`` lines and ``z=`` line (RFC 8866 §5.9).

    ``Timing()`` is ``t=0 0``, the unbounded session every SIP offer uses (RFC 3264 §5).
    """

    start: int = 0
    stop: int = 0
    repeats: tuple[RepeatTime, ...] = ()
    zone_adjustments: tuple[ZoneAdjustment, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "repeats", "zone_adjustments")
        _check(self.start >= 0 and self.stop >= 0, "t= times must not be negative")

    def lines(self) -> Iterator[str]:
        """The ``t=``, ``r=`` and ``z=`` lines, without line endings."""
        yield f"t={self.start} {self.stop}"
        for repeat in self.repeats:
            yield f"r={repeat}"
        if self.zone_adjustments:
            yield "z=" + " ".join(f"{z.time} {z.offset}" for z in self.zone_adjustments)


@dataclass(frozen=True, kw_only=True, slots=True)
class RtpMap:
    """A parsed ``a=rtpmap`` value (RFC 8866 §6.6): ``<pt> <name>/<rate>[/<channels>]``."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Rtcp:
    """A parsed ``a=rtcp`` value (RFC 3605 §2.1): port and optional address."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


def _parse_rtpmap(value: str) -> RtpMap | None:
    parts = value.split()
    if len(parts) != 2 or not _DIGITS.fullmatch(parts[0]) or len(parts[0]) > 3:
        return None
    pt = int(parts[0])
    pieces = parts[1].split("/")
    if pt > 127 or len(pieces) not in (2, 3) or not pieces[0]:
        return None
    if len(pieces[1]) > 10 or not _DIGITS.fullmatch(pieces[1]):
        return None
    channels: int | None = None
    if len(pieces) == 3:
        if len(pieces[2]) > 3 or not _DIGITS.fullmatch(pieces[2]):
            return None
        channels = int(pieces[2])
    return RtpMap(
        payload_type=pt, encoding_name=pieces[0], clock_rate=int(pieces[1]), channels=channels
    )


# RFC 3551 §6, Tables 4 and 5: payload types with a static meaning under RTP/AVP.
_STATIC = (
    "0 PCMU/8000/1,3 GSM/8000/1,4 G723/8000/1,5 DVI4/8000/1,6 DVI4/16000/1,7 LPC/8000/1,"
    "8 PCMA/8000/1,9 G722/8000/1,10 L16/44100/2,11 L16/44100/1,12 QCELP/8000/1,13 CN/8000/1,"
    "14 MPA/90000,15 G728/8000/1,16 DVI4/11025/1,17 DVI4/22050/1,18 G729/8000/1,"
    "25 CelB/90000,26 JPEG/90000,28 nv/90000,31 H261/90000,32 MPV/90000,33 MP2T/90000,"
    "34 H263/90000"
)
STATIC_PAYLOAD_TYPES: Mapping[int, RtpMap] = MappingProxyType(
    {m.payload_type: m for m in map(_parse_rtpmap, _STATIC.split(",")) if m is not None}
)


def _find(attributes: Iterable[Attribute], name: str) -> Iterator[str | None]:
    wanted = name.lower()
    for attribute in attributes:
        if attribute.name.lower() == wanted:
            yield attribute.value


class _Attributed:
    """Attribute access shared by sessions and media descriptions (RFC 8866 §5.13)."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def has_attribute(self, name: str) -> bool:
        """Whether an attribute of that name (case-insensitive) is present."""
        return any(True for _ in _find(self.attributes, name))

    def attribute(self, name: str) -> str | None:
        """The value of the first value attribute ``name`` (``None`` if absent)."""
        return next((v for v in _find(self.attributes, name) if v is not None), None)

    def attribute_values(self, name: str) -> list[str]:
        """Every value of the value attributes named ``name``, in order."""
        return [v for v in _find(self.attributes, name) if v is not None]

    @property
    def direction(self) -> Direction | None:
        """The direction attribute of this section (RFC 8866 §6.7), ``None`` if absent.

        Use :meth:`SessionDescription.direction_of` for a media's effective direction.
        """
        for attribute in self.attributes:
            if attribute.value is None and attribute.name.lower() in _DIRECTIONS:
                return Direction(attribute.name.lower())
        return None

    def _attributes_with_direction(self, direction: Direction | None) -> tuple[Attribute, ...]:
        kept = tuple(
            a for a in self.attributes if not (a.value is None and a.name.lower() in _DIRECTIONS)
        )
        return kept if direction is None else (*kept, Attribute(direction.value))


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaDescription(_Attributed):
    """One media description: the ``m=`` line and its ``i=``/``c=``/``b=``/``a=`` lines.

    RFC 8866 §5.14: ``m=<media> <port>[/<port_count>] <proto> <fmt> ...``. ``formats``
    are the ``<fmt>`` tokens as written (RTP payload type numbers for ``RTP/*``).
    """

    media: str = "audio"
    port: int
    port_count: int | None = None
    proto: str = "RTP/AVP"
    formats: tuple[str, ...] = ()
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _check(_is_word(self.media), f"bad media type {self.media!r}")
        _check(0 <= self.port <= 65535, f"port {self.port} out of range")
        _check(self.port_count is None or self.port_count >= 1, "port count must be >= 1")
        _check(_is_word(self.proto), f"bad proto {self.proto!r}")
        for fmt in self.formats:
            _check(_is_word(fmt), f"bad format {fmt!r}")
        _freeze(self, "formats", "connections", "bandwidths")
        object.__setattr__(self, "attributes", _normalize_attributes(self.attributes))
        _check(self.information is None or _is_text(self.information), "i= has CR/LF/NUL")

    # ---- serialization

    def lines(self) -> Iterator[str]:
        """The lines of this media description, without line endings."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        yield " ".join((f"m={self.media}", port, self.proto, *self.formats))
        if self.information is not None:
            yield f"i={self.information}"
        for connection in self.connections:
            yield f"c={connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        for attribute in self.attributes:
            yield f"a={attribute}"

    # ---- builders and typed accessors

    def with_attribute(self, name: str, value: str | None = None) -> MediaDescription:
        """A copy with ``a=name[:value]`` appended."""
        return replace(self, attributes=(*self.attributes, Attribute(name, value)))

    def without_attribute(self, name: str) -> MediaDescription:
        """A copy with every attribute called ``name`` removed."""
        wanted = name.lower()
        return replace(
            self, attributes=tuple(a for a in self.attributes if a.name.lower() != wanted)
        )

    @property
    def is_rtp(self) -> bool:
        """Whether the proto is an RTP profile (``RTP/AVP``, ``RTP/SAVP``, ...)."""
        return self.proto.upper().startswith("RTP/") or "/RTP/" in self.proto.upper()

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats that are RTP payload type numbers (0..127), in order."""
        return tuple(
            int(f) for f in self.formats if len(f) <= 3 and _DIGITS.fullmatch(f) and int(f) < 128
        )

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> ``a=rtpmap`` mapping; malformed rtpmaps are skipped (§6.6)."""
        result: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            parsed = _parse_rtpmap(value)
            if parsed is not None and parsed.payload_type not in result:
                result[parsed.payload_type] = parsed
        return result

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The mapping of a payload type: its ``a=rtpmap``, else the RFC 3551 static one.

        RFC 3264 §5.1: without an rtpmap the profile's default mapping applies.
        """
        explicit = self.rtpmaps().get(payload_type)
        return explicit if explicit is not None else STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, fmt: str | int) -> str | None:
        """The format parameters of ``a=fmtp:<fmt> <params>`` (RFC 8866 §6.15)."""
        wanted = str(fmt)
        for value in self.attribute_values("fmtp"):
            head, _, params = value.strip().partition(" ")
            if head == wanted:
                return params.strip()
        return None

    def fmtp_params(self, fmt: str | int) -> dict[str, str | None]:
        """The ``a=fmtp`` parameters as a dict (``key=value;flag`` -> ``{key: value,
        flag: None}``); keys are lower-cased (RFC 8866 §5.14 / RFC 4855 §3)."""
        params = self.fmtp(fmt)
        result: dict[str, str | None] = {}
        if not params:
            return result
        for item in params.split(";"):
            key, sep, value = item.strip().partition("=")
            if key:
                result.setdefault(key.strip().lower(), value.strip() if sep else None)
        return result

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4), ``None`` if absent or invalid."""
        return _positive_real(self.attribute("ptime"))

    @property
    def maxptime(self) -> float | None:
        """``a=maxptime`` in milliseconds (RFC 8866 §6.5), ``None`` if absent or invalid."""
        return _positive_real(self.attribute("maxptime"))

    def with_direction(self, direction: Direction | None) -> MediaDescription:
        """A copy whose direction attribute is replaced by ``direction`` (or removed)."""
        return replace(self, attributes=self._attributes_with_direction(direction))

    @property
    def rtcp(self) -> Rtcp | None:
        """The ``a=rtcp`` attribute (RFC 3605 §2.1), ``None`` if absent or invalid."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        parts = value.split()
        if len(parts) not in (1, 4) or len(parts[0]) > 5 or not _DIGITS.fullmatch(parts[0]):
            return None
        port = int(parts[0])
        if port > 65535:
            return None
        if len(parts) == 1:
            return Rtcp(port=port)
        return Rtcp(port=port, nettype=parts[1], addrtype=parts[2], address=parts[3])

    @property
    def rtcp_mux(self) -> bool:
        """Whether ``a=rtcp-mux`` (RFC 5761 §5.1.1) is present."""
        return self.has_attribute("rtcp-mux")


def _positive_real(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not _REAL.fullmatch(text):
        return None
    number = float(text)
    return number if number > 0 else None


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionDescription(_Attributed):
    """A whole SDP document (RFC 8866 §5), immutable; change it with :func:`replace`.

    ``session_name is None`` and ``timings == ()`` only come from lenient parsing of a
    document that lacked ``s=`` / ``t=``; the defaults build a valid document.
    """

    version: int = 0
    origin: Origin
    session_name: str | None = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = field(default=(Timing(),))
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "emails", "phones", "bandwidths", "timings", "media")
        _check(self.version == 0, "only SDP version 0 exists (RFC 8866 §5.1)")
        for name in ("session_name", "information", "uri"):
            value = getattr(self, name)
            _check(value is None or _is_text(value), f"{name} has CR/LF/NUL")
        for text in (*self.emails, *self.phones):
            _check(_is_text(text), "e=/p= has CR/LF/NUL")
        object.__setattr__(self, "attributes", _normalize_attributes(self.attributes))

    # ---- parsing and serialization

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview | str, *, limits: SdpLimits = DEFAULT_SDP_LIMITS
    ) -> SessionDescription:
        """Parse an SDP document; see :func:`parse`."""
        return parse(data, limits=limits)

    def lines(self) -> Iterator[str]:
        """Every line of the document in RFC 8866 §5 order, without line endings."""
        yield f"v={self.version}"
        yield f"o={self.origin}"
        if self.session_name is not None:
            yield f"s={self.session_name}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.uri is not None:
            yield f"u={self.uri}"
        for email in self.emails:
            yield f"e={email}"
        for phone in self.phones:
            yield f"p={phone}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        for timing in self.timings:
            yield from timing.lines()
        for attribute in self.attributes:
            yield f"a={attribute}"
        for media in self.media:
            yield from media.lines()

    def serialize(self) -> str:
        """The document as text, every line ended by CRLF (RFC 8866 §5)."""
        return "".join(line + "\r\n" for line in self.lines())

    def to_bytes(self) -> bytes:
        """The document as UTF-8 octets (undecodable input octets are restored)."""
        return self.serialize().encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.serialize()

    # ---- accessors

    def direction_of(self, media: MediaDescription | int) -> Direction:
        """The effective direction of a media description.

        RFC 8866 §6.7 / RFC 3264 §5.1: the media-level attribute, else the session-level
        one, else ``sendrecv``.
        """
        m = self.media[media] if isinstance(media, int) else media
        return m.direction or self.direction or Direction.SENDRECV

    def connection_for(self, media: MediaDescription | int) -> Connection | None:
        """The effective ``c=`` of a media description: its first own ``c=`` line, else
        the session-level one (RFC 8866 §5.7); ``None`` if neither exists."""
        m = self.media[media] if isinstance(media, int) else media
        return m.connections[0] if m.connections else self.connection

    def rtp_address(self, media: MediaDescription | int) -> tuple[str, int] | None:
        """Where RTP for this media is sent: (connection address, port), or ``None``
        without a connection address. Port 0 means the stream is disabled."""
        m = self.media[media] if isinstance(media, int) else media
        connection = self.connection_for(m)
        return None if connection is None else (connection.address, m.port)

    def rtcp_address(self, media: MediaDescription | int) -> tuple[str, int] | None:
        """Where RTCP for this media is sent: the ``a=rtcp`` port/address (RFC 3605 §2.1)
        or the RTP port + 1 (RFC 3550 §11). ``a=rtcp-mux`` is an offer/answer decision
        and is not applied here."""
        m = self.media[media] if isinstance(media, int) else media
        rtp = self.rtp_address(m)
        rtcp = m.rtcp
        if rtcp is not None:
            if rtcp.address is not None:
                return (rtcp.address, rtcp.port)
            return None if rtp is None else (rtp[0], rtcp.port)
        return None if rtp is None else (rtp[0], m.port + 1)

    # ---- builders

    def with_version(self, session_version: int) -> SessionDescription:
        """A copy whose ``o=`` carries ``session_version``."""
        return replace(self, origin=replace(self.origin, session_version=session_version))

    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        """A copy with the ``index``-th media description replaced."""
        items = list(self.media)
        items[index] = media
        return replace(self, media=tuple(items))

    def with_direction(self, direction: Direction | None) -> SessionDescription:
        """A copy whose session-level direction attribute is ``direction`` (or none)."""
        return replace(self, attributes=self._attributes_with_direction(direction))


# --------------------------------------------------------------------------- parser


def _error(number: int, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"SDP line {number}: {message}")


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise RemoteProtocolError(f"c= needs <nettype> <addrtype> <address>: {value[:80]!r}")
    nettype, addrtype, address = parts
    if not _is_ip_family(addrtype):
        return Connection(nettype=nettype, addrtype=addrtype, address=address)
    pieces = address.split("/")
    if len(pieces) > 3 or (addrtype.upper() == "IP6" and len(pieces) > 2):
        raise RemoteProtocolError(f"c= address has too many '/' suffixes: {address[:80]!r}")
    host = pieces[0]
    if addrtype.upper() == "IP6" and host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # sloppy but seen: an IPv6 reference in SDP (RFC 5118 §4.6)
    if not _IP_HOST.fullmatch(host):
        raise RemoteProtocolError(f"c= address is not an IP address or host: {host[:80]!r}")
    ttl: int | None = None
    count: int | None = None
    if addrtype.upper() == "IP4":
        if len(pieces) >= 2:
            ttl = _uint(pieces[1], "c= ttl", max_digits=3, maximum=255)
        if len(pieces) == 3:
            count = _uint(pieces[2], "c= address count", max_digits=5)
    elif len(pieces) == 2:
        count = _uint(pieces[1], "c= address count", max_digits=5)
    if count == 0:
        raise RemoteProtocolError("c= address count must be >= 1")
    return Connection(
        nettype=nettype, addrtype=addrtype, address=host, ttl=ttl, address_count=count
    )


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) < 6:
        raise RemoteProtocolError(
            "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>"
        )
    # Some user agents put spaces in the username; the last five fields are fixed.
    username = " ".join(parts[:-5])
    session_id, version, nettype, addrtype, address = parts[-5:]
    return Origin(
        username=username,
        session_id=session_id,
        session_version=_uint(version, "o= session version", max_digits=40),
        nettype=nettype,
        addrtype=addrtype,
        address=address,
    )


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.strip().partition(":")
    if not sep or not _is_word(bwtype):
        raise RemoteProtocolError(f"b= needs <bwtype>:<bandwidth>: {value[:80]!r}")
    return Bandwidth(bwtype=bwtype, bandwidth=_uint(amount.strip(), "b= bandwidth"))


def _parse_timing(value: str) -> Timing:
    parts = value.split()
    if len(parts) != 2:
        raise RemoteProtocolError(f"t= needs <start-time> <stop-time>: {value[:80]!r}")
    return Timing(start=_uint(parts[0], "t= start time"), stop=_uint(parts[1], "t= stop time"))


def _parse_repeat(value: str) -> RepeatTime:
    parts = value.split()
    if len(parts) < 3 or not all(_TYPED_TIME.fullmatch(p) for p in parts):
        raise RemoteProtocolError(f"r= needs <interval> <duration> <offset>...: {value[:80]!r}")
    return RepeatTime(interval=parts[0], duration=parts[1], offsets=tuple(parts[2:]))


def _parse_zone(value: str) -> tuple[ZoneAdjustment, ...]:
    parts = value.split()
    if not parts or len(parts) % 2:
        raise RemoteProtocolError(f"z= needs <time> <offset> pairs: {value[:80]!r}")
    result = []
    for time_text, offset in zip(parts[::2], parts[1::2], strict=True):
        if not _OFFSET.fullmatch(offset):
            raise RemoteProtocolError(f"bad z= offset {offset[:40]!r}")
        result.append(ZoneAdjustment(time=_uint(time_text, "z= time"), offset=offset))
    return tuple(result)


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise RemoteProtocolError(f"m= needs <media> <port> <proto> <fmt>...: {value[:80]!r}")
    port_text, _, count_text = parts[1].partition("/")
    port = _uint(port_text, "m= port", max_digits=5, maximum=65535)
    count = None
    if count_text or parts[1].endswith("/"):
        count = _uint(count_text, "m= port count", max_digits=5)
        if count == 0:
            raise RemoteProtocolError("m= port count must be >= 1")
    return MediaDescription(
        media=parts[0], port=port, port_count=count, proto=parts[2], formats=tuple(parts[3:])
    )


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not sep:
        name = name.rstrip()
    if not _is_word(name):
        raise RemoteProtocolError(f"bad attribute name {name[:40]!r}")
    return Attribute(name, rest if sep else None)


class _Section:
    """Mutable collector for one section (session or media) during parsing."""

    __slots__ = ("attributes", "bandwidths", "connections", "information", "media")

    def __init__(self, media: MediaDescription | None = None) -> None:
        self.media = media
        self.information: str | None = None
        self.connections: list[Connection] = []
        self.bandwidths: list[Bandwidth] = []
        self.attributes: list[Attribute] = []

    def build(self) -> MediaDescription:
        assert self.media is not None
        return replace(
            self.media,
            information=self.information,
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            attributes=tuple(self.attributes),
        )


def parse(
    data: bytes | bytearray | memoryview | str, *, limits: SdpLimits = DEFAULT_SDP_LIMITS
) -> SessionDescription:
    """Parse an ``application/sdp`` body (RFC 8866 §5, grammar in §9).

    Accepts ``bytes`` (decoded as UTF-8, undecodable octets kept via
    ``surrogateescape``) or ``str``. Raises only
    :class:`~sipwire.core._errors.RemoteProtocolError` (``status_hint`` 400); see the
    module docstring for what is tolerated.
    """
    if isinstance(data, str):
        text = data
    else:
        raw = bytes(data)
        if len(raw) > limits.max_size:
            raise RemoteProtocolError(f"SDP larger than {limits.max_size} octets")
        text = raw.decode("utf-8", "surrogateescape")
    if len(text) > limits.max_size:
        raise RemoteProtocolError(f"SDP larger than {limits.max_size} characters")
    if "\x00" in text:
        raise RemoteProtocolError("SDP contains a NUL octet")
    try:
        return _Parser(limits).run(text)
    except LocalProtocolError as exc:  # a value the constructors refuse is bad input here
        raise RemoteProtocolError(f"malformed SDP: {exc.reason}") from None


class _Parser:
    """One pass over the lines of a document (RFC 8866 §5 line order, leniently)."""

    def __init__(self, limits: SdpLimits) -> None:
        self.limits = limits
        self.once: dict[str, str] = {}  # s=, u= text
        self.origin: Origin | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.timings: list[Timing] = []
        self.session = _Section()
        self.media: list[_Section] = []
        self.current = self.session

    def run(self, text: str) -> SessionDescription:
        raw_lines = text.split("\n")
        if len(raw_lines) > self.limits.max_lines + 1:
            raise RemoteProtocolError(f"SDP has more than {self.limits.max_lines} lines")
        seen_version = False
        for number, raw_line in enumerate(raw_lines, start=1):
            line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
            if not line.strip():
                continue
            if "\r" in line:
                raise _error(number, "bare CR inside a line")
            if len(line) < 2 or line[1] != "=":
                raise _error(number, f"not a <type>=<value> line: {line[:40]!r}")
            if not seen_version:
                if line[0] != "v":
                    raise _error(number, "an SDP document must start with v=")
                if line[2:].strip() != "0":
                    raise _error(number, f"unsupported SDP version {line[2:22]!r}")
                seen_version = True
                continue
            try:
                self.line(line[0], line[2:])
            except RemoteProtocolError as exc:
                raise _error(number, exc.reason) from None
        if not seen_version:
            raise RemoteProtocolError("empty SDP document")
        if self.origin is None:
            raise RemoteProtocolError("SDP has no o= line")
        session = self.session
        return SessionDescription(
            origin=self.origin,
            session_name=self.once.get("s"),
            information=session.information,
            uri=self.once.get("u"),
            emails=tuple(self.emails),
            phones=tuple(self.phones),
            connection=session.connections[0] if session.connections else None,
            bandwidths=tuple(session.bandwidths),
            timings=tuple(self.timings),
            attributes=tuple(session.attributes),
            media=tuple(section.build() for section in self.media),
        )

    def line(self, kind: str, value: str) -> None:
        current = self.current
        if kind == "m":
            if len(self.media) >= self.limits.max_media:
                raise RemoteProtocolError(f"more than {self.limits.max_media} m= lines")
            self.current = _Section(_parse_media(value))
            self.media.append(self.current)
        elif kind == "a":
            if len(current.attributes) >= self.limits.max_attributes:
                raise RemoteProtocolError(f"more than {self.limits.max_attributes} a= lines")
            current.attributes.append(_parse_attribute(value))
        elif kind == "c":
            if current is self.session and current.connections:
                raise RemoteProtocolError("more than one session-level c= line")
            current.connections.append(_parse_connection(value))
        elif kind == "b":
            current.bandwidths.append(_parse_bandwidth(value))
        elif kind == "i":
            if current.information is not None:
                raise RemoteProtocolError("more than one i= line in a section")
            current.information = value
        elif kind in "osuepvtrz":
            if current is not self.session:
                raise RemoteProtocolError(f"{kind}= is not allowed in a media description")
            self.session_line(kind, value)
        # k= is dropped (RFC 8866 §5.12: obsolete, MUST be discarded); any other type
        # letter is ignored (RFC 8866 §5: "ignore or reject").

    def session_line(self, kind: str, value: str) -> None:
        if kind == "o":
            if self.origin is not None:
                raise RemoteProtocolError("more than one o= line")
            self.origin = _parse_origin(value)
        elif kind in "su":
            if kind in self.once:
                raise RemoteProtocolError(f"more than one {kind}= line")
            self.once[kind] = value
        elif kind == "v":
            raise RemoteProtocolError("more than one v= line")
        elif kind == "e":
            self.emails.append(value)
        elif kind == "p":
            self.phones.append(value)
        elif kind == "t":
            self.timings.append(_parse_timing(value))
        elif not self.timings:
            raise RemoteProtocolError(f"{kind}= before any t= line")
        elif kind == "r":
            last = self.timings[-1]
            self.timings[-1] = replace(last, repeats=(*last.repeats, _parse_repeat(value)))
        else:  # z= (RFC 8866 §9 after its r= lines; RFC 4566 after all time descriptions)
            last = self.timings[-1]
            zones = (*last.zone_adjustments, *_parse_zone(value))
            self.timings[-1] = replace(last, zone_adjustments=zones)
