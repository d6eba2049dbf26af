"""One call's audio stream as a sans-IO state machine: :class:`RtpSession`.

It ties the pieces of :mod:`sipwire.media` together for one RTP session with one peer:
an :class:`~sipwire.media.rtp.RtpSender` and :class:`~sipwire.media.rtp.RtpReceiver`,
G.711 encode/decode, a :class:`~sipwire.media.jitter.JitterBuffer`, RFC 4733 DTMF both
ways (with an in-band dual-tone fallback when the peer has no telephone-event),
RTCP reports on the RFC 3550 §6.2 schedule, symmetric RTP latching and statistics.

It performs no I/O and reads no clock: the shell (:class:`sipwire.media.stream.MediaStream`)
calls, every 20 ms frame interval,

* :meth:`RtpSession.send_frame` with the PCM to send (or None) -> datagrams to send to
  :attr:`RtpSession.rtp_destination`;
* :meth:`RtpSession.playout` -> the next 20 ms of received audio (PCM);
* :meth:`RtpSession.build_report` when :meth:`RtpSession.rtcp_due` says so;

and for every datagram :meth:`RtpSession.receive_rtp` / :meth:`RtpSession.receive_rtcp`
(or :meth:`RtpSession.receive` on an rtcp-mux port), which return a received DTMF digit
if the datagram completed one.

**Symmetric RTP** (RFC 4961; the usual NAT traversal of SIP phones): with
``MediaConfig.symmetric_rtp`` (the default) RTP and RTCP go to the address the
peer's valid packets come from, once one has arrived ("latching"); before that, to the
address in its SDP. :meth:`RtpSession.update` (a re-INVITE) drops the latch.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.offeranswer import NegotiatedMedia
from sipwire.media import g711
from sipwire.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender, event_of
from sipwire.media.jitter import Concealment, JitterBuffer
from sipwire.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpScheduler,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    round_trip_time,
)
from sipwire.media.rtp import RtpReceiver, RtpSender, RtpSource, is_rtcp
from sipwire.media.tone import FRAME_BYTES, FRAME_SAMPLES, dtmf_tone

__all__ = [
    "FRAME_INTERVAL",
    "HostPort",
    "MediaConfig",
    "MediaStatistics",
    "RemoteMedia",
    "RtpSession",
]

FRAME_INTERVAL = 0.02  # seconds per frame: sipwire sends 20 ms packets
CN_PAYLOAD_TYPE = 13  # RFC 3389 comfort noise
HostPort = tuple[str, int]
SILENCE = bytes(FRAME_BYTES)
_CODECS = ("pcmu", "pcma")
_FAST_HEADER = struct.Struct("!BHII")  # octets 1-11 of an RTP header


def _random_bits(bits: int) -> int:
    return secrets.randbits(bits)


def _random_unit() -> float:
    return secrets.randbelow(1 << 30) / float(1 << 30)


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteMedia:
    """What offer/answer decided for one audio stream, as the media layer needs it.

    * ``address``/``port``: where the peer wants RTP (None: nowhere, e.g. a
      ``c=0.0.0.0`` hold); ``rtcp``: where RTCP goes (default ``port + 1``, or the
      RTP address with ``rtcp_mux``).
    * ``payload_type``/``codec``: the payload type number and the codec (``"PCMU"``
      or ``"PCMA"``) to send with -- the peer's numbers (RFC 3264 §5.1).
    * ``dtmf_payload_type``: the peer's telephone-event number (None: the peer has
      no RFC 4733 support; DTMF is then sent in-band as dual tones).
    * ``receive_codecs``: payload type -> codec we accept (ours; default: the send
      pair); ``receive_dtmf_payload_type``: our telephone-event number (default:
      ``dtmf_payload_type``).
    * ``send``/``receive``: the directions in effect (RFC 3264 §6.1; hold).

    :meth:`from_negotiated` builds one from :class:`~sipwire.core.offeranswer.NegotiatedMedia`.
    """

    address: str | None
    port: int
    payload_type: int = 0
    codec: str = "PCMU"
    dtmf_payload_type: int | None = None
    receive_codecs: tuple[tuple[int, str], ...] = ()
    receive_dtmf_payload_type: int | None = None
    rtcp: HostPort | None = None
    rtcp_mux: bool = False
    send: bool = True
    receive: bool = True

    def __post_init__(self) -> None:
        if self.codec.casefold() not in _CODECS:
            raise LocalProtocolError(f"codec {self.codec!r} is not supported (PCMU, PCMA)")
        for pt, name in self.receive_codecs:
            if name.casefold() not in _CODECS or not 0 <= pt <= 127:
                raise LocalProtocolError(f"receive codec {pt} {name!r} is not supported")
        if not 0 <= self.port <= 65535 or not 0 <= self.payload_type <= 127:
            raise LocalProtocolError("port 0..65535 and payload type 0..127")

    @property
    def rtp_address(self) -> HostPort | None:
        """Where RTP goes by the SDP (None if nowhere)."""
        if self.address is None or self.port == 0 or self.address in ("0.0.0.0", "::"):
            return None
        return (self.address, self.port)

    @property
    def rtcp_address(self) -> HostPort | None:
        """Where RTCP goes by the SDP (RFC 3605 ``a=rtcp``, else port + 1, or the RTP
        address with rtcp-mux, RFC 5761)."""
        if self.rtcp is not None:
            return self.rtcp
        rtp = self.rtp_address
        if rtp is None:
            return None
        return rtp if self.rtcp_mux else (rtp[0], rtp[1] + 1)

    def receive_map(self) -> dict[int, str]:
        """Payload type -> lower-case codec name accepted on receive."""
        if self.receive_codecs:
            return {pt: name.casefold() for pt, name in self.receive_codecs}
        return {self.payload_type: self.codec.casefold()}

    @classmethod
    def from_negotiated(cls, media: NegotiatedMedia) -> RemoteMedia:
        """From the outcome of offer/answer for one ``m=audio`` line. Raises
        :class:`LocalProtocolError` if it was rejected or its codec is not G.711."""
        if not media.accepted or media.send_codec is None:
            raise LocalProtocolError("the media stream was not accepted")
        codec = media.send_codec
        if codec.name.casefold() not in _CODECS or codec.payload_type is None:
            raise LocalProtocolError(f"codec {codec.name} is not supported (PCMU, PCMA)")
        receive = tuple(
            (c.payload_type, c.name)
            for c in media.receive_codecs
            if c.payload_type is not None and c.name.casefold() in _CODECS
        )
        receive_dtmf = next(
            (c.payload_type for c in media.receive_codecs if c.is_telephone_event), None
        )
        event = media.telephone_event
        return cls(
            address=None if media.legacy_hold else media.remote_address,
            port=media.remote_port,
            payload_type=codec.payload_type,
            codec=codec.name,
            dtmf_payload_type=None if event is None else event.payload_type,
            receive_codecs=receive,
            receive_dtmf_payload_type=receive_dtmf,
            rtcp=media.remote_rtcp,
            rtcp_mux=media.rtcp_mux,
            send=media.sending,
            receive=media.receiving,
        )


def _event_pt(remote: RemoteMedia) -> int | None:
    if remote.receive_dtmf_payload_type is not None:
        return remote.receive_dtmf_payload_type
    return remote.dtmf_payload_type


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaConfig:
    """Tunables of a media stream, with their defaults.

    Jitter buffer: ``jitter_depth`` (0.06 s) initial/minimum depth, ``jitter_max_depth``
    (0.2 s), ``jitter_adaptive`` (True), ``jitter_capacity`` (50 packets = 1 s),
    ``conceal`` (``"repeat"``: previous frame attenuated; or ``"silence"``).
    RTP: ``symmetric_rtp`` (True: latch), ``send_silence`` (True: send silence when
    there is nothing to play, which keeps NAT bindings and peers' jitter buffers
    happy; False: stop sending, next packet gets the marker bit), ``min_sequential``
    (2, RFC 3550 §A.1 probation), ``max_sources`` (8 SSRCs tracked).
    RTCP: ``rtcp_interval`` (5 s nominal), ``cname`` (default: random, RFC 7022).
    DTMF: ``dtmf_duration`` (0.1 s), ``dtmf_pause`` (0.1 s), ``dtmf_volume`` (10, i.e.
    -10 dBm0), ``dtmf_queue`` (64 digits queued to send, 32 received kept).
    Shell queues: ``read_queue`` (50 frames = 1 s; oldest dropped), ``write_queue``
    (10 frames = 200 ms; writers wait). Pacing: ``late_threshold`` (0.01 s: a packet
    sent later than this after its time counts as late).
    """

    jitter_depth: float = 0.06
    jitter_max_depth: float = 0.2
    jitter_adaptive: bool = True
    jitter_capacity: int = 50
    conceal: Concealment = "repeat"
    symmetric_rtp: bool = True
    send_silence: bool = True
    min_sequential: int = 2
    max_sources: int = 8
    rtcp_interval: float = 5.0
    cname: str | None = None
    dtmf_duration: float = 0.1
    dtmf_pause: float = 0.1
    dtmf_volume: int = 10
    dtmf_queue: int = 64
    read_queue: int = 50
    write_queue: int = 10
    late_threshold: float = 0.01

    def __post_init__(self) -> None:
        if not FRAME_INTERVAL <= self.jitter_depth <= self.jitter_max_depth:
            raise LocalProtocolError("need 0.02 <= jitter_depth <= jitter_max_depth")
        if self.jitter_max_depth / FRAME_INTERVAL > self.jitter_capacity:
            raise LocalProtocolError("jitter_capacity must hold jitter_max_depth")
        if min(self.read_queue, self.write_queue, self.dtmf_queue) < 1:
            raise LocalProtocolError("queue sizes must be at least 1")
        if self.rtcp_interval <= 0:
            raise LocalProtocolError("rtcp_interval must be positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaStatistics:
    """A snapshot of one stream's counters.

    ``bytes_*`` count whole RTP datagrams, ``octets_sent`` RTP payload only (the SR
    sender octet count); ``packets_received`` counts well-formed RTP packets taken in
    (not while receiving is off). ``packets_lost`` is RFC 3550 §A.3's cumulative loss of the
    current source; ``fraction_lost`` the fraction (0..1) in our last report interval.
    ``packets_late`` arrived after their playout time; ``late_sends`` went out more
    than ``MediaConfig.late_threshold`` after their time, ``skipped_frames`` were
    not sent at all (the shell stalled for more than a few frames). ``jitter`` is the
    §A.8 estimate in seconds; ``rtt`` the round-trip time from RTCP (None until the
    peer reported on one of our SRs). ``remote_*`` come from the peer's reports about
    our stream.
    """

    packets_sent: int
    bytes_sent: int
    octets_sent: int
    packets_received: int
    bytes_received: int
    packets_lost: int
    fraction_lost: float
    packets_late: int
    duplicates: int
    concealed: int
    malformed: int
    unknown_payload: int
    late_sends: int
    skipped_frames: int
    jitter: float
    jitter_buffer_depth: float
    rtt: float | None
    remote_fraction_lost: float | None
    remote_packets_lost: int | None
    remote_jitter: float | None
    rtcp_sent: int
    rtcp_received: int
    dtmf_sent: int
    dtmf_received: int
    bye_received: bool
    ssrc: int
    remote_ssrc: int | None
    latched: HostPort | None
    read_overruns: int = 0
    send_errors: int = 0

    @classmethod
    def zero(cls) -> MediaStatistics:
        """All counters zero (a stream that never started)."""
        return cls(
            packets_sent=0,
            bytes_sent=0,
            octets_sent=0,
            packets_received=0,
            bytes_received=0,
            packets_lost=0,
            fraction_lost=0.0,
            packets_late=0,
            duplicates=0,
            concealed=0,
            malformed=0,
            unknown_payload=0,
            late_sends=0,
            skipped_frames=0,
            jitter=0.0,
            jitter_buffer_depth=0.0,
            rtt=None,
            remote_fraction_lost=None,
            remote_packets_lost=None,
            remote_jitter=None,
            rtcp_sent=0,
            rtcp_received=0,
            dtmf_sent=0,
            dtmf_received=0,
            bye_received=False,
            ssrc=0,
            remote_ssrc=None,
            latched=None,
        )


@dataclass(slots=True)
class _SrInfo:
    lsr: int = 0  # middle 32 bits of the last SR's NTP time from this source
    arrival: float = 0.0


@dataclass(slots=True)
class _Counters:
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    unknown_payload: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    rtcp_malformed: int = 0
    dtmf_sent: int = 0
    dtmf_received: int = 0
    late_sends: int = 0
    skipped_frames: int = 0
    fraction_lost: float = 0.0
    remote_fraction_lost: float | None = None
    remote_packets_lost: int | None = None
    remote_jitter: float | None = None
    rtt: float | None = None
    bye_received: bool = False
    sr: dict[int, _SrInfo] = field(default_factory=dict)


class RtpSession:
    """The sans-IO engine of one audio stream (see the module docstring).

    ``now`` is the shell's monotonic clock; ``wallclock_offset`` maps it to Unix time
    (``now + wallclock_offset``) for RTCP's NTP timestamps. ``randbits(n)`` picks
    SSRC, sequence and timestamp bases and the CNAME; ``random()`` (a float in
    [0, 1)) randomizes the RTCP interval. Both default to :mod:`secrets`.
    """

    def __init__(
        self,
        remote: RemoteMedia,
        *,
        now: float,
        config: MediaConfig | None = None,
        wallclock_offset: float = 0.0,
        randbits: Callable[[int], int] = _random_bits,
        random: Callable[[], float] = _random_unit,
    ) -> None:
        self.config = config = config or MediaConfig()
        self.wallclock_offset = wallclock_offset
        self.sender = RtpSender(payload_type=remote.payload_type, randbits=randbits)
        self.receiver = RtpReceiver(
            min_sequential=config.min_sequential, max_sources=config.max_sources
        )
        frames = round(config.jitter_depth / FRAME_INTERVAL)
        self.jitter = JitterBuffer(
            depth=frames,
            adaptive=config.jitter_adaptive,
            max_depth=max(frames, round(config.jitter_max_depth / FRAME_INTERVAL)),
            capacity=config.jitter_capacity,
            conceal=config.conceal,
        )
        self.dtmf_sender = DtmfSender(
            duration=config.dtmf_duration,
            pause=config.dtmf_pause,
            volume=config.dtmf_volume,
            max_queued=config.dtmf_queue,
        )
        self.dtmf_receiver = DtmfReceiver()
        self.rtcp = RtcpScheduler(now, interval=config.rtcp_interval, random=random)
        self.cname = config.cname or f"{randbits(64):016x}{randbits(32):08x}@sipwire"
        self.counters = _Counters()
        self.remote = remote
        self._receive_map = remote.receive_map()
        self._receive_event_pt = _event_pt(remote)
        self._encode = g711.ulaw_encode if remote.codec.casefold() == "pcmu" else g711.alaw_encode
        self._silence_payload = self._encode(SILENCE)
        self._sending = remote.send
        self._receiving = remote.receive
        self._latched: HostPort | None = None
        self._latched_rtcp: HostPort | None = None
        self._active: RtpSource | None = None
        self._probation: tuple[int, int, bytes] | None = None  # ssrc, seq, pcm
        self._pending = b""  # playout re-chunking for peers not using 20 ms packets
        self._inband: Iterator[bytes] | None = None
        self._inband_queue: list[tuple[str, float]] = []
        self._last_send_time: float | None = None
        self._last_send_ts = 0
        self._reported_packets = 0
        self._closed = False

    # ------------------------------------------------------------------ control

    def update(self, remote: RemoteMedia) -> None:
        """New negotiated parameters (re-INVITE, UPDATE): codec, payload types,
        address, directions. The symmetric-RTP latch is dropped if the address moved."""
        if (remote.address, remote.port) != (self.remote.address, self.remote.port):
            self._latched = self._latched_rtcp = None
        if remote.codec.casefold() != self.remote.codec.casefold():
            self._encode = (
                g711.ulaw_encode if remote.codec.casefold() == "pcmu" else g711.alaw_encode
            )
            self._silence_payload = self._encode(SILENCE)
        self.sender.payload_type = remote.payload_type
        self.remote = remote
        self._receive_map = remote.receive_map()
        self._receive_event_pt = _event_pt(remote)
        self.set_direction(send=remote.send, receive=remote.receive)

    def set_direction(self, *, send: bool, receive: bool) -> None:
        """Hold and resume (RFC 3264 §8.4): stop or start sending and/or accepting RTP.
        RTCP continues either way."""
        if send and not self._sending:
            self.sender.start_talkspurt()
        if receive and not self._receiving:
            self.jitter.reset()
            self._pending = b""
        self._sending = send
        self._receiving = receive

    @property
    def sending(self) -> bool:
        return self._sending

    @property
    def receiving(self) -> bool:
        return self._receiving

    @property
    def rtp_destination(self) -> HostPort | None:
        """Where RTP goes now: the latched source address, else the SDP address; None
        when the SDP gives no address (``c=0.0.0.0`` hold, port 0)."""
        sdp = self.remote.rtp_address
        if sdp is None:
            return None
        return self._latched or sdp

    @property
    def rtcp_destination(self) -> HostPort | None:
        """Where RTCP goes now."""
        if self.remote.rtcp_mux:
            return self.rtp_destination
        sdp = self.remote.rtcp_address
        if sdp is None:
            return None
        return self._latched_rtcp or sdp

    # ------------------------------------------------------------------ sending

    def send_dtmf(self, digits: str, *, duration: float | None = None) -> None:
        """Queue DTMF digits: RFC 4733 events if the peer supports them, in-band dual
        tones otherwise. Raises :class:`LocalProtocolError` for a bad digit or a full
        queue."""
        if self.remote.dtmf_payload_type is not None:
            self.dtmf_sender.send(digits, duration=duration)
            return
        for digit in digits:
            event_of(digit)
        if len(self._inband_queue) + len(digits) > self.config.dtmf_queue:
            raise LocalProtocolError("too many DTMF digits queued")
        seconds = self.config.dtmf_duration if duration is None else duration
        self._inband_queue.extend((digit, seconds) for digit in digits)
        if self._inband is None:
            self._inband = self._inband_frames()

    def _inband_frames(self) -> Iterator[bytes]:
        while self._inband_queue:
            digit, seconds = self._inband_queue.pop(0)
            self.counters.dtmf_sent += 1
            pcm = dtmf_tone(digit, seconds, amplitude=0.5) + bytes(
                2 * round(self.config.dtmf_pause * 8000)
            )
            for offset in range(0, len(pcm), FRAME_BYTES):
                chunk = pcm[offset : offset + FRAME_BYTES]
                yield chunk + bytes(FRAME_BYTES - len(chunk))

    @property
    def dtmf_busy(self) -> bool:
        """DTMF digits are queued or being sent."""
        return self.dtmf_sender.busy or self._inband is not None

    def send_frame(self, pcm: bytes | None, now: float) -> tuple[list[bytes], bytes | None]:
        """One 20 ms frame interval. ``pcm`` is 320 octets of 16-bit PCM to send, or
        None for "nothing to say". Returns the RTP datagrams to send now (to
        :attr:`rtp_destination`) and the PCM that was actually sent (for recording;
        None when nothing was sent or an RFC 4733 event replaced the audio)."""
        sender = self.sender
        if self._inband is not None:
            tone = next(self._inband, None)
            if tone is None:
                self._inband = None
            else:
                pcm = tone
        event_pt = self.remote.dtmf_payload_type
        if event_pt is not None and self.dtmf_sender.busy:
            event = self.dtmf_sender.tick(sender.timestamp)
            if event is not None:
                payload, timestamp, marker = event
                if marker:
                    self.counters.dtmf_sent += 1
                sender.advance(FRAME_SAMPLES)
                if not self._sending or self.rtp_destination is None:
                    return [], None
                packet = sender.event(
                    payload, payload_type=event_pt, timestamp=timestamp, marker=marker
                )
                self._sent(packet, now, sender.timestamp)
                return [packet], None
        if not self._sending or self.rtp_destination is None:
            sender.advance(FRAME_SAMPLES)
            sender.start_talkspurt()
            return [], None
        if pcm is None:
            if not self.config.send_silence:
                sender.advance(FRAME_SAMPLES)
                sender.start_talkspurt()
                return [], None
            payload = self._silence_payload
            pcm = SILENCE
        else:
            if len(pcm) != FRAME_BYTES:
                raise LocalProtocolError(f"a frame is {FRAME_BYTES} octets of 16-bit PCM")
            payload = self._encode(pcm)
        timestamp = sender.timestamp
        packet = sender.audio(payload, FRAME_SAMPLES)
        self._sent(packet, now, timestamp)
        return [packet], pcm

    def _sent(self, packet: bytes, now: float, timestamp: int) -> None:
        self.counters.bytes_sent += len(packet)
        self._last_send_time = now
        self._last_send_ts = timestamp

    def skip_frame(self) -> None:
        """A frame interval that passed without sending (the shell fell too far
        behind): the timestamp moves on, the next packet starts a talkspurt."""
        self.sender.advance(FRAME_SAMPLES)
        self.sender.start_talkspurt()
        self.counters.skipped_frames += 1

    # ------------------------------------------------------------------ receiving

    def receive(self, data: bytes, source: HostPort, now: float) -> DtmfDigit | None:
        """A datagram on the RTP port: RTP, or RTCP when multiplexed (RFC 5761)."""
        if is_rtcp(data):
            self.receive_rtcp(data, source, now)
            return None
        return self.receive_rtp(data, source, now)

    def receive_rtp(self, data: bytes, source: HostPort, now: float) -> DtmfDigit | None:
        """One RTP datagram from ``source``; the DTMF digit it starts, if any.
        Malformed packets are counted and dropped."""
        counters = self.counters
        counters.bytes_received += len(data)
        if len(data) >= 12 and data[0] == 0x80:  # the usual case: no CSRC, extension, padding
            second, sequence, timestamp, ssrc = _FAST_HEADER.unpack_from(data, 1)
            payload = data[12:]
            marker = second > 0x7F
            pt = second & 0x7F
        else:
            packet = self.receiver.parse(data)
            if packet is None:
                return None
            sequence, timestamp, ssrc = packet.sequence, packet.timestamp, packet.ssrc
            payload, marker, pt = packet.payload, packet.marker, packet.payload_type
        if not self._receiving:
            return None
        codec = self._receive_map.get(pt)
        is_event = pt == self._receive_event_pt
        counters.packets_received += 1
        src = self.receiver.update(ssrc, sequence, timestamp, len(payload), now, codec is not None)
        if src is None:
            if codec is not None:  # hold the probation packet: deliver it if it validates
                self._probation = (ssrc, sequence, self._decode(codec, payload))
            return None
        if self._latched is None and self.config.symmetric_rtp:
            self._latched = source
        active = self._active
        if is_event:  # DTMF counts whatever its SSRC (some gateways use their own)
            if src is active:
                self.jitter.push(sequence, SILENCE)  # keep the audio timeline
            try:
                digit = self.dtmf_receiver.receive(payload, timestamp, ssrc=ssrc, marker=marker)
            except RemoteProtocolError:
                self.receiver.malformed += 1
                return None
            if digit is not None:
                counters.dtmf_received += 1
            return digit
        if active is not src:
            if (
                active is not None
                and now - active.last_arrival < 2 * FRAME_INTERVAL
                and active.ssrc in self.receiver.sources
            ):
                return None  # another source while the current one is alive
            self._active = src
            self.jitter.reset()
            self._pending = b""
            held = self._probation
            if held is not None and held[0] == src.ssrc:
                self.jitter.push(held[1], held[2])
        self._probation = None
        if codec is not None:
            self.jitter.push(sequence, self._decode(codec, payload))
            return None
        self.jitter.push(sequence, SILENCE)  # comfort noise, unknown: keep the timeline
        if pt != CN_PAYLOAD_TYPE:
            counters.unknown_payload += 1
        return None

    @staticmethod
    def _decode(codec: str, payload: bytes) -> bytes:
        return g711.ulaw_decode(payload) if codec == "pcmu" else g711.alaw_decode(payload)

    def playout(self) -> bytes:
        """The next 20 ms of received audio (320 octets of PCM; silence when there is
        nothing to play)."""
        if not self._receiving:
            return SILENCE
        if not self._pending:
            frame = self.jitter.pop()
            if frame is None:
                return SILENCE
            if len(frame) == FRAME_BYTES:
                return frame
            self._pending = frame
        while len(self._pending) < FRAME_BYTES:
            frame = self.jitter.pop()
            if frame is None:
                frame = SILENCE
            self._pending += frame
        out, self._pending = self._pending[:FRAME_BYTES], self._pending[FRAME_BYTES:]
        return out

    # ------------------------------------------------------------------ RTCP

    def rtcp_due(self, now: float) -> bool:
        """A report should be sent now."""
        return self.rtcp.due(now)

    @property
    def next_rtcp_time(self) -> float:
        return self.rtcp.next_time

    def _report_packets(self, now: float) -> list[RtcpPacket]:
        blocks: tuple[ReportBlock, ...] = ()
        src = self._active
        if src is not None and src.ssrc in self.receiver.sources:
            fraction = src.fraction_lost()
            self.counters.fraction_lost = fraction / 256.0
            sr = self.counters.sr.get(src.ssrc)
            dlsr = 0
            if sr is not None and sr.lsr:
                dlsr = min(0xFFFFFFFF, int((now - sr.arrival) * 65536))
            blocks = (
                ReportBlock(
                    src.ssrc,
                    fraction,
                    src.lost,
                    src.extended_max_seq & 0xFFFFFFFF,
                    min(0xFFFFFFFF, int(src.jitter)),
                    sr.lsr if sr is not None else 0,
                    dlsr,
                ),
            )
        sender = self.sender
        report: RtcpPacket
        if sender.packets_sent > self._reported_packets and self._last_send_time is not None:
            self._reported_packets = sender.packets_sent
            elapsed = int((now - self._last_send_time) * 8000)
            report = SenderReport(
                sender.ssrc,
                ntp_timestamp(now + self.wallclock_offset),
                (self._last_send_ts + elapsed) & 0xFFFFFFFF,
                sender.packets_sent & 0xFFFFFFFF,
                sender.octets_sent & 0xFFFFFFFF,
                blocks,
            )
        else:
            report = ReceiverReport(sender.ssrc, blocks)
        sdes = SourceDescription((SdesChunk(sender.ssrc, ((1, self.cname),)),))
        return [report, sdes]

    def build_report(self, now: float) -> bytes:
        """A compound SR or RR + SDES CNAME (RFC 3550 §6.1); schedules the next one."""
        self.rtcp.sent(now)
        self.counters.rtcp_sent += 1
        return build_compound(self._report_packets(now))

    def build_bye(self, now: float, reason: str | None = None) -> bytes:
        """The compound packet that ends our participation: report, SDES, BYE (§6.6)."""
        self._closed = True
        self.counters.rtcp_sent += 1
        packets = self._report_packets(now)
        packets.append(Bye((self.sender.ssrc,), reason))
        return build_compound(packets)

    def receive_rtcp(self, data: bytes, source: HostPort, now: float) -> None:
        """One RTCP datagram (compound). Malformed ones are counted and dropped."""
        try:
            packets = parse_compound(data)
        except RemoteProtocolError:
            self.counters.rtcp_malformed += 1
            return
        counters = self.counters
        counters.rtcp_received += 1
        if self._latched_rtcp is None and self.config.symmetric_rtp:
            self._latched_rtcp = source
        ours = self.sender.ssrc
        for packet in packets:
            if isinstance(packet, SenderReport):
                if packet.ssrc in counters.sr or len(counters.sr) < self.config.max_sources:
                    counters.sr[packet.ssrc] = _SrInfo(ntp_middle(packet.ntp_timestamp), now)
                self._use_blocks(packet.reports, ours, now)
            elif isinstance(packet, ReceiverReport):
                self._use_blocks(packet.reports, ours, now)
            elif isinstance(packet, Bye):
                active = self._active
                if packet.ssrcs and (active is None or active.ssrc in packet.ssrcs):
                    counters.bye_received = True

    def _use_blocks(self, blocks: tuple[ReportBlock, ...], ours: int, now: float) -> None:
        for block in blocks:
            if block.ssrc != ours:
                continue
            counters = self.counters
            counters.remote_fraction_lost = block.fraction_lost / 256.0
            counters.remote_packets_lost = block.cumulative_lost
            counters.remote_jitter = block.jitter / 8000.0
            rtt = round_trip_time(block, ntp_timestamp(now + self.wallclock_offset))
            if rtt is not None:
                counters.rtt = rtt

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> MediaStatistics:
        c = self.counters
        src = self._active
        jb = self.jitter
        return MediaStatistics(
            packets_sent=self.sender.packets_sent,
            bytes_sent=c.bytes_sent,
            octets_sent=self.sender.octets_sent,
            packets_received=c.packets_received,
            bytes_received=c.bytes_received,
            packets_lost=src.lost if src is not None else 0,
            fraction_lost=c.fraction_lost,
            packets_late=jb.late,
            duplicates=jb.duplicates,
            concealed=jb.concealed,
            malformed=self.receiver.malformed + c.rtcp_malformed,
            unknown_payload=c.unknown_payload,
            late_sends=c.late_sends,
            skipped_frames=c.skipped_frames,
            jitter=src.jitter_seconds if src is not None else 0.0,
            jitter_buffer_depth=jb.depth * FRAME_INTERVAL,
            rtt=c.rtt,
            remote_fraction_lost=c.remote_fraction_lost,
            remote_packets_lost=c.remote_packets_lost,
            remote_jitter=c.remote_jitter,
            rtcp_sent=c.rtcp_sent,
            rtcp_received=c.rtcp_received,
            dtmf_sent=c.dtmf_sent,
            dtmf_received=c.dtmf_received,
            bye_received=c.bye_received,
            ssrc=self.sender.ssrc,
            remote_ssrc=src.ssrc if src is not None else None,
            latched=self._latched,
        )
