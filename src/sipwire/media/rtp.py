"""RTP data packets (RFC 3550 §5) and the per-source receive statistics of Appendix A.

* :class:`RtpPacket` encodes and decodes the fixed header (version, padding, extension,
  CSRC list, marker, payload type, sequence number, timestamp, SSRC; §5.1), the header
  extension (§5.3.1) and padding. :meth:`RtpPacket.parse` raises only
  :class:`~sipwire.core._errors.RemoteProtocolError` for a malformed datagram.
* :class:`RtpSender` numbers outgoing packets: random initial sequence number,
  timestamp and SSRC (§5.1) from an injected ``randbits`` callable; the timestamp
  advances by the number of samples sent; the marker bit is set on the first packet
  of a talkspurt (RFC 3551 §4.1).
* :class:`RtpReceiver` keeps one :class:`RtpSource` per SSRC (bounded): sequence number
  validation with wrap-around and probation (§A.1), expected/lost counts and the
  fraction lost since the previous report (§A.3), interarrival jitter (§A.8).

Everything here is sans-IO: arrival times are arguments (seconds, any monotonic clock).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "RtpSource",
    "is_rtcp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # §A.1: one minute at 50 packets/s
MAX_MISORDER = 100  # §A.1: two seconds at 50 packets/s
MIN_SEQUENTIAL = 2  # §A.1: packets in sequence before a source is valid

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on a multiplexed port is RTCP (RFC 5761 §4: the second octet
    is 192..223, i.e. RTCP packet types 200-204 fall there; RTP payload types 64-95
    are avoided for that reason)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The RTP header extension (§5.3.1): a 16-bit profile-defined value and data whose
    length is a multiple of four octets."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise LocalProtocolError("extension profile outside 0..65535")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise LocalProtocolError("extension data must be a multiple of 4 octets")


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``padding`` is the number of padding octets at the end (0 = the P bit is clear;
    otherwise 1..255, the last of which holds the count, §5.1).
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise LocalProtocolError(f"payload type {self.payload_type} outside 0..127")
        if not 0 <= self.sequence <= 0xFFFF:
            raise LocalProtocolError(f"sequence number {self.sequence} outside 0..65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise LocalProtocolError("timestamp and SSRC are 32-bit unsigned values")
        if len(self.csrcs) > 15 or any(not 0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise LocalProtocolError("at most 15 CSRCs of 32 bits")
        if not 0 <= self.padding <= 255:
            raise LocalProtocolError("padding is 0..255 octets")

    def to_bytes(self) -> bytes:
        """The packet on the wire."""
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        head = _HEADER.pack(
            first,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        parts = [head]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    __bytes__ = to_bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Decode one datagram; raise :class:`RemoteProtocolError` if it is not a
        well-formed RTP version 2 packet (§5.1, §A.1 header checks)."""
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise RemoteProtocolError(f"RTP packet too short ({size} octets)")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RemoteProtocolError(f"RTP version {first >> 6} is not 2")
        offset = RTP_HEADER_SIZE
        count = first & 0x0F
        csrcs: tuple[int, ...] = ()
        if count:
            end = offset + 4 * count
            if end > size:
                raise RemoteProtocolError("RTP CSRC list runs past the packet")
            csrcs = struct.unpack_from(f"!{count}I", data, offset)
            offset = end
        extension = None
        if first & 0x10:
            if offset + 4 > size:
                raise RemoteProtocolError("RTP header extension runs past the packet")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if end > size:
                raise RemoteProtocolError("RTP header extension runs past the packet")
            extension = RtpExtension(profile, bytes(data[offset + 4 : end]))
            offset = end
        end = size
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > size:
                raise RemoteProtocolError(f"bad RTP padding count {padding}")
            end -= padding
        packet = cls.__new__(cls)  # fields are valid by construction: skip __post_init__
        packet.payload_type = second & 0x7F
        packet.marker = bool(second & 0x80)
        packet.sequence = sequence
        packet.timestamp = timestamp
        packet.ssrc = ssrc
        packet.payload = bytes(data[offset:end])
        packet.csrcs = csrcs
        packet.extension = extension
        packet.padding = padding
        return packet


def _random_bits(bits: int) -> int:
    return secrets.randbits(bits)


class RtpSender:
    """Sequence numbers, timestamps and the SSRC of one outgoing RTP stream (§5.1).

    ``randbits(n)`` returns ``n`` random bits (default :func:`secrets.randbits`); it
    picks the SSRC and the initial sequence number and timestamp, as §5.1 asks.
    """

    __slots__ = (
        "_header",
        "_talkspurt",
        "octets_sent",
        "packets_sent",
        "payload_type",
        "sequence",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        *,
        payload_type: int,
        ssrc: int | None = None,
        randbits: Callable[[int], int] = _random_bits,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise LocalProtocolError(f"payload type {payload_type} outside 0..127")
        self.payload_type = payload_type
        self.ssrc = randbits(32) if ssrc is None else ssrc
        self.sequence = randbits(16)
        """The sequence number of the next packet."""
        self.timestamp = randbits(32)
        """The RTP timestamp of the next audio packet."""
        self.packets_sent = 0
        self.octets_sent = 0  # payload octets, for the SR sender's octet count (§6.4.1)
        self._talkspurt = True
        self._header = _HEADER

    def start_talkspurt(self) -> None:
        """The next audio packet starts a talkspurt: it gets the marker bit (RFC 3551
        §4.1), e.g. after a silence-suppressed gap or when sending resumes."""
        self._talkspurt = True

    def advance(self, samples: int) -> None:
        """Move the timestamp on by ``samples`` without sending (a frame not sent)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def audio(self, payload: bytes, samples: int, *, marker: bool | None = None) -> bytes:
        """The next audio packet: current timestamp, then the timestamp advances by
        ``samples``. The marker bit is set on the first packet of a talkspurt unless
        ``marker`` says otherwise."""
        if marker is None:
            marker = self._talkspurt
        self._talkspurt = False
        data = self._header.pack(
            0x80,
            (0x80 if marker else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data + payload

    def event(self, payload: bytes, *, payload_type: int, timestamp: int, marker: bool) -> bytes:
        """A packet with another payload type and an explicit timestamp, e.g. an
        RFC 4733 event packet (same SSRC and sequence space, §2.5.1.2). The audio
        timestamp does not move."""
        data = self._header.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            self.sequence,
            timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data + payload


class RtpSource:
    """Receive state of one SSRC (RFC 3550 §A.1, §A.3, §A.8).

    ``jitter`` is in timestamp units (a float, §A.8); ``lost`` is the cumulative number
    lost (expected minus received; negative with duplicates, §6.4.1), clamped to the
    24-bit signed range of a report block.
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "last_arrival",
        "max_seq",
        "min_sequential",
        "octets",
        "probation",
        "received",
        "received_prior",
        "ssrc",
        "transit",
    )

    def __init__(
        self, ssrc: int, sequence: int, *, clock_rate: int = 8000, min_sequential: int = 2
    ) -> None:
        if min_sequential < 1:
            raise LocalProtocolError("min_sequential must be at least 1")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.min_sequential = min_sequential
        self._init_seq(sequence)
        self.max_seq = (sequence - 1) & 0xFFFF
        self.probation = min_sequential
        self.jitter = 0.0
        self.transit: int | None = None
        self.last_arrival = 0.0
        self.octets = 0

    def _init_seq(self, sequence: int) -> None:
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = RTP_SEQ_MOD + 1  # so sequence == bad_seq is false
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    @property
    def valid(self) -> bool:
        """The source passed probation (§A.1)."""
        return self.probation == 0

    def update_seq(self, sequence: int) -> bool:
        """§A.1 ``update_seq``: whether the packet with this sequence number is valid."""
        udelta = (sequence - self.max_seq) & 0xFFFF
        if self.probation:
            if sequence == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = sequence
                if self.probation == 0:
                    self._init_seq(sequence)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = sequence
            return False
        if udelta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # wrapped around
            self.max_seq = sequence
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if sequence == self.bad_seq:
                self._init_seq(sequence)  # two in a row after a big jump: a restart
            else:
                self.bad_seq = (sequence + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, still counted as received
        self.received += 1
        return True

    def update_jitter(self, timestamp: int, arrival: float) -> None:
        """§A.8: fold one packet's transit time into the jitter estimate. ``arrival``
        is in seconds; it is converted to timestamp units here."""
        transit = (int(arrival * self.clock_rate) - timestamp) & 0xFFFFFFFF
        previous = self.transit
        self.transit = transit
        if previous is None:
            return
        d = (transit - previous) & 0xFFFFFFFF
        if d >= 0x80000000:
            d = 0x100000000 - d
        self.jitter += (d - self.jitter) / 16.0

    @property
    def extended_max_seq(self) -> int:
        """Cycles plus the highest sequence number received (§A.3)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected so far (§A.3)."""
        return self.extended_max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost, clamped to 24-bit signed (§A.3, §6.4.1)."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def fraction_lost(self) -> int:
        """Fraction lost since the previous call, in 1/256 units (§A.3); moves the
        "prior" counters on, so call it once per report."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    @property
    def jitter_seconds(self) -> float:
        """The jitter estimate in seconds."""
        return self.jitter / self.clock_rate


class RtpReceiver:
    """Per-SSRC receive state for one RTP session (§A.1), at most ``max_sources``
    sources (default 8; the least recently heard one is forgotten first).

    :meth:`receive` takes a parsed packet and returns its :class:`RtpSource` when the
    packet is valid (source out of probation, sequence number acceptable), else None.
    :meth:`parse` wraps :meth:`RtpPacket.parse` and counts malformed datagrams.
    """

    __slots__ = ("clock_rate", "malformed", "max_sources", "min_sequential", "sources")

    def __init__(
        self, *, clock_rate: int = 8000, min_sequential: int = MIN_SEQUENTIAL, max_sources: int = 8
    ) -> None:
        if max_sources < 1:
            raise LocalProtocolError("max_sources must be at least 1")
        self.clock_rate = clock_rate
        self.min_sequential = min_sequential
        self.max_sources = max_sources
        self.sources: dict[int, RtpSource] = {}
        self.malformed = 0

    def parse(self, data: bytes) -> RtpPacket | None:
        """The packet, or None (counted in ``malformed``) if it is malformed."""
        try:
            return RtpPacket.parse(data)
        except RemoteProtocolError:
            self.malformed += 1
            return None

    def receive(self, packet: RtpPacket, now: float, *, jitter: bool = True) -> RtpSource | None:
        """Account for one packet arriving at ``now``; its source if it is valid.
        ``jitter=False`` leaves the jitter estimate alone (for packets whose timestamp
        is not a sampling instant, like repeated RFC 4733 event packets)."""
        return self.update(
            packet.ssrc, packet.sequence, packet.timestamp, len(packet.payload), now, jitter
        )

    def update(  # noqa: PLR0917 - the hot path takes header fields, not a packet object
        self, ssrc: int, sequence: int, timestamp: int, size: int, now: float, jitter: bool
    ) -> RtpSource | None:
        """:meth:`receive` from header fields (``size``: payload octets)."""
        source = self.sources.get(ssrc)
        if source is None:
            if len(self.sources) >= self.max_sources:
                oldest = min(self.sources.values(), key=lambda s: s.last_arrival)
                del self.sources[oldest.ssrc]
            source = RtpSource(
                ssrc, sequence, clock_rate=self.clock_rate, min_sequential=self.min_sequential
            )
            self.sources[ssrc] = source
        source.last_arrival = now
        if not source.update_seq(sequence):
            return None
        source.octets += size
        if jitter:
            source.update_jitter(timestamp, now)
        return source
