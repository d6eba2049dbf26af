"""Tones and silence as 16-bit little-endian PCM (8 kHz mono unless told otherwise).

* :func:`sine`, :func:`dual_tone`, :func:`dtmf_tone` (ITU-T Q.23 frequency pairs),
  :func:`silence` return whole buffers;
* :func:`tone_frames` yields 20 ms frames of a tone with continuous phase, for as long
  as asked or forever;
* :func:`frames` cuts any PCM buffer into frames, padding the last one with silence.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator

from sipwire.core._errors import LocalProtocolError

__all__ = [
    "DTMF_FREQUENCIES",
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "dtmf_tone",
    "dual_tone",
    "frames",
    "silence",
    "sine",
    "tone_frames",
]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_BYTES = 2 * FRAME_SAMPLES

DTMF_FREQUENCIES: dict[str, tuple[int, int]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip
"""DTMF character -> (low group Hz, high group Hz), ITU-T Q.23."""

_SWAP = sys.byteorder == "big"


def _pcm(values: list[int]) -> bytes:
    samples = array("h", values)
    if _SWAP:  # pragma: no cover - big-endian hosts
        samples.byteswap()
    return samples.tobytes()


def _check(amplitude: float, rate: int) -> None:
    if not 0.0 <= amplitude <= 1.0:
        raise LocalProtocolError("amplitude is a fraction of full scale, 0..1")
    if rate <= 0:
        raise LocalProtocolError("sample rate must be positive")


def _mix(
    freqs: tuple[float, ...], count: int, amplitude: float, rate: int, start: int = 0
) -> bytes:
    _check(amplitude, rate)
    if count <= 0:
        return b""
    scale = 32767.0 * amplitude / len(freqs)
    steps = [2.0 * math.pi * f / rate for f in freqs]
    sin = math.sin
    if len(steps) == 1:
        (w,) = steps
        return _pcm([round(scale * sin(w * n)) for n in range(start, start + count)])
    return _pcm(
        [round(scale * sum(sin(w * n) for w in steps)) for n in range(start, start + count)]
    )


def sine(freq: float, seconds: float, *, amplitude: float = 0.5, rate: int = SAMPLE_RATE) -> bytes:
    """A sine tone at ``freq`` Hz, ``amplitude`` a fraction of full scale."""
    return _mix((freq,), round(seconds * rate), amplitude, rate)


def dual_tone(
    low: float, high: float, seconds: float, *, amplitude: float = 0.5, rate: int = SAMPLE_RATE
) -> bytes:
    """The sum of two sines of equal level (peak ``amplitude`` of full scale)."""
    return _mix((low, high), round(seconds * rate), amplitude, rate)


def dtmf_tone(
    digit: str, seconds: float = 0.1, *, amplitude: float = 0.5, rate: int = SAMPLE_RATE
) -> bytes:
    """The in-band dual tone of a DTMF digit (``0-9 * # A-D``)."""
    pair = DTMF_FREQUENCIES.get(digit.upper())
    if pair is None:
        raise LocalProtocolError(f"{digit!r} is not a DTMF digit")
    return dual_tone(*pair, seconds, amplitude=amplitude, rate=rate)


def silence(seconds: float, *, rate: int = SAMPLE_RATE) -> bytes:
    """Digital silence."""
    return bytes(2 * round(seconds * rate))


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Cut PCM into frames of ``frame_bytes``; the last one is padded with silence."""
    for offset in range(0, len(pcm), frame_bytes):
        chunk = pcm[offset : offset + frame_bytes]
        if len(chunk) < frame_bytes:
            chunk += bytes(frame_bytes - len(chunk))
        yield chunk


def tone_frames(
    *freqs: float,
    seconds: float | None = None,
    amplitude: float = 0.5,
    rate: int = SAMPLE_RATE,
    frame_samples: int = FRAME_SAMPLES,
) -> Iterator[bytes]:
    """20 ms frames of a tone (one frequency, or several summed), phase-continuous,
    for ``seconds`` (rounded up to whole frames) or forever if None. Generated one
    second at a time."""
    if not freqs:
        raise LocalProtocolError("tone_frames needs at least one frequency")
    _check(amplitude, rate)
    total = None if seconds is None else -(-round(seconds * rate) // frame_samples)
    block = max(1, rate // frame_samples)  # frames per generated block
    produced = 0
    start = 0
    while total is None or produced < total:
        count = block if total is None else min(block, total - produced)
        pcm = _mix(tuple(freqs), count * frame_samples, amplitude, rate, start)
        start += count * frame_samples
        if total is None and all(float(f).is_integer() for f in freqs) and start >= rate:
            start -= rate  # whole cycles per second: keep the sample index small
        size = 2 * frame_samples
        for offset in range(0, len(pcm), size):
            yield pcm[offset : offset + size]
        produced += count
