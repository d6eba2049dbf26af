"""RTP packets, sender numbering and receiver statistics (RFC 3550 §5, §A.1, §A.3, §A.8)."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.media.rtp import (
    RtpExtension,
    RtpPacket,
    RtpReceiver,
    RtpSender,
    RtpSource,
    is_rtcp,
)

u32 = st.integers(0, 0xFFFFFFFF)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = packet.to_bytes()
    assert RtpPacket.parse(data) == packet
    assert bytes(packet) == data


@given(st.binary(max_size=80))
def test_parse_never_raises_anything_but_remote_protocol_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RemoteProtocolError:
        return
    assert packet.to_bytes() == data  # what parses re-encodes to the same octets


def test_fixed_header_fields_on_the_wire() -> None:
    packet = RtpPacket(0, 0x1234, 0x01020304, 0xCAFEBABE, b"\xff" * 160, marker=True)
    data = packet.to_bytes()
    assert data[:12] == bytes.fromhex("80 80 1234 01020304 cafebabe")
    assert len(data) == 172
    parsed = RtpPacket.parse(bytes.fromhex("80 08 0001 00000002 00000003") + b"\xd5")
    assert (parsed.payload_type, parsed.marker, parsed.sequence) == (8, False, 1)
    assert (parsed.timestamp, parsed.ssrc, parsed.payload) == (2, 3, b"\xd5")


def test_csrc_extension_and_padding_are_decoded() -> None:
    data = (
        bytes([0x80 | 0x20 | 0x10 | 2, 0])
        + struct.pack("!HII", 7, 8, 9)
        + struct.pack("!II", 100, 200)  # two CSRCs
        + struct.pack("!HH", 0xBEDE, 1)
        + b"abcd"  # one extension word
        + b"payload"
        + b"\x00\x00\x03"  # three padding octets
    )
    packet = RtpPacket.parse(data)
    assert packet.csrcs == (100, 200)
    assert packet.extension == RtpExtension(0xBEDE, b"abcd")
    assert packet.payload == b"payload"
    assert packet.padding == 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00\x00", "too short"),
        (bytes.fromhex("40 00 0001 00000002 00000003"), "version 1"),
        (bytes.fromhex("c0 00 0001 00000002 00000003"), "version 3"),
        (bytes.fromhex("83 00 0001 00000002 00000003 00000001"), "CSRC"),
        (bytes.fromhex("90 00 0001 00000002 00000003 0000"), "extension"),
        (bytes.fromhex("90 00 0001 00000002 00000003 00000002 00000000"), "extension"),
        (bytes.fromhex("a0 00 0001 00000002 00000003 aa00"), "padding"),
        (bytes.fromhex("a0 00 0001 00000002 00000003 aa09"), "padding"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_packets_raise_remote_protocol_error(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        RtpPacket.parse(data)


def test_receiver_counts_malformed_datagrams() -> None:
    receiver = RtpReceiver()
    assert receiver.parse(b"junk") is None
    assert receiver.parse(b"\x00" * 20) is None
    assert receiver.malformed == 2
    assert receiver.parse(RtpPacket(0, 1, 2, 3).to_bytes()) is not None
    assert receiver.malformed == 2


def test_is_rtcp_demultiplexes_per_rfc_5761() -> None:
    assert is_rtcp(bytes([0x80, 200]))
    assert is_rtcp(bytes([0x81, 201, 0, 7]))
    assert not is_rtcp(RtpPacket(0, 1, 2, 3, marker=True).to_bytes())
    assert not is_rtcp(RtpPacket(101, 1, 2, 3, marker=True).to_bytes())  # 0x80|101 = 229
    assert not is_rtcp(b"\x80")


def test_invalid_field_values_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(LocalProtocolError):
        RtpPacket(0, 70000, 0, 0)
    with pytest.raises(LocalProtocolError):
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16)))
    with pytest.raises(LocalProtocolError):
        RtpExtension(1, b"abc")


# --------------------------------------------------------------------------- sender


def _bits(values: list[int]) -> object:
    it = iter(values)
    return lambda bits: next(it) & ((1 << bits) - 1)


def test_sender_uses_injected_randomness_and_advances_by_samples() -> None:
    sender = RtpSender(payload_type=0, randbits=_bits([0xDEADBEEF, 0xFFFE, 0xFFFFFF00]))  # type: ignore[arg-type]
    assert sender.ssrc == 0xDEADBEEF
    first = RtpPacket.parse(sender.audio(b"\xff" * 160, 160))
    second = RtpPacket.parse(sender.audio(b"\xff" * 160, 160))
    third = RtpPacket.parse(sender.audio(b"\xff" * 160, 160))
    assert [p.sequence for p in (first, second, third)] == [0xFFFE, 0xFFFF, 0]  # wraps
    assert [p.timestamp for p in (first, second, third)] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert [p.marker for p in (first, second, third)] == [True, False, False]
    assert {p.ssrc for p in (first, second, third)} == {0xDEADBEEF}
    assert (sender.packets_sent, sender.octets_sent) == (3, 480)


def test_marker_starts_each_talkspurt_and_events_keep_the_audio_clock() -> None:
    sender = RtpSender(payload_type=8, randbits=_bits([1, 100, 1000]))  # type: ignore[arg-type]
    assert RtpPacket.parse(sender.audio(b"x", 160)).marker
    sender.advance(480)  # silence, not sent
    sender.start_talkspurt()
    resumed = RtpPacket.parse(sender.audio(b"x", 160))
    assert resumed.marker
    assert resumed.timestamp == 1000 + 160 + 480
    assert resumed.sequence == 101  # no sequence gap for unsent silence
    event = RtpPacket.parse(sender.event(b"ev", payload_type=101, timestamp=5, marker=True))
    assert (event.payload_type, event.timestamp, event.marker, event.sequence) == (
        101,
        5,
        True,
        102,
    )
    assert sender.timestamp == 1000 + 160 + 480 + 160  # events do not move the audio clock


def test_default_randomness_differs_between_senders() -> None:
    a, b = RtpSender(payload_type=0), RtpSender(payload_type=0)
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)


# --------------------------------------------------------------------------- receiver


def _feed(receiver: RtpReceiver, seqs: list[int], ssrc: int = 7, start: float = 0.0) -> list[bool]:
    out = []
    for i, seq in enumerate(seqs):
        packet = RtpPacket(0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
        out.append(receiver.receive(packet, start + i * 0.02) is not None)
    return out


def test_probation_needs_two_packets_in_sequence() -> None:
    receiver = RtpReceiver()
    assert _feed(receiver, [10, 11, 12]) == [False, True, True]
    receiver = RtpReceiver()
    assert _feed(receiver, [10, 20, 21, 22]) == [False, False, True, True]
    receiver = RtpReceiver(min_sequential=1)
    assert _feed(receiver, [10, 11]) == [True, True]


def test_probation_across_the_wrap() -> None:
    receiver = RtpReceiver()
    assert _feed(receiver, [0xFFFF, 0x10000, 0x10001]) == [False, True, True]


def test_sequence_wrap_counts_cycles_and_loss() -> None:
    receiver = RtpReceiver()
    seqs = [*range(65530, 65536), 0, 1, 3, 4]  # 2 is lost after the wrap
    assert all(_feed(receiver, seqs)[1:])
    source = receiver.sources[7]
    assert source.cycles == 65536
    assert source.extended_max_seq == 65536 + 4
    assert source.expected == 10  # from the first valid packet, 65531
    assert source.received == 9 - 0  # 65531..65535, 0, 1, 3, 4
    assert source.lost == 1


def test_reordered_and_duplicate_packets_are_valid_and_counted() -> None:
    receiver = RtpReceiver()
    assert all(_feed(receiver, [1, 2, 4, 3, 3, 5])[1:])
    source = receiver.sources[7]
    assert source.expected == 4  # 2..5 (1 was the probation packet)
    assert source.received == 5  # 2, 4, 3, 3, 5
    assert source.lost == -1  # duplicates make loss negative (§6.4.1)


def test_big_jump_needs_two_sequential_packets_to_resync() -> None:
    receiver = RtpReceiver()
    assert _feed(receiver, [100, 101, 102, 20000, 20001, 20002]) == [
        False, True, True, False, True, True,
    ]  # fmt: skip
    source = receiver.sources[7]
    assert source.base_seq == 20001 and source.received == 2  # statistics restarted


def test_fraction_lost_per_interval() -> None:
    source = RtpSource(1, 0, min_sequential=1)
    for seq in range(100):
        if seq % 4 != 1:  # lose every fourth packet
            source.update_seq(seq)
    assert source.fraction_lost() == 64  # 25 % in 1/256 units
    for seq in range(100, 200):
        source.update_seq(seq)
    assert source.fraction_lost() == 0
    assert source.lost == 25


def test_jitter_is_zero_for_perfect_pacing_and_grows_with_jitter() -> None:
    receiver = RtpReceiver(min_sequential=1)
    for i in range(100):
        receiver.receive(RtpPacket(0, i, 1000 + 160 * i, 9), 50.0 + 0.02 * i)
    assert receiver.sources[9].jitter == pytest.approx(0.0, abs=1.01)
    rng = random.Random(4)
    receiver = RtpReceiver(min_sequential=1)
    for i in range(2000):
        arrival = 50.0 + 0.02 * i + rng.uniform(0, 0.01)  # 0..10 ms uniform delay
        receiver.receive(RtpPacket(0, i & 0xFFFF, 1000 + 160 * i, 9), arrival)
    # E|D| for the difference of two U(0, 10 ms) delays is 10/3 ms = 26.7 samples
    assert 20 < receiver.sources[9].jitter < 34
    assert receiver.sources[9].jitter_seconds == pytest.approx(receiver.sources[9].jitter / 8000)


def test_jitter_handles_timestamp_wrap() -> None:
    receiver = RtpReceiver(min_sequential=1)
    for i in range(50):
        receiver.receive(RtpPacket(0, i, (0xFFFFF000 + 160 * i) & 0xFFFFFFFF, 9), 3.0 + 0.02 * i)
    assert receiver.sources[9].jitter < 2


def test_sources_are_bounded() -> None:
    receiver = RtpReceiver(max_sources=3)
    for ssrc, t in zip(range(10), itertools.count(), strict=False):
        receiver.receive(RtpPacket(0, 1, 1, ssrc), float(t))
    assert sorted(receiver.sources) == [7, 8, 9]
