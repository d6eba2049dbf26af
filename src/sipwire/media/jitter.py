"""A jitter buffer for 16-bit PCM frames, ordered by RTP sequence number (sans-IO).

Packets go in with :meth:`JitterBuffer.push` as they arrive (any order); the playout
clock calls :meth:`JitterBuffer.pop` once per packet interval (every 20 ms for the usual
``ptime``) and gets the next frame in sequence order, a concealment frame, or None
(nothing to play: the caller plays silence).

* **Depth.** Playout starts once ``depth`` packets are buffered (default 3 = 60 ms at
  20 ms packets). With ``adaptive=True`` (the default) every late packet grows the
  depth by one packet (up to ``max_depth``, default 10 = 200 ms) by holding playout
  for one interval; after ``shrink_after`` intervals (default 500 = 10 s) without a
  late packet it shrinks by one again (down to ``min_depth``, default ``depth``).
* **Latency trim.** If the buffer never drains below ``depth + 1`` packets for
  ``trim_window`` intervals (default 50 = 1 s) -- a burst that stayed, or a sender
  whose clock runs fast -- one frame is skipped (counted in ``trimmed``).
* **Late packets** (their turn has passed) and duplicates are dropped and counted.
* **Loss concealment.** A missing packet is replaced by the previous frame attenuated
  by 6 dB per repetition (``conceal="repeat"``, the default) or by silence
  (``conceal="silence"``, which returns None). After ``max_conceal`` (default 5)
  missing intervals in a row with an empty buffer the stream is taken to have paused
  (silence suppression, hold): playout stops and buffers up again when packets return.
* **Bounded.** At most ``capacity`` packets (default 50 = 1 s) are held; the oldest
  is dropped on overflow. A sequence jump of more than ``capacity`` packets (a source
  restart) flushes the buffer and starts over.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Literal

from sipwire.core._errors import LocalProtocolError

__all__ = ["Concealment", "JitterBuffer", "JitterStatistics", "attenuate"]

Concealment = Literal["repeat", "silence"]
_SWAP = sys.byteorder == "big"
_MASK = (1 << 64) - 1


def attenuate(pcm: bytes, shift: int = 1) -> bytes:
    """16-bit little-endian PCM scaled by ``2 ** -shift`` (6 dB per step)."""
    samples = array("h", pcm[: len(pcm) & ~1])
    if _SWAP:  # pragma: no cover - big-endian hosts
        samples.byteswap()
    out = array("h", [s >> shift for s in samples])
    if _SWAP:  # pragma: no cover
        out.byteswap()
    return out.tobytes()


@dataclass(frozen=True, slots=True)
class JitterStatistics:
    """Counters of a :class:`JitterBuffer` (packets unless noted)."""

    pushed: int
    played: int
    late: int
    duplicates: int
    overflow: int
    concealed: int
    trimmed: int
    underruns: int
    resyncs: int
    depth: int
    level: int


class JitterBuffer:
    """Reorders frames by sequence number and plays them out at a steady pace."""

    __slots__ = (
        "_buffer",
        "_conceal_run",
        "_hold",
        "_last",
        "_low_water",
        "_next",
        "_played_mask",
        "_playing",
        "_since_late",
        "_since_trim",
        "adaptive",
        "capacity",
        "conceal",
        "concealed",
        "depth",
        "duplicates",
        "late",
        "max_conceal",
        "max_depth",
        "min_depth",
        "overflow",
        "played",
        "pushed",
        "resyncs",
        "shrink_after",
        "trim_window",
        "trimmed",
        "underruns",
    )

    def __init__(
        self,
        *,
        depth: int = 3,
        adaptive: bool = True,
        min_depth: int | None = None,
        max_depth: int = 10,
        capacity: int = 50,
        conceal: Concealment = "repeat",
        max_conceal: int = 5,
        shrink_after: int = 500,
        trim_window: int = 50,
    ) -> None:
        min_depth = depth if min_depth is None else min_depth
        if not 1 <= min_depth <= depth <= max_depth <= capacity:
            raise LocalProtocolError("need 1 <= min_depth <= depth <= max_depth <= capacity")
        if conceal not in ("repeat", "silence"):
            raise LocalProtocolError(f"unknown concealment {conceal!r}")
        self.depth = depth
        self.adaptive = adaptive
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.capacity = capacity
        self.conceal: Concealment = conceal
        self.max_conceal = max_conceal
        self.shrink_after = shrink_after
        self.trim_window = trim_window
        self._buffer: dict[int, bytes] = {}
        self._next: int | None = None  # extended sequence number due next (or first not late)
        self._playing = False
        self._played_mask = 0  # bit i: frame _next - 1 - i was played
        self._last: bytes | None = None
        self._conceal_run = 0
        self._hold = 0
        self._since_late = 0
        self._since_trim = 0
        self._low_water = capacity
        self.pushed = self.played = self.late = self.duplicates = self.overflow = 0
        self.concealed = self.trimmed = self.underruns = self.resyncs = 0

    # ------------------------------------------------------------------ input

    def _extend(self, sequence: int) -> int:
        ref = self._next
        if ref is None:
            ref = max(self._buffer) if self._buffer else sequence
        delta = ((sequence - ref + 0x8000) & 0xFFFF) - 0x8000
        return ref + delta

    def push(self, sequence: int, frame: bytes) -> bool:
        """Add the frame of the packet with this 16-bit sequence number; False if it
        was dropped (late or duplicate)."""
        ext = self._extend(sequence)
        if self._next is not None and ext < self._next:
            behind = self._next - 1 - ext
            if behind < 64 and (self._played_mask >> behind) & 1:
                self.duplicates += 1  # a copy of a frame already played
                return False
            if behind < 2 * self.capacity:
                self.late += 1
                if self.adaptive and self._playing and self.depth < self.max_depth:
                    self.depth += 1
                    self._hold += 1  # play one interval of concealment to make room
                self._since_late = 0
                return False
            self.resyncs += 1  # far behind: the source restarted its sequence
            self.reset()
            ext = sequence
        if ext in self._buffer:
            self.duplicates += 1
            return False
        if self._buffer or self._next is not None:
            low = self._next if self._next is not None else min(self._buffer)
            if ext - low > 2 * self.capacity:  # a restart or a huge jump: start over
                self.resyncs += 1
                self.reset()
                ext = sequence
        if len(self._buffer) >= self.capacity:
            oldest = min(self._buffer)
            if oldest > ext:
                self.overflow += 1
                return False
            del self._buffer[oldest]
            self.overflow += 1
            if self._next is not None and oldest >= self._next:
                self._skip_to(oldest + 1)
        self._buffer[ext] = frame
        self.pushed += 1
        return True

    def _skip_to(self, ext: int) -> None:
        assert self._next is not None
        shift = ext - self._next
        self._played_mask = (self._played_mask << shift) & _MASK if 0 <= shift < 64 else 0
        self._next = ext

    def reset(self) -> None:
        """Forget buffered frames and sequence state (a new source)."""
        self._buffer.clear()
        self._next = None
        self._playing = False
        self._played_mask = 0
        self._conceal_run = 0
        self._hold = 0
        self._low_water = self.capacity

    # ------------------------------------------------------------------ output

    def _concealment(self) -> bytes | None:
        self.concealed += 1
        self._conceal_run += 1
        if self.conceal == "silence" or self._last is None or self._conceal_run > self.max_conceal:
            return None
        return attenuate(self._last, min(self._conceal_run, 15))

    def pop(self) -> bytes | None:
        """The frame for this playout interval; None means play silence."""
        buffer = self._buffer
        if not self._playing:
            if len(buffer) < self.depth:
                return None
            self._playing = True
            first = min(buffer)
            if self._next is None:
                self._next = first
            else:
                self._skip_to(first)
            self._conceal_run = 0
            self._low_water = len(buffer)
            self._since_trim = 0
        if self._hold:
            self._hold -= 1
            return self._concealment_no_advance()
        assert self._next is not None
        level = len(buffer)
        self._low_water = min(self._low_water, level)
        self._since_trim += 1
        if self._since_trim >= self.trim_window:
            if self._low_water > self.depth + 1 and self._next in buffer:
                del buffer[self._next]  # a standing excess of delay: skip one frame
                self._next += 1
                self._played_mask = ((self._played_mask << 1) | 1) & _MASK
                self.trimmed += 1
            self._since_trim = 0
            self._low_water = len(buffer)
        if self.adaptive:
            self._since_late += 1
            if self._since_late >= self.shrink_after:
                self._since_late = 0
                if self.depth > self.min_depth:
                    self.depth -= 1
        frame = buffer.pop(self._next, None)
        if frame is not None:
            self._next += 1
            self._played_mask = ((self._played_mask << 1) | 1) & _MASK
            self._last = frame
            self._conceal_run = 0
            self.played += 1
            return frame
        if not buffer:
            self.underruns += 1
            if self._conceal_run >= self.max_conceal:
                # the sender paused: stop, and buffer up again when it resumes; packets
                # not yet played count as on time, so continue from the first missing one
                self._next -= self._conceal_run
                self._played_mask >>= self._conceal_run
                self._playing = False
                self._conceal_run = 0
                return None
        self._next += 1
        self._played_mask = (self._played_mask << 1) & _MASK
        return self._concealment()

    def _concealment_no_advance(self) -> bytes | None:
        self.concealed += 1
        if self.conceal == "silence" or self._last is None:
            return None
        return attenuate(self._last, 1)

    @property
    def level(self) -> int:
        """Frames buffered now."""
        return len(self._buffer)

    @property
    def playing(self) -> bool:
        """Playout has started (and not paused for lack of packets)."""
        return self._playing

    def statistics(self) -> JitterStatistics:
        return JitterStatistics(
            pushed=self.pushed,
            played=self.played,
            late=self.late,
            duplicates=self.duplicates,
            overflow=self.overflow,
            concealed=self.concealed,
            trimmed=self.trimmed,
            underruns=self.underruns,
            resyncs=self.resyncs,
            depth=self.depth,
            level=len(self._buffer),
        )
