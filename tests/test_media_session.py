"""RtpSession (sans-IO): two sessions wired through an in-memory network, manual clock."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from array import array
from dataclasses import dataclass, field, replace

import pytest

from peers.audio import dominant_frequency, rms
from sipwire.core._errors import LocalProtocolError
from sipwire.core.offeranswer import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    MediaCapability,
    create_answer,
    create_offer,
    negotiate,
)
from sipwire.core.sdp import Direction, Origin
from sipwire.media.dtmf import TelephoneEvent
from sipwire.media.g711 import ulaw_encode
from sipwire.media.rtcp import ReceiverReport, SenderReport, parse_compound
from sipwire.media.rtp import RtpPacket
from sipwire.media.session import MediaConfig, RemoteMedia, RtpSession
from sipwire.media.tone import DTMF_FREQUENCIES, sine

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)


@dataclass
class Net:
    """Delivers datagrams after a delay, dropping some; reorders when delays vary."""

    seed: int = 1
    loss: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)
    nat: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    queue: list[tuple[float, int, tuple[str, int], tuple[str, int], bytes]] = field(
        default_factory=list
    )
    dropped: dict[tuple[str, int], int] = field(default_factory=dict)
    sent: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.counter = itertools.count()

    def send(
        self, src: tuple[str, int], dst: tuple[str, int] | None, data: bytes, now: float
    ) -> None:
        assert dst is not None
        self.sent += 1
        if self.rng.random() < self.loss:
            self.dropped[src] = self.dropped.get(src, 0) + 1
            return
        arrival = now + self.rng.uniform(*self.delay)
        heapq.heappush(self.queue, (arrival, next(self.counter), self.nat.get(src, src), dst, data))

    def due(self, now: float) -> list[tuple[tuple[str, int], tuple[str, int], bytes]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, src, dst, data = heapq.heappop(self.queue)
            out.append((src, dst, data))
        return out


class Pair:
    """Sessions a (at A) and b (at B) with a shared manual clock."""

    def __init__(
        self,
        net: Net,
        remote_a: RemoteMedia | None = None,
        remote_b: RemoteMedia | None = None,
        config: MediaConfig | None = None,
    ) -> None:
        self.net = net
        self.now = 100.0
        rng = random.Random(5)
        self.a = RtpSession(
            remote_a or RemoteMedia(address=B[0], port=B[1], dtmf_payload_type=101),
            now=self.now,
            config=config,
            randbits=rng.getrandbits,
            random=rng.random,
        )
        self.b = RtpSession(
            remote_b or RemoteMedia(address=A[0], port=A[1], dtmf_payload_type=101),
            now=self.now,
            config=config,
            randbits=rng.getrandbits,
            random=rng.random,
        )
        self.heard_a: list[bytes] = []  # what a played out
        self.heard_b: list[bytes] = []
        self.digits_a: list[str] = []
        self.digits_b: list[str] = []
        self.packets_a: list[bytes] = []  # datagrams a sent

    def _send(self, session: RtpSession, me: tuple[str, int], pcm: bytes | None) -> None:
        packets, _ = session.send_frame(pcm, self.now)
        for packet in packets:
            if session is self.a:
                self.packets_a.append(packet)
            self.net.send(me, session.rtp_destination, packet, self.now)
        if session.rtcp_due(self.now):
            rtcp_me = (me[0], me[1] + 1)
            self.net.send(
                rtcp_me, session.rtcp_destination, session.build_report(self.now), self.now
            )

    def step(self, pcm_a: bytes | None = None, pcm_b: bytes | None = None) -> None:
        self.now += 0.02
        self._send(self.a, A, pcm_a)
        self._send(self.b, B, pcm_b)
        for src, dst, data in self.net.due(self.now + 0.0199):
            for session, me, digits in ((self.a, A, self.digits_a), (self.b, B, self.digits_b)):
                if dst == me:
                    digit = session.receive_rtp(data, src, self.now)
                    if digit is not None:
                        digits.append(digit.digit)
                elif dst == (me[0], me[1] + 1):
                    session.receive_rtcp(data, src, self.now)
        self.heard_a.append(self.a.playout())
        self.heard_b.append(self.b.playout())

    def run(self, seconds: float, pcm_a: list[bytes] | None = None) -> None:
        for i in range(round(seconds / 0.02)):
            self.step(pcm_a[i] if pcm_a is not None and i < len(pcm_a) else None)


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + 320] for i in range(0, len(pcm), 320)]


def _samples(frames: list[bytes]) -> list[float]:
    return [v / 32768.0 for v in array("h", b"".join(frames))]


def test_a_tone_crosses_a_clean_network() -> None:
    pair = Pair(Net())
    pair.run(1.5, _frames(sine(1000, 1.5)))
    heard = _samples(pair.heard_b)
    assert dominant_frequency((heard, 8000), trim=0.2) == pytest.approx(1000, abs=2)
    assert rms(heard[2000:10000]) == pytest.approx(0.5 / math.sqrt(2), rel=0.05)
    stats = pair.b.statistics()
    assert stats.packets_received == 75 and stats.packets_lost == 0
    assert stats.concealed == 0 and stats.packets_late == 0
    a = pair.a.statistics()
    assert a.packets_sent == 75 and a.bytes_sent == 75 * 172


def test_loss_and_reordering_through_a_lossy_relay() -> None:
    net = Net(seed=3, loss=0.1, delay=(0.0, 0.05))
    pair = Pair(net)
    pair.run(12.0, _frames(sine(440, 12.0)))
    b = pair.b.statistics()
    a = pair.a.statistics()
    # A.3 loss counts what the relay dropped (of the packets after b's first valid one)
    assert abs(b.packets_lost - net.dropped[A]) <= 2  # RTP from a, not RTCP
    assert b.packets_received + b.packets_lost == a.packets_sent
    assert b.jitter > 0.005  # up to 50 ms of random delay
    assert b.packets_late <= 10  # the adaptive buffer grew instead
    assert b.jitter_buffer_depth >= 0.06
    # the tone survives concealment
    heard = _samples(pair.heard_b)
    assert dominant_frequency((heard, 8000), trim=0.5) == pytest.approx(440, abs=3)
    # b told a about the loss in its receiver reports (RTCP over the same lossy relay)
    assert a.rtcp_received >= 1 and a.remote_fraction_lost is not None
    assert a.remote_packets_lost is not None and a.remote_packets_lost > 0


def test_rtt_from_sender_and_receiver_reports() -> None:
    pair = Pair(Net(delay=(0.05, 0.05)))  # 50 ms each way
    pair.run(25.0, _frames(sine(300, 25.0)))
    a, b = pair.a.statistics(), pair.b.statistics()
    assert a.rtcp_sent >= 3 and b.rtcp_received >= 2
    assert a.rtt == pytest.approx(0.1, abs=0.03)
    assert b.rtt == pytest.approx(0.1, abs=0.03)


def test_reports_are_sr_when_sending_and_rr_when_not() -> None:
    pair = Pair(Net())
    pair.run(0.2)
    sr = parse_compound(pair.a.build_report(pair.now))
    assert isinstance(sr[0], SenderReport) and sr[0].packet_count == 10
    assert sr[0].reports[0].ssrc == pair.b.sender.ssrc
    assert sr[1].chunks[0].cname == pair.a.cname  # type: ignore[union-attr]
    pair.a.set_direction(send=False, receive=True)
    pair.run(0.1)
    rr = parse_compound(pair.a.build_report(pair.now))
    assert isinstance(rr[0], ReceiverReport)


def test_symmetric_rtp_latches_to_the_source_address() -> None:
    nat_b = ("203.0.113.9", 61000)
    net = Net(nat={B: nat_b})  # b's packets arrive from its NAT's public address
    pair = Pair(net)
    assert pair.a.rtp_destination == B  # the SDP address until something arrives
    pair.run(0.2)
    assert pair.a.rtp_destination == nat_b
    assert pair.a.statistics().latched == nat_b
    # a re-INVITE that moves the peer drops the latch
    pair.a.update(RemoteMedia(address="10.9.9.9", port=7000, dtmf_payload_type=101))
    assert pair.a.rtp_destination == ("10.9.9.9", 7000)
    # and latching can be turned off
    plain = RtpSession(
        RemoteMedia(address=B[0], port=B[1]), now=0.0, config=MediaConfig(symmetric_rtp=False)
    )
    packet = RtpPacket(0, 1, 1, 99, b"\xff" * 160).to_bytes()
    plain.receive_rtp(packet, nat_b, 0.0)
    plain.receive_rtp(RtpPacket(0, 2, 161, 99, b"\xff" * 160).to_bytes(), nat_b, 0.02)
    assert plain.rtp_destination == B


def test_dtmf_rfc4733_end_to_end_with_loss() -> None:
    pair = Pair(Net(seed=9, loss=0.2))
    pair.run(0.2)
    pair.a.send_dtmf("123#")
    steps = 0
    while pair.a.dtmf_busy:
        pair.step()
        steps += 1
    assert steps == 4 * (7 + 5)  # per digit: 7 event packets, then 100 ms of pause
    pair.run(0.2)
    assert "".join(pair.digits_b) == "123#"
    assert pair.b.statistics().dtmf_received == 4
    assert pair.a.statistics().dtmf_sent == 4
    event_packets = [RtpPacket.parse(p) for p in pair.packets_a if p[1] & 0x7F == 101]
    assert len(event_packets) == 4 * 7


def _power(samples: list[float], freq: float) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_dtmf_in_band_when_the_peer_has_no_telephone_event() -> None:
    pair = Pair(Net(), remote_a=RemoteMedia(address=B[0], port=B[1]))
    pair.run(0.1)
    start = len(pair.heard_b)
    pair.a.send_dtmf("5")
    while pair.a.dtmf_busy:
        pair.step()
    pair.run(0.2)
    assert pair.digits_b == []  # nothing in RFC 4733
    assert pair.a.statistics().dtmf_sent == 1
    heard = _samples(pair.heard_b[start:])
    freqs = sorted({f for pair_ in DTMF_FREQUENCIES.values() for f in pair_})
    powers = {f: _power(heard, f) for f in freqs}
    assert sorted(sorted(powers, key=powers.__getitem__)[-2:]) == [770, 1336]  # digit 5
    with pytest.raises(LocalProtocolError):
        pair.a.send_dtmf("Z")


def test_hold_stops_sending_and_resume_sets_the_marker() -> None:
    pair = Pair(Net())
    pair.run(0.1)
    sent = pair.a.statistics().packets_sent
    pair.a.set_direction(send=False, receive=True)
    pair.run(0.2)
    assert pair.a.statistics().packets_sent == sent
    pair.a.set_direction(send=True, receive=True)
    pair.run(0.02)
    resumed = RtpPacket.parse(pair.packets_a[-1])
    before = RtpPacket.parse(pair.packets_a[-2])
    assert resumed.marker and not before.marker
    assert resumed.sequence == (before.sequence + 1) & 0xFFFF
    assert (resumed.timestamp - before.timestamp) & 0xFFFFFFFF == 160 * 11  # time moved on
    # not receiving: incoming packets are ignored, playout is silence
    pair.b.set_direction(send=True, receive=False)
    received = pair.b.statistics().packets_received
    pair.run(0.2, _frames(sine(500, 0.2)))
    assert pair.b.statistics().packets_received == received
    assert set(pair.heard_b[-10:]) == {bytes(320)}


def test_no_destination_means_nothing_is_sent() -> None:
    session = RtpSession(RemoteMedia(address="0.0.0.0", port=4000), now=0.0)
    assert session.rtp_destination is None
    assert session.send_frame(None, 0.02) == ([], None)
    assert session.statistics().packets_sent == 0


def test_send_silence_off_sends_nothing_without_audio() -> None:
    session = RtpSession(
        RemoteMedia(address=B[0], port=B[1]), now=0.0, config=MediaConfig(send_silence=False)
    )
    assert session.send_frame(None, 0.02) == ([], None)
    packets, pcm = session.send_frame(sine(400, 0.02), 0.04)
    assert len(packets) == 1 and pcm is not None
    assert RtpPacket.parse(packets[0]).marker


def test_codec_update_and_receive_map() -> None:
    pair = Pair(Net())
    pair.run(0.1)
    pair.a.update(RemoteMedia(address=B[0], port=B[1], payload_type=8, codec="PCMA"))
    pair.b.update(RemoteMedia(address=A[0], port=A[1], receive_codecs=((0, "PCMU"), (8, "PCMA"))))
    pair.run(1.0, _frames(sine(800, 1.0)))
    assert RtpPacket.parse(pair.packets_a[-1]).payload_type == 8
    assert dominant_frequency((_samples(pair.heard_b[-40:]), 8000), trim=0) == pytest.approx(
        800, abs=3
    )
    assert pair.b.statistics().unknown_payload == 0
    with pytest.raises(LocalProtocolError):
        RemoteMedia(address="x", port=1, codec="G722")


def test_unknown_payload_types_and_malformed_packets_are_counted() -> None:
    session = RtpSession(RemoteMedia(address=B[0], port=B[1]), now=0.0)
    for seq in range(5):
        session.receive_rtp(RtpPacket(96, seq, seq * 160, 4).to_bytes(), B, seq * 0.02)
    session.receive_rtp(b"\x80", B, 0.2)
    session.receive_rtcp(b"\x80\xc9\x00\x09", B, 0.2)
    stats = session.statistics()
    assert stats.unknown_payload == 4  # the first was the probation packet
    assert stats.malformed == 2


def test_the_probation_packet_is_not_lost() -> None:
    session = RtpSession(
        RemoteMedia(address=B[0], port=B[1]), now=0.0, config=MediaConfig(jitter_depth=0.02)
    )
    first = sine(1000, 0.02)
    session.receive_rtp(RtpPacket(0, 10, 0, 4, ulaw_encode(first)).to_bytes(), B, 0.0)
    session.receive_rtp(RtpPacket(0, 11, 160, 4, b"\xff" * 160).to_bytes(), B, 0.02)
    out = session.playout()
    assert out != bytes(320) and rms(_samples([out])) > 0.3


def test_a_new_ssrc_takes_over_when_the_old_one_stops() -> None:
    pair = Pair(Net())
    pair.run(0.5, _frames(sine(600, 0.5)))
    first = pair.b.statistics().remote_ssrc
    # the peer restarts its stream (new SSRC, new sequence numbers)
    rng = random.Random(77)
    pair.a = RtpSession(
        RemoteMedia(address=B[0], port=B[1]), now=pair.now, randbits=rng.getrandbits
    )
    pair.run(1.0, _frames(sine(900, 1.0)))
    assert pair.b.statistics().remote_ssrc == pair.a.sender.ssrc != first
    assert dominant_frequency((_samples(pair.heard_b[-30:]), 8000), trim=0) == pytest.approx(
        900, abs=3
    )


def test_bye_is_noticed() -> None:
    pair = Pair(Net())
    pair.run(0.2)
    bye = pair.a.build_bye(pair.now, "bye now")
    pair.b.receive_rtcp(bye, (A[0], A[1] + 1), pair.now)
    assert pair.b.statistics().bye_received
    packets = parse_compound(bye)
    assert packets[-1].reason == "bye now"  # type: ignore[union-attr]


def test_rtcp_mux_sends_rtcp_to_the_rtp_port_and_demultiplexes() -> None:
    remote = RemoteMedia(address=B[0], port=B[1], rtcp_mux=True)
    session = RtpSession(remote, now=0.0)
    assert session.rtcp_destination == B
    other = RtpSession(RemoteMedia(address=A[0], port=A[1], rtcp_mux=True), now=0.0)
    other.receive(session.build_report(1.0), A, 1.0)
    assert other.statistics().rtcp_received == 1
    assert RemoteMedia(address=B[0], port=B[1]).rtcp_address == (B[0], B[1] + 1)
    assert RemoteMedia(address=B[0], port=B[1], rtcp=("10.1.1.1", 9)).rtcp_address == (
        "10.1.1.1",
        9,
    )


def test_from_negotiated_offer_answer() -> None:
    offer = create_offer(
        [MediaCapability(media="audio", port=4000, codecs=(PCMU, PCMA, TELEPHONE_EVENT))],
        origin=Origin(session_id="1", session_version=1, address="10.0.0.1"),
        address="10.0.0.1",
    )
    answer = create_answer(
        offer,
        [
            MediaCapability(
                media="audio", port=5000, codecs=(PCMA, replace(TELEPHONE_EVENT, payload_type=None))
            )
        ],
        origin=Origin(session_id="2", session_version=1, address="10.0.0.2"),
        address="10.0.0.2",
    )
    (ours,) = negotiate(offer, answer)
    remote = RemoteMedia.from_negotiated(ours)
    assert (remote.address, remote.port, remote.codec.upper(), remote.payload_type) == (
        "10.0.0.2",
        5000,
        "PCMA",
        8,
    )
    assert remote.dtmf_payload_type == 101 and remote.receive_dtmf_payload_type == 101
    assert dict(remote.receive_codecs) == {8: "PCMA"}
    assert remote.send and remote.receive
    assert remote.rtcp_address == ("10.0.0.2", 5001)
    held = replace(ours, remote_direction=Direction.RECVONLY, local_direction=Direction.SENDONLY)
    on_hold = RemoteMedia.from_negotiated(held)
    assert on_hold.send and not on_hold.receive


def test_dtmf_from_a_separate_ssrc_is_reported_once() -> None:
    session = RtpSession(RemoteMedia(address=B[0], port=B[1], dtmf_payload_type=101), now=0.0)
    for seq in range(5):  # audio from SSRC 1
        session.receive_rtp(
            RtpPacket(0, seq, seq * 160, 1, b"\xff" * 160).to_bytes(), B, seq * 0.02
        )
    digits = []
    for i in range(6):  # a gateway sends its events with SSRC 2
        payload = TelephoneEvent(5, end=i >= 3, duration=160 * min(i + 1, 4)).to_bytes()
        packet = RtpPacket(101, 900 + i, 7777, 2, payload, marker=i == 0)
        digit = session.receive_rtp(packet.to_bytes(), B, 0.1 + i * 0.02)
        if digit is not None:
            digits.append(digit.digit)
    assert digits == ["5"]
    assert session.statistics().remote_ssrc == 1  # the audio source stays current


def test_hold_with_a_null_address_stops_sending_even_when_latched() -> None:
    pair = Pair(Net(nat={B: ("203.0.113.9", 61000)}))
    pair.run(0.1)
    session: RtpSession = pair.a
    assert session.statistics().latched == ("203.0.113.9", 61000)
    session.update(RemoteMedia(address="0.0.0.0", port=B[1], dtmf_payload_type=101))
    assert (session.rtp_destination, session.rtcp_destination) == (None, None)
    sent = pair.a.statistics().packets_sent
    pair.run(0.1)
    assert pair.a.statistics().packets_sent == sent
