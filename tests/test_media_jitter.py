"""The jitter buffer: reordering, late packets, concealment, bounds, adaptation."""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError
from sipwire.media.jitter import JitterBuffer, attenuate

_SIGNATURE = bytes.fromhex("3412") * 159  # 0x1234 in every other sample


def frame(n: int) -> bytes:
    """A recognisable 20 ms frame: sample 0 is n, the rest a fixed signature."""
    return (n % 32768).to_bytes(2, "little") + _SIGNATURE


def ident(pcm: bytes | None) -> int | None:
    """Which frame this is (None: silence or a concealment frame)."""
    if pcm is None or pcm[2:] != _SIGNATURE:
        return None
    return int.from_bytes(pcm[:2], "little")


def test_in_order_stream_starts_after_depth_and_plays_in_order() -> None:
    jb = JitterBuffer(depth=3, adaptive=False)
    out = []
    for seq in range(100, 120):
        jb.push(seq, frame(seq))
        out.append(ident(jb.pop()))
    assert out[:2] == [None, None]  # buffering 3 frames
    assert out[2:] == list(range(100, 118))
    assert jb.statistics().concealed == 0 and jb.statistics().late == 0


def test_reordering_within_the_depth_is_repaired() -> None:
    jb = JitterBuffer(depth=3, adaptive=False)
    order = [0, 2, 1, 3, 5, 4, 7, 6, 8, 9, 11, 10, 12, 13, 14, 15]
    out = []
    for seq in order:
        jb.push(seq, frame(seq))
        out.append(ident(jb.pop()))
    played = [n for n in out if n is not None]
    assert played == list(range(len(played)))
    assert len(played) >= 12
    assert jb.late == 0 and jb.concealed == 0


def test_loss_is_concealed_by_attenuated_repetition_then_silence() -> None:
    jb = JitterBuffer(depth=1, adaptive=False, max_conceal=3)
    jb.push(0, frame(1000))
    assert ident(jb.pop()) == 1000
    # seq 1 and 2 are lost; 3 is there
    jb.push(3, frame(1003))
    first = jb.pop()
    second = jb.pop()
    assert first == attenuate(frame(1000), 1)  # -6 dB
    assert second == attenuate(frame(1000), 2)  # -12 dB
    assert first[:2] == (500).to_bytes(2, "little")
    assert ident(jb.pop()) == 1003
    assert jb.concealed == 2
    # a long gap with nothing buffered: concealment, then silence, then pause
    silent = [jb.pop() for _ in range(5)]
    assert silent[0] == attenuate(frame(1003), 1)
    assert silent[3:] == [None, None]
    assert not jb.playing


def test_silence_concealment_mode() -> None:
    jb = JitterBuffer(depth=1, adaptive=False, conceal="silence")
    jb.push(0, frame(5))
    jb.pop()
    jb.push(2, frame(7))
    assert jb.pop() is None  # seq 1 missing: silence
    assert ident(jb.pop()) == 7


def test_late_packets_are_dropped_and_grow_an_adaptive_buffer() -> None:
    jb = JitterBuffer(depth=2, max_depth=4)
    jb.push(0, frame(0))
    jb.push(1, frame(1))
    jb.push(3, frame(3))
    assert [ident(jb.pop()) for _ in range(3)] == [0, 1, None]  # 2 concealed
    assert jb.push(2, frame(2)) is False  # its turn has passed
    assert jb.late == 1
    assert jb.depth == 3  # one packet deeper
    assert jb.pop() is not None and jb.concealed == 2  # held one interval to make room
    assert ident(jb.pop()) == 3


def test_adaptive_depth_shrinks_back_after_a_quiet_period() -> None:
    jb = JitterBuffer(depth=2, max_depth=5, shrink_after=50)
    jb.push(0, frame(0))
    jb.push(1, frame(1))
    jb.push(3, frame(3))
    jb.pop()
    jb.pop()
    jb.pop()  # 2 is missing: concealed
    jb.push(2, frame(2))  # late: depth 3
    jb.push(1, frame(1))  # duplicate of a played frame: not "late"
    assert (jb.depth, jb.late, jb.duplicates) == (3, 1, 1)
    for seq in range(4, 200):
        jb.push(seq, frame(seq))
        jb.pop()
    assert jb.depth == 2  # back to min_depth


def test_duplicates_are_dropped() -> None:
    jb = JitterBuffer(depth=2, adaptive=False)
    assert jb.push(5, frame(5))
    assert not jb.push(5, frame(5))
    assert jb.duplicates == 1


def test_size_is_bounded() -> None:
    jb = JitterBuffer(depth=3, capacity=20, max_depth=10)
    for seq in range(100):
        jb.push(seq, frame(seq))
    assert jb.level == 20
    assert jb.overflow == 80
    assert ident(jb.pop()) == 80  # the newest 20 are kept


def test_sequence_wrap_inside_the_buffer() -> None:
    jb = JitterBuffer(depth=3, adaptive=False)
    seqs = [(65530 + i) & 0xFFFF for i in range(12)]
    out = []
    for i, seq in enumerate(seqs):
        jb.push(seq, frame(i))
        out.append(ident(jb.pop()))
    assert out[2:] == list(range(10))


def test_sender_pause_then_resume_plays_on_without_late_packets() -> None:
    jb = JitterBuffer(depth=2, adaptive=False, max_conceal=3)
    for seq in range(10):
        jb.push(seq, frame(seq))
        jb.pop()
    for _ in range(50):  # the sender pauses (silence suppression) for a second
        jb.pop()
    assert not jb.playing
    out = []
    for seq in range(10, 20):  # and resumes with the next sequence numbers
        jb.push(seq, frame(seq))
        out.append(ident(jb.pop()))
    assert jb.late == 0
    assert out == [None, *range(10, 19)]  # buffers up to the depth again, then plays on


def test_a_restarted_sequence_resynchronizes() -> None:
    jb = JitterBuffer(depth=2, adaptive=False)
    for seq in range(1000, 1010):
        jb.push(seq, frame(seq))
        jb.pop()
    jb.push(40000, frame(4))
    jb.push(40001, frame(5))
    assert jb.resyncs == 1
    assert [ident(jb.pop()) for _ in range(2)] == [4, 5]


def test_a_standing_excess_delay_is_trimmed() -> None:
    jb = JitterBuffer(depth=2, adaptive=False, trim_window=10)
    for seq in range(8):  # a burst: 8 frames at once
        jb.push(seq, frame(seq))
    out = []
    for seq in range(8, 60):  # then one per interval: 8 frames of delay would stay
        jb.push(seq, frame(seq))
        out.append(ident(jb.pop()))
    assert jb.trimmed >= 4
    assert jb.level <= 4
    assert [n for n in out if n is not None] == sorted(n for n in out if n is not None)


def test_parameters_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        JitterBuffer(depth=0)
    with pytest.raises(LocalProtocolError):
        JitterBuffer(depth=5, max_depth=4)
    with pytest.raises(LocalProtocolError):
        JitterBuffer(conceal="noise")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lossy relay


def _relay(
    seed: int, loss: float, max_delay: float, count: int, jb: JitterBuffer
) -> tuple[list[int | None], set[int]]:
    """Packets sent every 20 ms through a relay that drops and delays them at random
    (so they also reorder); the buffer is popped every 20 ms. Returns what played and
    which packets were delivered."""
    rng = random.Random(seed)
    arrivals: list[tuple[float, int]] = []
    for seq in range(count):
        if rng.random() >= loss:
            heapq.heappush(arrivals, (seq * 0.02 + rng.uniform(0, max_delay), seq))
    delivered = {seq for _, seq in arrivals}
    out: list[int | None] = []
    for tick in range(count + 40):
        now = tick * 0.02 + 0.001
        while arrivals and arrivals[0][0] <= now:
            _, seq = heapq.heappop(arrivals)
            jb.push(seq & 0xFFFF, frame(seq))
        out.append(ident(jb.pop()))
    return out, delivered


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.3), st.floats(0.0, 0.1))
def test_lossy_reordering_relay_into_the_buffer(seed: int, loss: float, delay: float) -> None:
    jb = JitterBuffer(depth=3, max_depth=8)
    out, delivered = _relay(seed, loss, delay, 500, jb)
    played = [n for n in out if n is not None]
    assert played == sorted(set(played))  # strictly in order, never twice
    assert set(played) <= delivered
    stats = jb.statistics()
    # every delivered packet was played, dropped as late, or is still buffered/trimmed
    assert len(played) + stats.late + stats.level + stats.trimmed + stats.overflow >= len(delivered)
    assert stats.level <= jb.capacity


def test_moderate_jitter_loses_almost_nothing_to_lateness() -> None:
    jb = JitterBuffer(depth=3, max_depth=10)
    out, delivered = _relay(seed=11, loss=0.05, max_delay=0.05, count=3000, jb=jb)
    played = {n for n in out if n is not None}
    assert len(delivered) > 2700
    # up to 50 ms of jitter: an adaptive 60 ms buffer grows a little, then plays nearly all
    assert len(played) >= len(delivered) - 15
    assert jb.late <= 10
    assert 3 <= jb.depth <= 6
