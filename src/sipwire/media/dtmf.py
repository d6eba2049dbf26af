"""DTMF as RFC 4733 telephone events: the payload, a sender schedule and a receiver.

* :class:`TelephoneEvent` is the 4-octet payload of §2.3 (event, E bit, volume,
  duration). Events 0-15 are the DTMF digits ``0-9 * # A-D`` and 16 is flash (§3.2),
  written ``!`` here.
* :class:`DtmfSender` turns queued digits into one event packet per 20 ms frame
  (§2.5.1.2): the first packet of a digit has the marker bit, every packet of a digit
  carries the digit's start timestamp and the cumulative duration, and the final
  packet (E bit, final duration) is sent three times at the update interval
  (§2.5.1.4). A pause of ordinary audio separates digits.
* :class:`DtmfReceiver` reports each digit once, when the first packet of the event
  arrives (start packet or, if that was lost, any later one): packets are keyed by
  (SSRC, RTP timestamp), which stays the same for the whole event (§2.5.2.2); the
  retransmitted end packets, duplicates and reordered stragglers of older events are
  ignored. A new segment of a long event (§2.5.1.3) is not a new digit.

The SDP side is ``telephone-event/8000`` with ``fmtp 0-16``
(:data:`sipwire.core.offeranswer.TELEPHONE_EVENT`). Everything here is sans-IO.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DTMF_EVENTS",
    "DtmfDigit",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_of",
    "event_of",
]

DTMF_EVENTS = "0123456789*#ABCD!"
"""Event code -> character: 0-9, ``*`` (10), ``#`` (11), A-D (12-15), flash ``!`` (16)."""

_PAYLOAD = struct.Struct("!BBH")


def event_of(digit: str) -> int:
    """The RFC 4733 event code of a DTMF character (case-insensitive A-D)."""
    code = DTMF_EVENTS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise LocalProtocolError(f"{digit!r} is not a DTMF digit (0-9 * # A-D !)")
    return code


def digit_of(event: int) -> str | None:
    """The DTMF character of an event code, None for non-DTMF events."""
    return DTMF_EVENTS[event] if 0 <= event < len(DTMF_EVENTS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The telephone-event payload (RFC 4733 §2.3)."""

    event: int
    end: bool = False
    volume: int = 10  # power level in -dBm0 (0..63), §2.3.4
    duration: int = 0  # timestamp units since the event (segment) began, §2.3.5

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise LocalProtocolError("event code is 0..255")
        if not 0 <= self.volume <= 63:
            raise LocalProtocolError("volume is 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise LocalProtocolError("duration is 0..65535")

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Decode the first event of a payload (more may be packed, §2.5.1.5)."""
        if len(payload) < 4:
            raise RemoteProtocolError(f"telephone-event payload of {len(payload)} octets")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit received: the character, the event code, the event's RTP timestamp,
    the SSRC it came from, and the duration known when it was reported (timestamp
    units; it grows as later packets arrive, but the digit is reported once)."""

    digit: str
    event: int
    timestamp: int
    ssrc: int
    duration: int


@dataclass(slots=True)
class _Tone:
    event: int
    frames: int  # frames of tone before the end packet
    sent: int = 0  # packets sent so far, including end repeats
    timestamp: int = -1


class DtmfSender:
    """Schedule of RFC 4733 packets for queued digits, one call per frame.

    ``duration`` (default 0.1 s) is each digit's tone length, rounded up to whole
    frames; ``pause`` (default 0.1 s) the audio gap after each digit; ``end_repeats``
    (default 3) how many times the final packet is sent (§2.5.1.4). At most
    ``max_queued`` (default 64) digits wait.
    """

    __slots__ = (
        "_current",
        "_gap",
        "_queue",
        "clock_rate",
        "duration",
        "end_repeats",
        "frame_samples",
        "max_queued",
        "pause",
        "volume",
    )

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        duration: float = 0.1,
        pause: float = 0.1,
        volume: int = 10,
        end_repeats: int = 3,
        max_queued: int = 64,
    ) -> None:
        if frame_samples <= 0 or clock_rate <= 0:
            raise LocalProtocolError("frame size and clock rate must be positive")
        if end_repeats < 1 or not 0 <= volume <= 63:
            raise LocalProtocolError("end_repeats >= 1 and volume 0..63")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.duration = duration
        self.pause = pause
        self.volume = volume
        self.end_repeats = end_repeats
        self.max_queued = max_queued
        self._queue: deque[_Tone] = deque()
        self._current: _Tone | None = None
        self._gap = 0

    def _frames(self, seconds: float) -> int:
        return max(0, -(-round(seconds * self.clock_rate) // self.frame_samples))

    def send(self, digits: str, *, duration: float | None = None) -> None:
        """Queue ``digits`` (``0-9 * # A-D !``); raises :class:`LocalProtocolError` for
        another character or when the queue would exceed ``max_queued``."""
        codes = [event_of(d) for d in digits]
        if len(self._queue) + len(codes) > self.max_queued:
            raise LocalProtocolError(f"more than {self.max_queued} DTMF digits queued")
        frames = max(1, self._frames(self.duration if duration is None else duration))
        if frames * self.frame_samples > 0xFFFF:
            raise LocalProtocolError("DTMF digit longer than one event segment (8 s)")
        self._queue.extend(_Tone(code, frames) for code in codes)

    @property
    def busy(self) -> bool:
        """Digits are queued or being sent (including the pause after the last)."""
        return bool(self._queue) or self._current is not None or self._gap > 0

    @property
    def sending_event(self) -> bool:
        """The next :meth:`tick` will (or may) produce an event packet."""
        return self._current is not None or (self._gap == 0 and bool(self._queue))

    def clear(self) -> None:
        """Forget queued digits (a digit already started is finished properly)."""
        self._queue.clear()

    def tick(self, timestamp: int) -> tuple[bytes, int, bool] | None:
        """One frame period: ``(payload, event timestamp, marker)`` to send instead of
        audio, or None to send audio. ``timestamp`` is the audio timestamp of this
        frame; the first packet of a digit takes it as the event timestamp."""
        if self._current is None:
            if self._gap > 0:
                self._gap -= 1
                return None
            if not self._queue:
                return None
            self._current = self._queue.popleft()
            self._current.timestamp = timestamp
        tone = self._current
        tone.sent += 1
        marker = tone.sent == 1
        if tone.sent < tone.frames:
            payload = TelephoneEvent(tone.event, False, self.volume, tone.sent * self.frame_samples)
        else:
            total = tone.frames * self.frame_samples
            payload = TelephoneEvent(tone.event, True, self.volume, total)
            if tone.sent >= tone.frames + self.end_repeats - 1:
                self._current = None
                self._gap = self._frames(self.pause)
        return payload.to_bytes(), tone.timestamp, marker


class DtmfReceiver:
    """Turns received telephone-event packets into digits, each reported once.

    It remembers the last ``memory`` events (default 32) to drop their repeats.
    """

    __slots__ = ("_last", "_seen", "_seen_order", "events", "memory")

    def __init__(self, *, memory: int = 32) -> None:
        if memory < 1:
            raise LocalProtocolError("memory must be at least 1")
        self.memory = memory
        self._seen: set[tuple[int, int]] = set()
        self._seen_order: deque[tuple[int, int]] = deque()
        self._last: dict[int, tuple[int, int, bool]] = {}  # ssrc -> (timestamp, event, ended)
        self.events = 0

    def receive(
        self, payload: bytes, timestamp: int, *, ssrc: int = 0, marker: bool = False
    ) -> DtmfDigit | None:
        """One event packet; the digit if this is the first packet of a new event.
        Raises :class:`RemoteProtocolError` for a payload shorter than 4 octets."""
        event = TelephoneEvent.parse(payload)
        key = (ssrc, timestamp)
        last = self._last.get(ssrc)
        if key in self._seen:
            if last is not None and last[0] == timestamp and event.end:
                self._last[ssrc] = (timestamp, last[1], True)
            return None
        self._remember(key)
        continuation = (
            not marker
            and last is not None
            and not last[2]
            and last[1] == event.event
            and timestamp == (last[0] + 0xFFFF) & 0xFFFFFFFF
        )
        self._last[ssrc] = (timestamp, event.event, event.end)
        if continuation:  # a new segment of a long event (§2.5.1.3, §2.5.2.3)
            return None
        digit = digit_of(event.event)
        if digit is None:
            return None
        self.events += 1
        return DtmfDigit(digit, event.event, timestamp, ssrc, event.duration)

    def _remember(self, key: tuple[int, int]) -> None:
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > self.memory:
            self._seen.discard(self._seen_order.popleft())
        if len(self._last) > self.memory:
            self._last.pop(next(iter(self._last)))
