"""RTCP packets, compound packets, RTT and the report interval (RFC 3550 §6)."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpScheduler,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_compound,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    round_trip_time,
)

u32 = st.integers(0, 0xFFFFFFFF)
texts = st.text(max_size=60).filter(lambda t: len(t.encode()) <= 255)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
block_lists = st.lists(blocks, max_size=31).map(tuple)
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, (1 << 64) - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=block_lists,
    ),
    st.builds(ReceiverReport, ssrc=u32, reports=block_lists),
    st.builds(
        SourceDescription,
        chunks=st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(st.tuples(st.integers(1, 8), texts), max_size=4).map(tuple),
            ),
            max_size=5,
        ).map(tuple),
    ),
    st.builds(Bye, ssrcs=st.lists(u32, max_size=31).map(tuple), reason=st.none() | texts),
    st.builds(
        UnknownRtcp,
        packet_type=st.integers(204, 210),
        count=st.integers(0, 31),
        body=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_compound_round_trip(packets: list[RtcpPacket]) -> None:
    data = build_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets


@given(st.binary(max_size=120))
def test_parse_never_raises_anything_but_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_compound(data)


def test_sender_report_layout() -> None:
    block = ReportBlock(0x11111111, 64, -2, 0x10005, 33, 0xAABBCCDD, 0x00010000)
    sr = SenderReport(0x22222222, 0x0102030405060708, 160, 10, 1600, (block,))
    data = sr.to_bytes()
    assert data[:4] == bytes([0x81, 200, 0, 12])  # RC=1, PT=SR, length 13 words - 1
    assert struct.unpack_from("!IIIIII", data, 4) == (
        0x22222222, 0x01020304, 0x05060708, 160, 10, 1600,
    )  # fmt: skip
    assert data[28:32] == bytes.fromhex("11111111")
    assert data[32:36] == bytes([64, 0xFF, 0xFF, 0xFE])  # fraction, then -2 in 24 bits
    assert parse_compound(data) == [sr]


def test_sdes_and_bye_padding() -> None:
    sdes = SourceDescription((SdesChunk(5, ((1, "ab@c"),)),))
    data = sdes.to_bytes()
    # ssrc(4) + type,len,"ab@c"(6) + null and pad to 12 octets of chunk
    assert data == bytes([0x81, 202, 0, 3]) + bytes.fromhex("00000005") + b"\x01\x04ab@c\x00\x00"
    assert parse_compound(data)[0] == sdes
    assert sdes.chunks[0].cname == "ab@c"
    bye = Bye((5, 6), "done")
    data = bye.to_bytes()
    assert data[:4] == bytes([0x82, 203, 0, 4])
    assert data[12:] == b"\x04done\x00\x00\x00"
    assert parse_compound(data) == [bye]


def test_real_compound_rr_sdes_is_parsed() -> None:
    rr = ReceiverReport(0xAABBCCDD, (ReportBlock(1, fraction_lost=3, cumulative_lost=7),))
    sdes = SourceDescription((SdesChunk(0xAABBCCDD, ((1, "user@host"), (6, "baresip"))),))
    packets = parse_compound(rr.to_bytes() + sdes.to_bytes())
    assert packets == [rr, sdes]
    chunk = packets[1]
    assert isinstance(chunk, SourceDescription) and chunk.chunks[0].cname == "user@host"


def test_padding_on_the_last_packet_only() -> None:
    rr = ReceiverReport(1).to_bytes()
    padded_bye = bytes([0xA1, 203, 0, 2]) + struct.pack("!I", 9) + b"\x00\x00\x00\x04"
    assert parse_compound(rr + padded_bye) == [ReceiverReport(1), Bye((9,))]
    padded_rr = bytes([0xA0, 201, 0, 2]) + struct.pack("!I", 1) + b"\x00\x00\x00\x04"
    with pytest.raises(RemoteProtocolError, match="padding before the last"):
        parse_compound(padded_rr + Bye((9,)).to_bytes())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\xc9\x00", "multiple of 4"),
        (bytes([0x40, 201, 0, 1]) + bytes(4), "version"),
        (bytes([0x80, 201, 0, 5]) + bytes(4), "length runs past"),
        (bytes([0x81, 201, 0, 1]) + bytes(4), "report blocks"),
        (bytes([0x80, 200, 0, 1]) + bytes(4), "SR too short"),
        (bytes([0x81, 202, 0, 2]) + bytes.fromhex("00000001 01050000"), "SDES item"),
        (bytes([0x81, 202, 0, 1]) + bytes.fromhex("00000001"), "not terminated"),
        (bytes([0x82, 203, 0, 1]) + bytes(4), "BYE source list"),
        (bytes([0x81, 203, 0, 2]) + bytes.fromhex("00000001 09616263"), "BYE reason"),
        ((bytes([0x80, 204, 0, 0]) * 33), "too many"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_compound_packets(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        parse_compound(data)


def test_value_checks() -> None:
    with pytest.raises(LocalProtocolError):
        ReportBlock(1, fraction_lost=256)
    with pytest.raises(LocalProtocolError):
        ReportBlock(1, cumulative_lost=0x800000)
    with pytest.raises(LocalProtocolError):
        ReceiverReport(1, tuple(ReportBlock(i) for i in range(32)))
    with pytest.raises(LocalProtocolError):
        SdesChunk(1, ((1, "x" * 256),))
    with pytest.raises(LocalProtocolError):
        UnknownRtcp(204, 0, b"abc")


def test_ntp_and_round_trip_time() -> None:
    unix = 1_700_000_000.25
    ntp = ntp_timestamp(unix)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert ntp & 0xFFFFFFFF == 1 << 30  # 0.25 s
    # we sent an SR at t=100.0; the peer held it 0.5 s and answered; it arrives at 100.8
    lsr = ntp_middle(ntp_timestamp(100.0))
    block = ReportBlock(1, lsr=lsr, dlsr=int(0.5 * 65536))
    assert round_trip_time(block, ntp_timestamp(100.8)) == pytest.approx(0.3, abs=1e-4)
    assert round_trip_time(ReportBlock(1, lsr=0), ntp_timestamp(100.8)) is None
    # a report that claims more delay than elapsed: negative, ignored
    late = ReportBlock(1, lsr=lsr, dlsr=int(2.0 * 65536))
    assert round_trip_time(late, ntp_timestamp(100.8)) is None


def test_scheduler_interval_is_randomized_around_five_seconds() -> None:
    rng = random.Random(7)
    scheduler = RtcpScheduler(0.0, random=rng.random)
    first = scheduler.next_time
    assert 1.25 <= first <= 3.75  # half of 0.5..1.5 x 5 s
    assert not scheduler.due(first - 0.001)
    assert scheduler.due(first)
    gaps = []
    now = first
    for _ in range(500):
        following = scheduler.sent(now)
        gaps.append(following - now)
        now = following
    assert min(gaps) >= 2.5 and max(gaps) <= 7.5
    assert 4.7 < sum(gaps) / len(gaps) < 5.3
    assert max(gaps) - min(gaps) > 4  # really randomized
