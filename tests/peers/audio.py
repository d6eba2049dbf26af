"""WAV helpers for checking the audio real peers send and record.

* :func:`read_wav` -> (mono float samples in -1..1, sample rate). 8/16/24/32-bit PCM; the
  first channel of multi-channel files. A WAV whose header sizes were never filled in (a
  recorder still running) is read up to the end of the file.
* :func:`dominant_frequency` -> Hz of the strongest spectral peak: numpy FFT (Hann window,
  parabolic peak interpolation) when numpy is installed, otherwise a pure-Python Goertzel
  scan (coarse 10 Hz grid, then 1 Hz around the best bin) over at most one second.
* :func:`rms` (0..1 full scale), :func:`write_tone` / :func:`tone_samples` to make a sine WAV.
* :func:`wav_seconds`: audio length so far of a WAV still being written.
* :func:`wav_is_complete`: the header's data size is set and matches the file (baresip's
  sndfile recorder writes it only when the call's audio stops).

Tricks: baresip's ``ausine`` at 440 Hz arrives as 440 +- 1 Hz after PCMU at 8 kHz; leave
the first and last ~100 ms out (``trim``) when measuring, they hold silence/jitter-buffer
fill. linphone's file player expects 16-bit mono WAV (8 kHz or 16 kHz work).
"""

from __future__ import annotations

import math
import pathlib
import struct
import wave
from collections.abc import Sequence
from typing import Any

__all__ = [
    "dominant_frequency",
    "read_wav",
    "rms",
    "tone_samples",
    "wav_is_complete",
    "wav_seconds",
    "write_tone",
]

_np: Any
try:  # numpy is optional
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only without numpy
    _np = None


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """RIFF chunk id -> (offset of payload, declared size)."""
    out: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        out.setdefault(cid, (pos + 8, size))
        if cid == b"data":
            break
        pos += 8 + size + (size & 1)
    return out


def wav_is_complete(path: pathlib.Path) -> bool:
    """True when ``path`` is a RIFF/WAVE file whose data chunk size is set and present."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    chunks = _chunks(data)
    if b"data" not in chunks or b"fmt " not in chunks:
        return False
    offset, size = chunks[b"data"]
    return 0 < size <= len(data) - offset


def wav_seconds(path: pathlib.Path) -> float:
    """Seconds of audio in ``path`` so far, from its format and file size (works while a
    recorder is still writing and the header sizes are not set yet); 0.0 if unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0.0
    chunks = _chunks(data) if data[:4] == b"RIFF" else {}
    if b"fmt " not in chunks or b"data" not in chunks:
        return 0.0
    _, _, rate, byte_rate, _, _ = struct.unpack_from("<HHIIHH", data, chunks[b"fmt "][0])
    return (len(data) - chunks[b"data"][0]) / byte_rate if byte_rate and rate else 0.0


def read_wav(path: pathlib.Path | str) -> tuple[list[float], int]:
    """Mono samples scaled to -1..1 (first channel) and the sample rate."""
    data = pathlib.Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    chunks = _chunks(data)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise ValueError(f"{path}: no fmt or data chunk")
    fmt_off, _ = chunks[b"fmt "]
    fmt_tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", data, fmt_off)
    if fmt_tag not in (1, 0xFFFE):
        raise ValueError(f"{path}: not PCM (format {fmt_tag})")
    off, size = chunks[b"data"]
    if size == 0 or size > len(data) - off:
        size = len(data) - off
    width = bits // 8
    frames = size // block
    raw = data[off : off + frames * block]
    samples: list[float]
    if width == 2:
        vals = struct.unpack(f"<{frames * channels}h", raw)
        samples = [v / 32768.0 for v in vals[::channels]]
    elif width == 1:
        samples = [(raw[i] - 128) / 128.0 for i in range(0, len(raw), block)]
    elif width == 3:
        samples = []
        for i in range(0, len(raw), block):
            v = int.from_bytes(raw[i : i + 3], "little", signed=True)
            samples.append(v / 8388608.0)
    elif width == 4:
        vals = struct.unpack(f"<{frames * channels}i", raw)
        samples = [v / 2147483648.0 for v in vals[::channels]]
    else:
        raise ValueError(f"{path}: unsupported sample width {bits}")
    return samples, rate


def _trimmed(samples: Sequence[float], rate: int, trim: float) -> Sequence[float]:
    cut = int(rate * trim)
    if len(samples) > 4 * cut:
        return samples[cut : len(samples) - cut]
    return samples


def rms(samples: Sequence[float]) -> float:
    """Root mean square (0..1 of full scale)."""
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def _goertzel_power(samples: Sequence[float], rate: int, freq: float) -> float:
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant_frequency(
    source: pathlib.Path | str | tuple[Sequence[float], int],
    *,
    trim: float = 0.1,
    min_hz: float = 50.0,
    max_hz: float | None = None,
) -> float:
    """Frequency (Hz) of the strongest component of a WAV file or ``(samples, rate)``."""
    samples, rate = (
        read_wav(source) if isinstance(source, (str, pathlib.Path)) else (source[0], source[1])
    )
    samples = _trimmed(samples, rate, trim)
    if len(samples) < 64:
        raise ValueError("too few samples to measure a frequency")
    top = max_hz if max_hz is not None else rate / 2 - 1
    if _np is not None:
        x = _np.asarray(samples, dtype=float)
        x = x - x.mean()
        spec = _np.abs(_np.fft.rfft(x * _np.hanning(len(x))))
        freqs = _np.fft.rfftfreq(len(x), 1.0 / rate)
        band = (freqs >= min_hz) & (freqs <= top)
        idx = int(_np.flatnonzero(band)[_np.argmax(spec[band])])
        if 0 < idx < len(spec) - 1:  # parabolic interpolation of the peak
            a, b, c = (math.log(float(spec[i]) + 1e-12) for i in (idx - 1, idx, idx + 1))
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom else 0.0
            return float(freqs[idx] + shift * rate / len(x))
        return float(freqs[idx])
    seg = list(samples[:rate])  # one second is plenty for a steady tone
    mean = sum(seg) / len(seg)
    seg = [s - mean for s in seg]
    best = max(
        (f for f in range(int(min_hz), int(top), 10)),
        key=lambda f: _goertzel_power(seg, rate, f),
    )
    fine = [best + d * 1.0 for d in range(-10, 11) if min_hz <= best + d <= top]
    return max(fine, key=lambda f: _goertzel_power(seg, rate, f))


def tone_samples(
    freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.5
) -> list[float]:
    n = int(seconds * rate)
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(n)]


def write_tone(
    path: pathlib.Path | str,
    freq: float,
    seconds: float,
    *,
    rate: int = 8000,
    amplitude: float = 0.5,
) -> pathlib.Path:
    """Write a 16-bit mono sine WAV; return its path."""
    path = pathlib.Path(path)
    samples = tone_samples(freq, seconds, rate, amplitude)
    frames = struct.pack(f"<{len(samples)}h", *(round(s * 32767) for s in samples))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path
