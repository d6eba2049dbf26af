"""RTCP (RFC 3550 §6): sender and receiver reports, SDES CNAME, BYE, compound packets.

* Packet values: :class:`SenderReport` (§6.4.1), :class:`ReceiverReport` (§6.4.2) with
  :class:`ReportBlock` s, :class:`SourceDescription` (§6.5) with :class:`SdesChunk` s,
  :class:`Bye` (§6.6), and :class:`UnknownRtcp` for APP and other types (kept, not
  interpreted, as §A.2 asks).
* :func:`parse_compound` decodes a compound packet and raises only
  :class:`~sipwire.core._errors.RemoteProtocolError`: version 2 everywhere, lengths that
  add up exactly to the datagram, padding only on the last packet (§A.2). The first
  packet is *not* required to be an SR or RR, so reduced-size RTCP (RFC 5506) and
  BYE-only packets from sloppy peers are accepted. :func:`build_compound` encodes.
* NTP helpers (:func:`ntp_timestamp`, :func:`ntp_middle`) and :func:`round_trip_time`
  (§6.4.1: ``A - LSR - DLSR``).
* :class:`RtcpScheduler`: the report interval of §6.2/§6.3.1, simplified for a
  two-party call: 5 s nominal, each interval randomized to 0.5-1.5 times that, the
  first one half as long.

Pure and sans-IO: clocks and randomness are arguments.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "NTP_UNIX_OFFSET",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "SDES_CNAME",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpScheduler",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "build_compound",
    "ntp_middle",
    "ntp_timestamp",
    "parse_compound",
    "round_trip_time",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
MAX_COMPOUND_PACKETS = 32  # bound on packets decoded from one datagram

_COMMON = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")


def _u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise LocalProtocolError(f"{what} is a 32-bit unsigned value")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (§6.4.1): about source ``ssrc``.

    ``fraction_lost`` is in 1/256 units; ``cumulative_lost`` is 24-bit signed;
    ``jitter`` is in timestamp units; ``lsr`` is the middle 32 bits of the NTP time of
    the last SR received from that source (0 if none) and ``dlsr`` the delay since, in
    1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def __post_init__(self) -> None:
        for value, what in (
            (self.ssrc, "SSRC"),
            (self.highest_sequence, "highest sequence"),
            (self.jitter, "jitter"),
            (self.lsr, "LSR"),
            (self.dlsr, "DLSR"),
        ):
            _u32(value, what)
        if not 0 <= self.fraction_lost <= 255:
            raise LocalProtocolError("fraction lost is 0..255")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise LocalProtocolError("cumulative lost is a 24-bit signed value")

    def pack(self) -> bytes:
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _check_blocks(reports: Sequence[ReportBlock]) -> None:
    if len(reports) > 31:
        raise LocalProtocolError("at most 31 report blocks per packet")


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1): sender info plus reception reports."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        for value, what in (
            (self.ssrc, "SSRC"),
            (self.rtp_timestamp, "RTP timestamp"),
            (self.packet_count, "packet count"),
            (self.octet_count, "octet count"),
        ):
            _u32(value, what)
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise LocalProtocolError("NTP timestamp is a 64-bit unsigned value")
        _check_blocks(self.reports)

    def to_bytes(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        ) + b"".join(r.pack() for r in self.reports)
        return _header(len(self.reports), RTCP_SR, body) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2): reception reports from a participant that is not sending."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        _u32(self.ssrc, "SSRC")
        _check_blocks(self.reports)

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.pack() for r in self.reports)
        return _header(len(self.reports), RTCP_RR, body) + body


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items of one source: ``(item type, text)`` pairs (§6.5). Text is
    UTF-8 on the wire; undecodable octets survive as surrogate escapes."""

    ssrc: int
    items: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        _u32(self.ssrc, "SSRC")
        for kind, text in self.items:
            if not 1 <= kind <= 255:
                raise LocalProtocolError("SDES item type is 1..255")
            if len(text.encode("utf-8", "surrogateescape")) > 255:
                raise LocalProtocolError("an SDES item holds at most 255 octets")

    @property
    def cname(self) -> str | None:
        """The CNAME item (§6.5.1), if present."""
        return next((text for kind, text in self.items if kind == SDES_CNAME), None)

    def pack(self) -> bytes:
        parts = [struct.pack("!I", self.ssrc)]
        for kind, text in self.items:
            raw = text.encode("utf-8", "surrogateescape")
            parts.append(bytes((kind, len(raw))) + raw)
        size = sum(len(p) for p in parts) - 4
        # one null octet ends the list, then pad to a 32-bit boundary (§6.5)
        parts.append(bytes(4 - (size % 4)))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (§6.5): at most 31 chunks."""

    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise LocalProtocolError("at most 31 SDES chunks per packet")

    def to_bytes(self) -> bytes:
        body = b"".join(c.pack() for c in self.chunks)
        return _header(len(self.chunks), RTCP_SDES, body) + body


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (§6.6): the sources leaving and an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.ssrcs) > 31:
            raise LocalProtocolError("at most 31 sources per BYE")
        for ssrc in self.ssrcs:
            _u32(ssrc, "SSRC")
        if self.reason is not None and len(self.reason.encode("utf-8", "surrogateescape")) > 255:
            raise LocalProtocolError("a BYE reason holds at most 255 octets")

    def to_bytes(self) -> bytes:
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason is not None:
            raw = self.reason.encode("utf-8", "surrogateescape")
            text = bytes((len(raw),)) + raw
            body += text + bytes(-len(text) % 4)
        return _header(len(self.ssrcs), RTCP_BYE, body) + body


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """A packet type this module does not interpret (APP, feedback, XR, ...): its
    5-bit count/subtype field and body, kept as they came."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.packet_type <= 255 or not 0 <= self.count <= 31:
            raise LocalProtocolError("packet type is 0..255, count 0..31")
        if len(self.body) % 4:
            raise LocalProtocolError("an RTCP body is a multiple of 4 octets")

    def to_bytes(self) -> bytes:
        return _header(self.count, self.packet_type, self.body) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    return _COMMON.pack(0x80 | count, packet_type, len(body) // 4)


# --------------------------------------------------------------------------- codec


def build_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound packet (§6.1). RFC 3550 wants it to
    start with an SR or RR and carry an SDES CNAME; that is the caller's choice."""
    return b"".join(p.to_bytes() for p in packets)


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > len(body):
        raise RemoteProtocolError("RTCP report blocks run past the packet")
    return tuple(ReportBlock.unpack(body, offset + 24 * i) for i in range(count))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RemoteProtocolError("SDES chunk runs past the packet")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RemoteProtocolError("SDES item list is not terminated")
            kind = body[offset]
            if kind == 0:
                offset += 1
                offset += -offset % 4  # skip to the next 32-bit boundary
                break
            if offset + 2 > len(body):
                raise RemoteProtocolError("SDES item runs past the packet")
            size = body[offset + 1]
            end = offset + 2 + size
            if end > len(body):
                raise RemoteProtocolError("SDES item runs past the packet")
            items.append((kind, body[offset + 2 : end].decode("utf-8", "surrogateescape")))
            offset = end
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if 4 * count > len(body):
        raise RemoteProtocolError("BYE source list runs past the packet")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    offset = 4 * count
    if offset < len(body):
        size = body[offset]
        if offset + 1 + size > len(body):
            raise RemoteProtocolError("BYE reason runs past the packet")
        reason = body[offset + 1 : offset + 1 + size].decode("utf-8", "surrogateescape")
    return Bye(tuple(ssrcs), reason)


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise RemoteProtocolError("RTCP SR too short")
        ssrc, msw, lsw, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        return SenderReport(
            ssrc, (msw << 32) | lsw, rtp_ts, packets, octets, _blocks(body, 24, count)
        )
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RemoteProtocolError("RTCP RR too short")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, _blocks(body, 4, count))
    if packet_type == RTCP_SDES:
        return _parse_sdes(body, count)
    if packet_type == RTCP_BYE:
        return _parse_bye(body, count)
    return UnknownRtcp(packet_type, count, body)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Decode a compound RTCP packet (§6.1, validity checks of §A.2 except the
    "first packet is SR or RR" rule). Raises only :class:`RemoteProtocolError`."""
    size = len(data)
    if size < 4 or size % 4:
        raise RemoteProtocolError(f"RTCP datagram of {size} octets is not a multiple of 4")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < size:
        if len(packets) >= MAX_COMPOUND_PACKETS:
            raise RemoteProtocolError("too many packets in one compound RTCP packet")
        first, packet_type, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RemoteProtocolError(f"RTCP version {first >> 6} is not 2")
        end = offset + 4 + 4 * words
        if end > size:
            raise RemoteProtocolError("RTCP length runs past the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:
            if end != size:
                raise RemoteProtocolError("RTCP padding before the last packet")
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise RemoteProtocolError(f"bad RTCP padding count {pad}")
            body = body[:-pad]
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(body)))
        offset = end
    return packets


# --------------------------------------------------------------------------- time


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (seconds since 1900 in 32.32 fixed point) of a Unix time."""
    value = int((unix_time + NTP_UNIX_OFFSET) * 4294967296.0)
    return value & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (the LSR field, §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, arrival_ntp: int) -> float | None:
    """RTT in seconds from a report block about our stream (§6.4.1): arrival time
    minus LSR minus DLSR, all in 1/65536 s. None if the peer had no SR from us yet
    (LSR 0) or the result is implausible (negative, i.e. clocks went backwards)."""
    if block.lsr == 0:
        return None
    rtt = (ntp_middle(arrival_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt / 65536.0


# --------------------------------------------------------------------------- interval


def _random_unit() -> float:
    return secrets.randbelow(1 << 30) / float(1 << 30)


class RtcpScheduler:
    """When to send the next report (§6.2, §6.3.1, simplified for two parties).

    ``interval`` is the nominal interval (5 s, the §6.2 minimum); each actual interval
    is ``interval * uniform(0.5, 1.5)``, and the first one is half of that (§6.2,
    "initial delay"). ``random()`` returns a float in [0, 1).
    """

    __slots__ = ("interval", "next_time", "random")

    def __init__(
        self, now: float, *, interval: float = 5.0, random: Callable[[], float] = _random_unit
    ) -> None:
        if interval <= 0:
            raise LocalProtocolError("RTCP interval must be positive")
        self.interval = interval
        self.random = random
        self.next_time = now + self._draw() / 2

    def _draw(self) -> float:
        return self.interval * (0.5 + self.random())

    def due(self, now: float) -> bool:
        """Whether a report is due at ``now``."""
        return now >= self.next_time

    def sent(self, now: float) -> float:
        """Note that a report went out at ``now``; return the next report time."""
        self.next_time = now + self._draw()
        return self.next_time
