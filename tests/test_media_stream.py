"""MediaStream, the asyncio shell, over real loopback UDP sockets.

Two streams talk to each other on 127.0.0.1 (and ::1); raw UDP sockets stand in for a
peer where the test needs to see the packets. Every wait is bounded; no fixed sleeps
decide an outcome (sleeps only let time pass before counting what happened).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import pathlib
import random
import secrets
import socket
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from peers.audio import dominant_frequency, read_wav, rms
from sipwire.core._errors import LocalProtocolError
from sipwire.media.rtcp import Bye, parse_compound
from sipwire.media.rtp import RtpPacket
from sipwire.media.session import MediaConfig, RemoteMedia
from sipwire.media.stream import MediaStream, PortRange
from sipwire.media.tone import sine

T = TypeVar("T")
LOCAL = "127.0.0.1"
LOOPS = ["asyncio", "uvloop"]


def run(loop: str, factory: Callable[[], Awaitable[T]]) -> T:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(factory())  # type: ignore[arg-type]
    with asyncio.Runner() as runner:
        return runner.run(factory())  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def pair(
    host: str = LOCAL, config: MediaConfig | None = None, dtmf: bool = True
) -> AsyncIterator[tuple[MediaStream, MediaStream]]:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(await MediaStream.open(host, config=config))
        b = await stack.enter_async_context(await MediaStream.open(host, config=config))
        pt = 101 if dtmf else None
        a.start(RemoteMedia(address=host, port=b.local_port, dtmf_payload_type=pt))
        b.start(RemoteMedia(address=host, port=a.local_port, dtmf_payload_type=pt))
        yield a, b


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket that records what arrives, with loop-clock arrival times."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes, Any]] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets.append((asyncio.get_running_loop().time(), data, addr))
        self.arrived.set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def rtp(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for _, d, _ in self.packets if not 192 <= d[1] <= 223]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.packets) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def raw_peers(count: int = 1, host: str = LOCAL) -> AsyncIterator[list[RawPeer]]:
    """``count`` raw UDP peers, closed on the way out (also when the test fails: a
    leaked transport would be garbage-collected, and reported, in some later test)."""
    loop = asyncio.get_running_loop()
    peers: list[RawPeer] = []
    try:
        for _ in range(count):
            _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=(host, 0))
            peers.append(peer)
        yield peers
    finally:
        for peer in peers:
            assert peer.transport is not None
            peer.transport.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def played_out(sender: MediaStream, receiver: MediaStream) -> None:
    """Wait until every packet ``sender`` has sent so far has left ``receiver``'s jitter
    buffer (played, so recorded and read; or dropped as late)."""
    sent = sender.statistics().packets_sent
    await wait_until(
        lambda: receiver.statistics().packets_received - receiver.session.jitter.level >= sent
    )


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("loop", LOOPS)
def test_a_1khz_tone_is_recorded_as_1khz(loop: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rec.wav"

    async def body() -> tuple[bool, float]:
        async with pair() as (a, b):
            recording = asyncio.create_task(b.record(path))
            await asyncio.sleep(0)
            played = await asyncio.wait_for(a.play_tone(1000, seconds=1.0), 5)
            # b's jitter buffer delays playout by 60 ms, more if it adapted to a loop
            # stall: wait until the tone's last packet has left it (then it is recorded)
            await played_out(a, b)
            b.stop_recording()
            seconds = await asyncio.wait_for(recording, 5)
            stats = b.statistics()
            assert stats.packets_received >= 50 and stats.packets_lost == 0
            assert stats.malformed == 0
            return played, seconds

    played, seconds = run(loop, body)
    assert played
    assert 1.0 <= seconds <= 2.0
    samples, rate = read_wav(path)
    assert rate == 8000
    assert dominant_frequency(path) == pytest.approx(1000, abs=3)
    loud = [s for s in samples if abs(s) > 0.05]
    assert len(loud) >= 5900  # about a second of tone (a quarter of 1 kHz samples are 0)
    assert rms(samples[1600:8000]) > 0.3


def test_play_a_wav_file_in_another_format(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "in.wav"
    rate = 44100
    samples = [0.4 * math.sin(2 * math.pi * 600 * i / rate) for i in range(rate)]
    frames = array("h", [round(v * 32767) for s in samples for v in (s, s)])  # stereo
    import wave

    with wave.open(str(source), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    out = tmp_path / "out.wav"

    async def body() -> None:
        async with pair() as (a, b):
            recording = asyncio.create_task(b.record(out, max_seconds=1.3))
            assert await asyncio.wait_for(a.play(source), 10)
            assert await asyncio.wait_for(recording, 5) == pytest.approx(1.3, abs=0.03)

    asyncio.run(body())
    assert dominant_frequency(out) == pytest.approx(600, abs=3)


async def test_stop_and_cancel_playback() -> None:
    async with pair() as (a, _b):
        playing = asyncio.create_task(a.play_tone(440, seconds=None))
        await wait_until(lambda: a.playing)
        a.stop_playing()
        assert await asyncio.wait_for(playing, 2) is False
        second = asyncio.create_task(a.play_tone(440, seconds=10))
        await wait_until(lambda: a.playing)
        third = asyncio.create_task(a.play_pcm(sine(300, 0.1)))  # replaces the second
        assert await asyncio.wait_for(second, 2) is False
        assert await asyncio.wait_for(third, 2) is True
        fourth = asyncio.create_task(a.play_tone(440, seconds=10))
        await wait_until(lambda: a.playing)
        fourth.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fourth
        assert not a.playing


async def test_record_both_directions_mixes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "both.wav"
    async with pair() as (a, b):
        b_tone = asyncio.create_task(b.play_tone(1500, seconds=None, amplitude=0.3))
        recording = asyncio.create_task(b.record(path, what="both", max_seconds=1.0))
        await asyncio.wait_for(a.play_tone(500, seconds=1.2, amplitude=0.3), 5)
        await asyncio.wait_for(recording, 5)
        b.stop_playing()
        await b_tone
    samples, _ = read_wav(path)
    low = dominant_frequency(path, max_hz=1000)
    high = dominant_frequency(path, min_hz=1000)
    assert low == pytest.approx(500, abs=3) and high == pytest.approx(1500, abs=3)
    assert max(abs(s) for s in samples) < 0.7


async def test_frames_api_for_voice_bots() -> None:
    async with pair() as (a, b):
        # b is a bot: it reads what a says and writes its own audio back
        tone = sine(1000, 1.0)
        feeder = asyncio.create_task(a.play_pcm(tone))
        heard: list[bytes] = []
        async with asyncio.timeout(5):
            while len(heard) < 50:
                frame = await b.read_frame()
                assert len(frame) == 320
                heard.append(frame)
        await feeder
        pcm = b"".join(heard)
        values = [v / 32768 for v in array("h", pcm)]
        assert dominant_frequency((values, 8000), trim=0.15) == pytest.approx(1000, abs=3)
        # write_frame: paced by the call, the queue bound makes the writer wait
        reply = sine(700, 0.6)
        start = asyncio.get_running_loop().time()
        for i in range(0, len(reply), 320):
            await asyncio.wait_for(b.write_frame(reply[i : i + 320]), 2)
        elapsed = asyncio.get_running_loop().time() - start
        assert elapsed > 0.2  # 30 frames through a 10-frame queue cannot be instant
        with pytest.raises(LocalProtocolError):
            await b.write_frame(b"\x00" * 100)


async def test_echo_mode_sends_back_what_arrives(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "echo.wav"
    async with pair() as (a, b):
        b.echo = True
        recording = asyncio.create_task(a.record(path, max_seconds=1.5))
        await asyncio.wait_for(a.play_tone(850, seconds=1.2), 5)
        await asyncio.wait_for(recording, 5)
    assert dominant_frequency(path) == pytest.approx(850, abs=3)


# --------------------------------------------------------------------------- DTMF


@pytest.mark.parametrize("dtmf", [True, False], ids=["rfc4733", "inband-sent"])
async def test_dtmf_end_to_end(dtmf: bool) -> None:
    async with pair(dtmf=dtmf) as (a, b):
        got: list[str] = []

        async def collect() -> None:
            async for digit in b.dtmf():
                got.append(digit)
                if len(got) == 4:
                    return

        collector = asyncio.create_task(collect())
        await asyncio.wait_for(a.send_dtmf("123#"), 5)
        if dtmf:
            await asyncio.wait_for(collector, 2)
            assert got == list("123#")
            assert b.statistics().dtmf_received == 4
        else:  # no telephone-event: in-band tones, nothing to report as RFC 4733
            await asyncio.sleep(0.1)
            assert got == []
            collector.cancel()
        assert a.statistics().dtmf_sent == 4


async def test_dtmf_iterator_ends_on_close() -> None:
    async with pair() as (_a, b):
        iterator = b.dtmf()
        pending = asyncio.create_task(anext(iterator, "end"))
        await asyncio.sleep(0.05)
        await b.close()
        assert await asyncio.wait_for(pending, 2) == "end"
        assert await b.read_frame() == b""


async def test_send_dtmf_on_an_unstarted_stream_is_an_error() -> None:
    stream = await MediaStream.open(LOCAL)
    try:
        with pytest.raises(LocalProtocolError):
            await stream.send_dtmf("1")
        assert stream.statistics().packets_sent == 0
    finally:
        await stream.close()


# --------------------------------------------------------------------------- pacing


@pytest.mark.parametrize("loop", LOOPS)
def test_pacing_sends_fifty_packets_per_second(loop: str) -> None:
    async def body() -> None:
        async with raw_peers() as [peer], await MediaStream.open(LOCAL) as stream:
            stream.start(RemoteMedia(address=LOCAL, port=peer.port))
            await peer.wait_for(1)
            await asyncio.sleep(2.2)
            rtp = [(t, RtpPacket.parse(d)) for t, d, _ in peer.packets if d[1] < 192]
            first = rtp[0][0]
            in_window = [p for t, p in rtp if first <= t < first + 2.0]
            # 2 s of 20 ms packets: 100, give or take the edges of the window
            assert 97 <= len(in_window) <= 103
            seqs = [p.sequence for p in in_window]
            assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
            stamps = [p.timestamp for p in in_window]
            assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
            assert in_window[0].marker and not any(p.marker for p in in_window[1:])
            assert all(p.payload == b"\xff" * 160 for p in in_window)  # mu-law silence
            assert stream.statistics().skipped_frames == 0

    run(loop, body)


async def test_a_blocked_loop_catches_up_without_drift() -> None:
    async with raw_peers() as [peer], await MediaStream.open(LOCAL) as stream:
        stream.start(RemoteMedia(address=LOCAL, port=peer.port))
        await peer.wait_for(5)
        import time

        time.sleep(0.07)  # block the loop: 3 frames fall due at once
        await asyncio.sleep(0.3)
        time.sleep(0.4)  # a long stall: beyond the catch-up limit, frames are skipped
        await asyncio.sleep(0.3)
        stats = stream.statistics()
        assert stats.late_sends >= 3
        assert stats.skipped_frames >= 10
        rtp = peer.rtp()
        # RTP time follows the wall clock: last timestamp - first = elapsed sampling time
        span = (rtp[-1].timestamp - rtp[0].timestamp) & 0xFFFFFFFF
        expected = (peer.packets[-1][0] - peer.packets[0][0]) * 8000
        assert abs(span - expected) <= 3 * 160
        markers = [p for p in rtp if p.marker]
        assert len(markers) >= 2  # a new talkspurt after the skipped frames


async def test_a_short_stall_loses_nothing_between_streams_of_one_loop() -> None:
    """Frames that fall due together after a stall are sent and played out in one
    callback; the receiver must read what the sender just sent before playing out,
    or every catch-up turns into late packets and concealment."""
    async with pair() as (a, b):
        tone = asyncio.create_task(a.play_tone(1000, seconds=1.5))
        for count in (10, 35, 60):
            await wait_until(lambda: b.statistics().packets_received >= count)  # noqa: B023
            time.sleep(0.07)  # block the loop: 3-4 frames fall due at once on both sides
        await asyncio.wait_for(tone, 5)
        await played_out(a, b)
        assert a.statistics().late_sends >= 3  # the stalls happened
        stats = b.statistics()
        assert stats.packets_lost == 0
        assert stats.packets_late == 0 and stats.concealed == 0


async def test_a_long_stall_keeps_the_recording_on_the_wall_clock(
    tmp_path: pathlib.Path,
) -> None:
    """Beyond the catch-up limit frames are not sent, but their playout intervals still
    go to the recording: it stays as long as the time that passed."""
    async with pair() as (_a, b):
        loop = asyncio.get_running_loop()
        await wait_until(lambda: b.statistics().packets_received >= 5)
        start = loop.time()
        recording = asyncio.create_task(b.record(tmp_path / "stall.wav"))
        await asyncio.sleep(0.2)
        time.sleep(0.5)  # 25 frames due: 5 are caught up, 20 skipped
        await asyncio.sleep(0.3)
        b.stop_recording()
        elapsed = loop.time() - start
        seconds = await asyncio.wait_for(recording, 5)
        assert b.statistics().skipped_frames >= 15
        assert seconds >= elapsed - 0.15  # without the skipped 0.4 s it would be short


# --------------------------------------------------------------------------- control


async def test_hold_and_resume() -> None:
    async with raw_peers() as [peer], await MediaStream.open(LOCAL) as stream:
        stream.start(RemoteMedia(address=LOCAL, port=peer.port))
        await peer.wait_for(3)
        stream.set_direction(send=False, receive=True)
        await asyncio.sleep(0.05)
        count = len(peer.rtp())
        await asyncio.sleep(0.3)
        assert len(peer.rtp()) == count  # on hold: nothing sent
        stream.set_direction(send=True, receive=True)
        await peer.wait_for(len(peer.packets) + 3)
        assert peer.rtp()[count].marker  # the first packet after hold starts a talkspurt


async def test_update_remote_moves_the_stream() -> None:
    async with raw_peers(2) as [first, second], await MediaStream.open(LOCAL) as stream:
        stream.start(RemoteMedia(address=LOCAL, port=first.port))
        await first.wait_for(3)
        stream.update_remote(LOCAL, second.port)
        await second.wait_for(3)
        count = len(first.packets)
        await asyncio.sleep(0.1)
        assert len(first.packets) == count
        ssrcs = {p.ssrc for p in first.rtp()} | {p.ssrc for p in second.rtp()}
        assert len(ssrcs) == 1  # the same stream, moved


async def test_symmetric_rtp_answers_where_packets_come_from() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind((LOCAL, 0))
        wrong_port = unused.getsockname()[1]
    async with await MediaStream.open(LOCAL) as a, await MediaStream.open(LOCAL) as b:
        a.start(RemoteMedia(address=LOCAL, port=b.local_port))
        b.start(RemoteMedia(address=LOCAL, port=wrong_port))  # b's SDP view is wrong (NAT)
        await wait_until(lambda: a.statistics().packets_received >= 5)
        assert b.statistics().latched == (LOCAL, a.local_port)


async def test_close_sends_rtcp_bye_and_is_idempotent() -> None:
    async with raw_peers(2) as [peer, rtcp_peer], await MediaStream.open(LOCAL) as stream:
        stream.start(RemoteMedia(address=LOCAL, port=peer.port, rtcp=(LOCAL, rtcp_peer.port)))
        await peer.wait_for(2)
        await stream.close()
        await stream.close()
        await rtcp_peer.wait_for(1)
        packets = parse_compound(rtcp_peer.packets[-1][1])
        assert isinstance(packets[-1], Bye) and packets[-1].ssrcs == (stream.statistics().ssrc,)
        assert stream.closed
        with pytest.raises(LocalProtocolError):
            stream.start(RemoteMedia(address=LOCAL, port=peer.port))


async def test_rtcp_reports_give_rtt_and_bye_is_seen() -> None:
    config = MediaConfig(rtcp_interval=0.3)
    async with pair(config=config) as (a, b):
        await wait_until(lambda: a.statistics().rtt is not None and b.statistics().rtt is not None)
        stats = a.statistics()
        assert stats.rtt is not None and 0 <= stats.rtt < 0.05  # loopback
        assert stats.rtcp_received >= 1 and stats.remote_fraction_lost == 0
        await a.close()
        await wait_until(lambda: b.statistics().bye_received)


async def test_rtcp_mux_stream_binds_one_port() -> None:
    config = MediaConfig(rtcp_interval=0.2)
    async with (
        await MediaStream.open(LOCAL, rtcp_mux=True, config=config) as a,
        await MediaStream.open(LOCAL, rtcp_mux=True, config=config) as b,
    ):
        assert a.rtcp_port is None
        a.start(RemoteMedia(address=LOCAL, port=b.local_port, rtcp_mux=True))
        b.start(RemoteMedia(address=LOCAL, port=a.local_port, rtcp_mux=True))
        await wait_until(lambda: b.statistics().rtcp_received >= 1)
        assert b.statistics().malformed == 0


async def test_ipv6_loopback(tmp_path: pathlib.Path) -> None:
    if not socket.has_ipv6:
        pytest.fail("IPv6 is needed for this test")
    path = tmp_path / "v6.wav"
    async with pair("::1") as (a, b):
        recording = asyncio.create_task(b.record(path, max_seconds=1.0))
        await asyncio.wait_for(a.play_tone(1200, seconds=1.1), 5)
        await asyncio.wait_for(recording, 5)
        assert b.statistics().latched is not None
        assert b.statistics().latched[0] == "::1"  # type: ignore[index]
    assert dominant_frequency(path) == pytest.approx(1200, abs=3)


def free_port_block(size: int) -> int:
    """An even ``base`` with ``base .. base + size - 1`` all free for UDP on 127.0.0.1 now.

    Taken outside the kernel's ephemeral range (where every port-0 socket of this and
    other processes lands, so a block there can be taken at any moment) and outside the
    default RTP range (other media streams); each candidate block is checked by binding it.
    """
    try:
        text = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(v) for v in text.split())
    except OSError:
        low, high = 32768, 60999
    default = PortRange()
    regions = [
        (a, b)
        for a, b in ((high + 1, 65535), (1024, min(low, default.first) - 1))
        if b - a >= 4 * size
    ]
    assert regions, "no room for a port block outside the ephemeral and RTP ranges"
    rng = random.SystemRandom()
    for _ in range(100):
        first, last = rng.choice(regions)
        base = rng.randrange(first, last - size) & ~1
        with contextlib.ExitStack() as stack:
            try:
                for p in range(base, base + size):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind((LOCAL, p))
            except OSError:
                continue
        return base
    raise AssertionError(f"no free block of {size} UDP ports")


async def test_port_range_allocation() -> None:
    base = free_port_block(8)
    ports = PortRange(base, base + 7)  # room for 4 pairs
    async with contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(await MediaStream.open(LOCAL, port_range=ports))
            for _ in range(4)
        ]
        got = sorted(s.local_port for s in streams)
        assert got == [base, base + 2, base + 4, base + 6]
        assert all(s.rtcp_port == s.local_port + 1 for s in streams)
        with pytest.raises(OSError):
            await MediaStream.open(LOCAL, port_range=ports)
    async with await MediaStream.open(LOCAL, port=0) as any_port:
        assert any_port.local_port > 0 and any_port.rtcp_port == any_port.local_port + 1


def test_port_candidates_are_every_even_port_once_in_random_order() -> None:
    ports = PortRange(1000, 1099)
    first = list(ports.candidates(secrets.randbelow))
    assert sorted(first) == list(range(1000, 1099, 2))  # RTCP (port + 1) stays in range
    second = list(ports.candidates(secrets.randbelow))
    assert first != second  # 50! orders: equal only by a broken shuffle
    descents = sum(b < a for a, b in itertools.pairwise(first))
    assert descents > 1  # not a walk up from a random start (wrapping around once)
    assert list(PortRange(1000, 1001).candidates(secrets.randbelow)) == [1000]


async def test_a_block_of_taken_ports_does_not_exhaust_the_attempts() -> None:
    """Another program holds half of the range as one contiguous block (a media server
    allocating upwards does): every open must still find a free pair within its attempt
    budget. A walk from a random start runs out inside the block a quarter of the time."""
    pairs = 256
    base = free_port_block(2 * pairs)
    ports = PortRange(base, base + 2 * pairs - 1)
    with contextlib.ExitStack() as held:
        for p in range(base, base + pairs, 2):  # the lower half's RTP ports
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((LOCAL, p))
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(24):
                stream = await stack.enter_async_context(
                    await MediaStream.open(LOCAL, port_range=ports, attempts=64)
                )
                assert stream.local_port >= base + pairs


async def test_statistics_before_start_are_zero() -> None:
    stream = await MediaStream.open(LOCAL)
    try:
        stats = stream.statistics()
        assert stats.packets_sent == 0 and stats.rtt is None
        assert not stream.started
        with pytest.raises(LocalProtocolError):
            stream.set_direction(send=False, receive=False)
    finally:
        await stream.close()
