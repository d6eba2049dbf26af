"""The asyncio shell: :class:`MediaStream`, one call's audio on a pair of UDP ports.

::

    stream = await MediaStream.open("127.0.0.1")          # binds RTP (even) + RTCP ports
    stream.local_port, stream.rtcp_port                   # for our SDP
    stream.start(RemoteMedia.from_negotiated(negotiated))  # after offer/answer
    await stream.play("prompt.wav")                       # or play_tone(440, 1.0)
    await stream.send_dtmf("1234#")
    async for digit in stream.dtmf(): ...
    pcm = await stream.read_frame()                       # 20 ms, 320 octets, 8 kHz 16-bit
    await stream.write_frame(pcm)
    rec = asyncio.create_task(stream.record("call.wav")); ...; stream.stop_recording()
    stream.set_direction(send=False, receive=True)        # hold
    stream.update(RemoteMedia(...)) / stream.update_remote("192.0.2.7", 40000)
    await stream.close()                                  # RTCP BYE, sockets closed

All protocol logic lives in the sans-IO :class:`~sipwire.media.session.RtpSession`;
this module owns the sockets and the clock. Every stream of an event loop is driven by
one shared pacer: a single ``loop.call_at`` timer at absolute deadlines
(``t0 + k * 20 ms + phase``, so there is no cumulative drift), the streams spread over
four 5 ms phases so that many calls do not all send at the same instant. When the loop
is late the due frames are sent back to back (counted in ``late_sends`` if later than
``MediaConfig.late_threshold``), each stream reading its sockets before a late frame's
playout (what arrived meanwhile, also from another stream of the same loop, is not
played out as missing); after a stall of more than :data:`MAX_CATCH_UP` frames the
excess is skipped (``skipped_frames``), keeping RTP timestamps on the wall clock. A
skipped interval sends nothing, but its playout still goes to the recorder and to
readers, so a recording stays as long as the time that passed.
The sockets are plain non-blocking UDP sockets watched with ``loop.add_reader`` (each
readiness callback drains up to :data:`MAX_READS` datagrams) and written with
``socket.sendto``; a packet that finds the send buffer full is dropped and counted in
``send_errors`` (late audio is worth less than none).

What is sent each frame, by priority: RFC 4733/in-band DTMF, the current playback
(:meth:`MediaStream.play`, :meth:`MediaStream.play_tone`, :meth:`MediaStream.play_pcm`),
frames written with :meth:`MediaStream.write_frame`, the echo of what was received
(``echo=True``), else silence (or nothing, with ``MediaConfig(send_silence=False)``).

What is received is played out of the jitter buffer every frame, also silence while
nothing arrives, and goes to the recorder, to :meth:`MediaStream.read_frame` readers (a
queue that exists from the first call on, oldest frames dropped beyond
``MediaConfig.read_queue``) and to the echo.

Datagrams arriving before :meth:`MediaStream.start` are dropped. Remote addresses must
be IP literals (the caller resolves names).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import cycle
from types import TracebackType
from typing import Any, Literal

from sipwire.core._errors import LocalProtocolError
from sipwire.media.session import (
    FRAME_INTERVAL,
    HostPort,
    MediaConfig,
    MediaStatistics,
    RemoteMedia,
    RtpSession,
)
from sipwire.media.tone import FRAME_BYTES, frames, tone_frames
from sipwire.media.wav import WavWriter, read_wav

__all__ = ["MAX_CATCH_UP", "PACER_SLOTS", "MediaStream", "PortRange", "RecordWhat"]

MAX_CATCH_UP = 5  # frames sent back to back after a stall; more are skipped
MAX_READS = 64  # datagrams read from one socket per readiness callback
MAX_DATAGRAM = 2048  # larger datagrams are truncated (and then fail to parse)
PACER_SLOTS = 4  # phases of the 20 ms interval that streams are spread over
_SLOT_INTERVAL = FRAME_INTERVAL / PACER_SLOTS
RecordWhat = Literal["received", "sent", "both"]
SILENCE = bytes(FRAME_BYTES)

_np: Any
try:  # numpy is optional: mixing for record(what="both")
    import numpy

    _np = numpy
except ImportError:  # pragma: no cover - exercised only without numpy
    _np = None


@dataclasses.dataclass(frozen=True, slots=True)
class PortRange:
    """Local ports for RTP: an even port from ``first..last`` (RTCP on the next odd
    one, RFC 3550 §11), tried in a random order. Default 16384-32767."""

    first: int = 16384
    last: int = 32767

    def __post_init__(self) -> None:
        if not 1 <= self.first < self.last <= 65535:
            raise LocalProtocolError("port range must satisfy 1 <= first < last <= 65535")

    def candidates(self, randbelow: Callable[[int], int]) -> Iterator[int]:
        """Every even port of the range once, in a uniformly random order.

        Not a walk from a random start: other software often holds a contiguous block
        of ports (a media server, another process allocating upwards), and a linear
        walk that starts inside such a block spends its whole attempt budget there
        while most of the range is free. Each draw here is independent of the block
        layout. A lazy Fisher-Yates shuffle: the state holds one entry per port drawn.
        """
        first = self.first + (self.first & 1)
        count = (self.last - 1 - first) // 2 + 1
        moved: dict[int, int] = {}  # position -> index now there (after the swaps)
        for i in range(count):
            j = i + randbelow(count - i)
            pick = moved.pop(j, j)
            if j != i:
                moved[j] = moved.pop(i, i)
            yield first + 2 * pick


def _bind(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _mix(a: bytes, b: bytes) -> bytes:
    """Sum of two 16-bit PCM frames, clipped."""
    if _np is not None:
        total = _np.frombuffer(a, dtype="<i2").astype(_np.int32) + _np.frombuffer(b, dtype="<i2")
        return bytes(_np.clip(total, -32768, 32767).astype("<i2").tobytes())
    from array import array

    x, y = array("h", a), array("h", b)
    return array(
        "h", [max(-32768, min(32767, p + q)) for p, q in zip(x, y, strict=False)]
    ).tobytes()


class _Pacer:
    """One timer per event loop that ticks every stream at absolute 20 ms deadlines.

    Streams are spread over :data:`PACER_SLOTS` phases of the 20 ms interval (the
    least-loaded phase is given to a new stream), so the work and the packets of many
    calls are not all bunched at one instant: the timer fires every 5 ms for one phase.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.groups: list[dict[MediaStream, None]] = [{} for _ in range(PACER_SLOTS)]
        self.where: dict[MediaStream, int] = {}
        self.deadline = 0.0  # of the next phase to run
        self.slot = 0
        self.handle: asyncio.TimerHandle | None = None

    def add(self, stream: MediaStream) -> None:
        if not self.where:
            self.deadline = self.loop.time() + _SLOT_INTERVAL
            self.slot = 0
            self.handle = self.loop.call_at(self.deadline, self._run)
        slot = min(range(PACER_SLOTS), key=lambda i: len(self.groups[i]))
        self.groups[slot][stream] = None
        self.where[stream] = slot

    def remove(self, stream: MediaStream) -> None:
        slot = self.where.pop(stream, None)
        if slot is not None:
            self.groups[slot].pop(stream, None)
        if not self.where:
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
            if _PACERS.get(self.loop) is self:
                del _PACERS[self.loop]

    def _run(self) -> None:
        loop = self.loop
        # the timer fired, so the deadline has come, even if the clock reads a hair
        # earlier (uvloop's clock has 1 ms resolution): never spin on a due timer
        now = max(loop.time(), self.deadline)
        behind = int((now - self.deadline) / FRAME_INTERVAL)
        if behind > MAX_CATCH_UP:
            skip = behind - MAX_CATCH_UP
            for stream in tuple(self.where):
                stream._skip(skip)
            self.deadline += skip * FRAME_INTERVAL
        while self.deadline <= now and self.where:
            for stream in tuple(self.groups[self.slot]):
                try:
                    stream._tick(self.deadline)
                except Exception as exc:  # one broken stream must not stop the others
                    loop.call_exception_handler(
                        {"message": "media stream tick failed", "exception": exc}
                    )
            self.slot = (self.slot + 1) % PACER_SLOTS
            self.deadline += _SLOT_INTERVAL
        if self.where:
            self.handle = loop.call_at(self.deadline, self._run)


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pacer] = weakref.WeakKeyDictionary()


def _pacer(loop: asyncio.AbstractEventLoop) -> _Pacer:
    pacer = _PACERS.get(loop)
    if pacer is None:
        pacer = _PACERS[loop] = _Pacer(loop)
    return pacer


class _Playback:
    __slots__ = ("done", "frames")

    def __init__(self, frames: Iterator[bytes], done: asyncio.Future[bool]) -> None:
        self.frames = frames
        self.done = done

    def finish(self, completed: bool) -> None:
        if not self.done.done():
            self.done.set_result(completed)


class _Recording:
    __slots__ = ("done", "frames", "limit", "what", "writer")

    def __init__(
        self, writer: WavWriter, what: RecordWhat, limit: int | None, done: asyncio.Future[float]
    ) -> None:
        self.writer = writer
        self.what = what
        self.limit = limit
        self.frames = 0
        self.done = done

    def add(self, received: bytes, sent: bytes | None) -> bool:
        """Write one frame; True when the length limit is reached."""
        if self.what == "received":
            self.writer.write(received)
        elif self.what == "sent":
            self.writer.write(sent or SILENCE)
        else:
            self.writer.write(received if sent is None else _mix(received, sent))
        self.frames += 1
        return self.limit is not None and self.frames >= self.limit

    def finish(self) -> None:
        try:
            self.writer.close()
        finally:
            if not self.done.done():
                self.done.set_result(self.writer.seconds)


class MediaStream:
    """One audio stream bound to local UDP ports; see the module docstring.

    Create with :meth:`open` (binds), then :meth:`start` with the negotiated
    :class:`~sipwire.media.session.RemoteMedia`.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rtp: socket.socket,
        rtcp: socket.socket | None,
        *,
        host: str,
        port: int,
        rtcp_port: int | None,
        config: MediaConfig,
        randbits: Callable[[int], int],
        random: Callable[[], float] | None,
    ) -> None:
        self._loop = loop
        self._rtp = rtp
        self._rtcp = rtcp
        self.local_host = host
        self.local_port = port
        self.rtcp_port = rtcp_port
        """The local RTCP port (None when bound for rtcp-mux only)."""
        self.config = config
        self._randbits = randbits
        self._random = random
        self._session: RtpSession | None = None
        self._closed = False
        self._late_threshold = config.late_threshold
        self._playback: _Playback | None = None
        self._recording: _Recording | None = None
        self._reader: asyncio.Queue[bytes] | None = None
        self._writes: asyncio.Queue[bytes] = asyncio.Queue(config.write_queue)
        self._digits: asyncio.Queue[str | None] = asyncio.Queue(config.dtmf_queue)
        self._dtmf_lock = asyncio.Lock()
        self._dtmf_done: asyncio.Future[None] | None = None
        self.echo = False
        """Send back what is received (one frame later)."""
        self._echo_frame: bytes | None = None
        self._read_overruns = 0
        self._send_errors = 0

    # ------------------------------------------------------------------ set-up

    @classmethod
    async def open(
        cls,
        host: str = "0.0.0.0",
        *,
        port_range: PortRange | None = None,
        port: int | None = None,
        rtcp_mux: bool = False,
        config: MediaConfig | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
        random: Callable[[], float] | None = None,
        attempts: int = 64,
    ) -> MediaStream:
        """Bind RTP on an even port of ``port_range`` (default :class:`PortRange`) and
        RTCP on the next one, or on ``port`` exactly (0: any port the OS picks); with
        ``rtcp_mux=True`` no RTCP port is bound (RFC 5761 only). ``host`` is the local
        IPv4 or IPv6 address (``"::"`` takes both families). Raises :class:`OSError`
        if no port could be bound after ``attempts`` tries."""
        loop = asyncio.get_running_loop()
        config = config or MediaConfig()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if port is not None:
            candidates: Iterator[int] = iter([port] * (attempts if port == 0 else 1))
        else:
            candidates = (port_range or PortRange()).candidates(secrets.randbelow)
        error: OSError | None = None
        for _, candidate in zip(range(attempts), candidates, strict=False):
            try:
                rtp_sock = _bind(family, host, candidate)
            except OSError as exc:
                error = exc
                continue
            rtp_port = rtp_sock.getsockname()[1]
            rtcp_sock = None
            if not rtcp_mux:
                try:
                    rtcp_sock = _bind(family, host, rtp_port + 1) if rtp_port < 65535 else None
                except OSError as exc:
                    error = exc
                if rtcp_sock is None:
                    rtp_sock.close()
                    continue
            break
        else:
            raise error or OSError(f"no free RTP port for {host}")
        stream = cls(
            loop,
            rtp_sock,
            rtcp_sock,
            host=host,
            port=rtp_port,
            rtcp_port=None if rtcp_sock is None else rtp_port + 1,
            config=config,
            randbits=randbits,
            random=random,
        )
        loop.add_reader(rtp_sock.fileno(), stream._read_ready, rtp_sock, False)
        if rtcp_sock is not None:
            loop.add_reader(rtcp_sock.fileno(), stream._read_ready, rtcp_sock, True)
        return stream

    def start(self, remote: RemoteMedia) -> None:
        """Begin the call's media with the negotiated parameters: sending starts at
        the next 20 ms tick, received packets are accepted from now on."""
        if self._closed:
            raise LocalProtocolError("media stream is closed")
        if self._session is not None:
            raise LocalProtocolError("media stream already started; use update()")
        now = self._loop.time()
        kwargs: dict[str, Any] = {}
        if self._random is not None:
            kwargs["random"] = self._random
        self._session = RtpSession(
            remote,
            now=now,
            config=self.config,
            wallclock_offset=time.time() - now,
            randbits=self._randbits,
            **kwargs,
        )
        _pacer(self._loop).add(self)

    @property
    def session(self) -> RtpSession:
        """The sans-IO engine (after :meth:`start`)."""
        if self._session is None:
            raise LocalProtocolError("media stream not started")
        return self._session

    @property
    def started(self) -> bool:
        return self._session is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def local_address(self) -> HostPort:
        """(host, RTP port) as bound."""
        return (self.local_host, self.local_port)

    def update(self, remote: RemoteMedia) -> None:
        """New negotiated parameters mid-call (re-INVITE/UPDATE)."""
        self.session.update(remote)

    def update_remote(
        self, address: str | None, port: int, *, rtcp: HostPort | None = None
    ) -> None:
        """The peer moved: send RTP (and RTCP) to a new address from now on."""
        session = self.session
        session.update(dataclasses.replace(session.remote, address=address, port=port, rtcp=rtcp))

    def set_direction(self, *, send: bool, receive: bool) -> None:
        """Hold/resume: stop or start sending and/or accepting RTP (RTCP goes on)."""
        self.session.set_direction(send=send, receive=receive)

    # ------------------------------------------------------------------ I/O callbacks

    def _read_ready(self, sock: socket.socket, rtcp: bool) -> None:
        """Drain (up to :data:`MAX_READS` datagrams of) a readable socket."""
        session = self._session
        now = self._loop.time()
        for _ in range(MAX_READS):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued on the socket
                self._send_errors += 1
                continue
            if session is None or self._closed:
                continue  # not started: drop
            source = (addr[0], addr[1])
            if rtcp:
                session.receive_rtcp(data, source, now)
                continue
            digit = session.receive(data, source, now)
            if digit is not None:
                queue = self._digits
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(digit.digit)

    def _drain(self) -> None:
        """Read what has arrived (the pacer is catching up: see :meth:`_tick`)."""
        self._read_ready(self._rtp, False)
        if self._rtcp is not None:
            self._read_ready(self._rtcp, True)

    def _skip(self, frames: int) -> None:
        """``frames`` intervals the pacer gave up on: nothing is sent for them, but
        their playout still goes to the recorder and readers (the recording keeps
        the wall clock's length, and the audio that was buffered is not lost)."""
        session = self._session
        if session is not None:
            self._drain()
            for _ in range(frames):
                session.skip_frame()
                self._deliver(session.playout(), None)

    def _tick(self, deadline: float) -> None:
        session = self._session
        if session is None:
            return
        now = self._loop.time()
        late = now - deadline > self._late_threshold
        packets, sent = session.send_frame(self._outgoing(), now)
        if packets:
            if late:
                session.counters.late_sends += len(packets)
            destination = session.rtp_destination
            if destination is not None:
                for packet in packets:
                    self._send_rtp(packet, destination)
        if late:
            # catching up after a stall: frames fall due back to back in one callback,
            # so the reader callbacks cannot run between them; read the socket here so
            # that packets which arrived in time (e.g. sent by another stream of this
            # loop in the same catch-up) are not played out as missing and counted late
            self._drain()
        received = session.playout()
        if self.echo:
            self._echo_frame = received
        self._deliver(received, sent)
        if now >= session.next_rtcp_time:
            self._send_rtcp(session.build_report(now))
        waiter = self._dtmf_done
        if waiter is not None and not session.dtmf_busy and not waiter.done():
            waiter.set_result(None)

    def _deliver(self, received: bytes, sent: bytes | None) -> None:
        """One played-out frame to the recorder and the :meth:`read_frame` queue."""
        recording = self._recording
        if recording is not None and recording.add(received, sent):
            self._recording = None
            recording.finish()
        reader = self._reader
        if reader is not None:
            if reader.full():
                reader.get_nowait()
                self._read_overruns += 1
            reader.put_nowait(received)

    def _send_rtp(self, packet: bytes, destination: HostPort) -> None:
        # a full send buffer drops the packet: stale audio is worth less than none
        try:
            self._rtp.sendto(packet, destination)
        except OSError:
            self._send_errors += 1

    def _outgoing(self) -> bytes | None:
        playback = self._playback
        if playback is not None:
            frame = next(playback.frames, None)
            if frame is not None:
                return frame
            self._playback = None
            playback.finish(True)
        writes = self._writes
        if not writes.empty():
            return writes.get_nowait()
        if self.echo:
            frame, self._echo_frame = self._echo_frame, None
            return frame
        return None

    def _send_rtcp(self, data: bytes) -> None:
        session = self._session
        if session is None:
            return
        destination = session.rtcp_destination
        if destination is None:
            return
        sock = self._rtp if session.remote.rtcp_mux or self._rtcp is None else self._rtcp
        try:
            sock.sendto(data, destination)
        except OSError:
            self._send_errors += 1

    # ------------------------------------------------------------------ playing

    async def _play_frames(self, source: Iterator[bytes]) -> bool:
        self.session  # noqa: B018 - raises if not started
        if self._closed:
            return False
        done: asyncio.Future[bool] = self._loop.create_future()
        playback = _Playback(source, done)
        self.stop_playing()
        self._playback = playback
        try:
            return await done
        finally:
            if self._playback is playback:
                self._playback = None
            playback.finish(False)

    async def play(self, path: str | os.PathLike[str], *, repeat: bool = False) -> bool:
        """Play a WAV file (any PCM format, converted to 8 kHz mono in a worker thread)
        into the call; True when it played to the end, False when stopped
        (:meth:`stop_playing`, another play, close). Cancelling the call stops it.
        With ``repeat`` it loops until stopped."""
        pcm = await asyncio.to_thread(read_wav, path)
        return await self.play_pcm(pcm, repeat=repeat)

    async def play_pcm(self, pcm: bytes, *, repeat: bool = False) -> bool:
        """Play 8 kHz mono 16-bit little-endian PCM (padded to whole frames)."""
        chunks = list(frames(pcm))
        source: Iterator[bytes] = cycle(chunks) if repeat and chunks else iter(chunks)
        return await self._play_frames(source)

    async def play_tone(
        self, *freqs: float, seconds: float | None = 1.0, amplitude: float = 0.5
    ) -> bool:
        """Play a tone (one frequency, or several summed) for ``seconds`` (None: until
        stopped)."""
        return await self._play_frames(tone_frames(*freqs, seconds=seconds, amplitude=amplitude))

    def stop_playing(self) -> None:
        """Stop the current playback (its ``play`` returns False)."""
        playback, self._playback = self._playback, None
        if playback is not None:
            playback.finish(False)

    @property
    def playing(self) -> bool:
        return self._playback is not None

    # ------------------------------------------------------------------ recording

    async def record(
        self,
        path: str | os.PathLike[str],
        *,
        what: RecordWhat = "received",
        max_seconds: float | None = None,
    ) -> float:
        """Record the call to an 8 kHz mono 16-bit WAV until :meth:`stop_recording`,
        :meth:`close`, cancellation or ``max_seconds``; return the seconds recorded.
        ``what``: the received audio (default), what we sent, or both mixed."""
        self.session  # noqa: B018 - raises if not started
        if self._closed:
            raise LocalProtocolError("media stream is closed")
        if what not in ("received", "sent", "both"):
            raise LocalProtocolError(f"record what={what!r}?")
        self.stop_recording()
        done: asyncio.Future[float] = self._loop.create_future()
        limit = None if max_seconds is None else max(1, round(max_seconds / FRAME_INTERVAL))
        recording = _Recording(WavWriter(path), what, limit, done)
        self._recording = recording
        try:
            return await done
        finally:
            if self._recording is recording:
                self._recording = None
            recording.finish()

    def stop_recording(self) -> None:
        """Stop the current recording (the WAV file is completed)."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.finish()

    @property
    def recording(self) -> bool:
        return self._recording is not None

    # ------------------------------------------------------------------ frames API

    async def read_frame(self) -> bytes:
        """The next 20 ms of received audio: 320 octets of 8 kHz 16-bit little-endian
        PCM (silence while nothing arrives), one every 20 ms; ``b""`` once the stream
        is closed. Frames queue from the first call on (at most
        ``MediaConfig.read_queue``; the oldest are dropped)."""
        if self._reader is None:
            if self._closed:
                return b""
            self._reader = asyncio.Queue(self.config.read_queue + 1)
        return await self._reader.get()

    async def write_frame(self, pcm: bytes) -> None:
        """Queue 320 octets (20 ms) of 8 kHz 16-bit little-endian PCM to send; waits
        while ``MediaConfig.write_queue`` frames are already queued, so a producer is
        paced by the call. Raises :class:`LocalProtocolError` on a closed stream or a
        frame of another size."""
        if len(pcm) != FRAME_BYTES:
            raise LocalProtocolError(f"write_frame takes {FRAME_BYTES} octets of PCM")
        if self._closed:
            raise LocalProtocolError("media stream is closed")
        await self._writes.put(bytes(pcm))

    # ------------------------------------------------------------------ DTMF

    async def send_dtmf(self, digits: str, *, duration: float | None = None) -> None:
        """Send DTMF digits (``0-9 * # A-D``), RFC 4733 if negotiated, else in-band;
        returns when the last one (and its pause) has gone out, or the stream closed.
        Concurrent calls are sent one after the other."""
        session = self.session
        async with self._dtmf_lock:
            if self._closed:
                return
            session.send_dtmf(digits, duration=duration)
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._dtmf_done = waiter
            try:
                await waiter
            except asyncio.CancelledError:
                session.dtmf_sender.clear()
                raise
            finally:
                self._dtmf_done = None

    async def dtmf(self) -> AsyncIterator[str]:
        """Received DTMF digits, each once, until the stream closes. At most
        ``MediaConfig.dtmf_queue`` unread digits are kept (the oldest are dropped)."""
        while True:
            digit = await self._digits.get()
            if digit is None:
                self._digits.put_nowait(None)  # wake other iterators too
                return
            yield digit

    # ------------------------------------------------------------------ statistics / close

    def statistics(self) -> MediaStatistics:
        """Counters so far (all zero before :meth:`start`)."""
        session = self._session
        stats = session.statistics() if session is not None else MediaStatistics.zero()
        return dataclasses.replace(
            stats, read_overruns=self._read_overruns, send_errors=self._send_errors
        )

    async def close(self, reason: str | None = None) -> None:
        """Stop: send an RTCP BYE (RFC 3550 §6.6), end playback/recording, wake
        readers (``read_frame`` returns ``b""``, ``dtmf()`` ends) and close the
        sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session = self._session
        if session is not None:
            _pacer(self._loop).remove(self)
            self._send_rtcp(session.build_bye(self._loop.time(), reason))
        self.stop_playing()
        self.stop_recording()
        if self._reader is not None:
            while self._reader.full():
                self._reader.get_nowait()
            self._reader.put_nowait(b"")
        else:
            self._reader = None
        while self._digits.full():
            self._digits.get_nowait()
        self._digits.put_nowait(None)
        waiter = self._dtmf_done
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for sock in (self._rtp, self._rtcp):
            if sock is not None:
                self._loop.remove_reader(sock.fileno())
                sock.close()
        await asyncio.sleep(0)

    async def __aenter__(self) -> MediaStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
