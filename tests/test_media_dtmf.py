"""RFC 4733 telephone events: payload, sender schedule, receiver de-duplication."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.offeranswer import TELEPHONE_EVENT
from sipwire.media.dtmf import (
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_of,
    event_of,
)


@given(
    st.builds(
        TelephoneEvent,
        event=st.integers(0, 255),
        end=st.booleans(),
        volume=st.integers(0, 63),
        duration=st.integers(0, 0xFFFF),
    )
)
def test_payload_round_trip(event: TelephoneEvent) -> None:
    assert TelephoneEvent.parse(event.to_bytes()) == event


def test_payload_layout() -> None:
    assert TelephoneEvent(11, True, 10, 800).to_bytes() == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.parse(bytes([5, 0x3F, 0, 160])) == TelephoneEvent(5, False, 63, 160)
    with pytest.raises(RemoteProtocolError):
        TelephoneEvent.parse(b"\x01\x02")


def test_digit_codes() -> None:
    assert [event_of(d) for d in "0123456789*#ABCDa!"] == [*range(16), 12, 16]
    assert digit_of(11) == "#" and digit_of(16) == "!" and digit_of(40) is None
    with pytest.raises(LocalProtocolError):
        event_of("x")
    assert TELEPHONE_EVENT.fmtp == "0-16"  # what the SDP advertises


def _run(
    sender: DtmfSender, start_ts: int = 1000, frames: int = 60
) -> list[tuple[int, int, bool, TelephoneEvent]]:
    """Tick the sender like the 20 ms clock does; (frame index, ts, marker, event)."""
    out = []
    ts = start_ts
    for i in range(frames):
        result = sender.tick(ts)
        if result is not None:
            payload, event_ts, marker = result
            out.append((i, event_ts, marker, TelephoneEvent.parse(payload)))
        ts += 160
    return out


def test_sender_schedule_for_one_digit() -> None:
    sender = DtmfSender(duration=0.1)
    sender.send("5")
    assert sender.busy
    packets = _run(sender)
    assert [p[0] for p in packets] == list(range(7))  # 5 frames of tone + 2 more end packets
    assert {p[1] for p in packets} == {1000}  # one timestamp for the whole event
    assert [p[2] for p in packets] == [True] + [False] * 6  # marker on the first only
    assert [p[3].duration for p in packets] == [160, 320, 480, 640, 800, 800, 800]
    assert [p[3].end for p in packets] == [False] * 4 + [True] * 3
    assert {p[3].event for p in packets} == {5}
    assert {p[3].volume for p in packets} == {10}
    assert not sender.busy


def test_sender_pauses_between_digits_and_uses_new_timestamps() -> None:
    sender = DtmfSender(duration=0.06, pause=0.04)
    sender.send("1#")
    packets = _run(sender)
    starts = [p for p in packets if p[2]]
    assert [p[3].event for p in starts] == [1, 11]
    first, second = starts
    assert [p[0] for p in packets] == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]  # 2 frames of audio between
    assert second[1] == 1000 + 7 * 160  # the second event starts at its own audio time
    assert first[1] == 1000


def test_sender_validation_and_bounds() -> None:
    sender = DtmfSender(max_queued=3)
    with pytest.raises(LocalProtocolError):
        sender.send("12x")
    assert not sender.busy  # nothing queued on error
    sender.send("123")
    with pytest.raises(LocalProtocolError):
        sender.send("4")
    sender.clear()
    assert not sender.busy
    with pytest.raises(LocalProtocolError):
        DtmfSender().send("1", duration=9.0)  # longer than one 16-bit duration


def test_receiver_reports_each_digit_once_despite_end_repeats() -> None:
    sender = DtmfSender()
    sender.send("123#")
    receiver = DtmfReceiver()
    digits = []
    for _, ts, marker, event in _run(sender, frames=100):
        digit = receiver.receive(event.to_bytes(), ts, ssrc=1, marker=marker)
        if digit is not None:
            digits.append(digit.digit)
    assert "".join(digits) == "123#"


@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.7))
def test_receiver_survives_loss_and_reordering(seed: int, loss: float) -> None:
    rng = random.Random(seed)
    sender = DtmfSender()
    sender.send("159D")
    packets = _run(sender, frames=120)
    kept = [p for p in packets if rng.random() >= loss]
    # local reordering: swap some neighbours
    for i in range(len(kept) - 1):
        if rng.random() < 0.2:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    receiver = DtmfReceiver()
    got = []
    for _, ts, marker, event in kept:
        digit = receiver.receive(event.to_bytes(), ts, ssrc=3, marker=marker)
        if digit is not None:
            got.append((ts, digit.digit))
    survivors = {ts: event.event for _, ts, _, event in kept}
    # every event with at least one surviving packet is reported exactly once
    assert sorted(got) == sorted((ts, "0123456789*#ABCD!"[e]) for ts, e in survivors.items())


def test_receiver_separates_sources_and_ignores_non_dtmf_events() -> None:
    receiver = DtmfReceiver()
    payload = TelephoneEvent(7).to_bytes()
    assert receiver.receive(payload, 100, ssrc=1) is not None
    assert receiver.receive(payload, 100, ssrc=2) is not None  # same ts, other source
    assert receiver.receive(payload, 100, ssrc=1) is None
    assert receiver.receive(TelephoneEvent(40).to_bytes(), 500, ssrc=1) is None  # not DTMF
    digit = receiver.receive(TelephoneEvent(11, duration=480).to_bytes(), 900, ssrc=1)
    assert digit is not None
    assert (digit.digit, digit.event, digit.timestamp, digit.ssrc, digit.duration) == (
        "#", 11, 900, 1, 480,
    )  # fmt: skip


def test_long_event_segments_are_one_digit() -> None:
    receiver = DtmfReceiver()
    start = 0xFFFF0000
    first = TelephoneEvent(1, False, 10, 0xFFFF).to_bytes()
    assert receiver.receive(first, start, marker=True) is not None
    segment = TelephoneEvent(1, False, 10, 800).to_bytes()
    assert receiver.receive(segment, (start + 0xFFFF) & 0xFFFFFFFF) is None  # wraps, no M bit
    # a different digit at a later time is new, even without the marker (start lost)
    assert receiver.receive(TelephoneEvent(2).to_bytes(), 5_000_000) is not None


def test_receiver_memory_is_bounded() -> None:
    receiver = DtmfReceiver(memory=4)
    for ts in range(0, 20 * 1000, 1000):
        receiver.receive(TelephoneEvent(1).to_bytes(), ts, ssrc=ts)
    assert len(receiver._seen) <= 4 and len(receiver._last) <= 5
