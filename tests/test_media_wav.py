"""WAV reading/resampling/writing and tone generation."""

from __future__ import annotations

import math
import pathlib
import struct
import wave
from array import array

import pytest

from peers.audio import dominant_frequency, rms, wav_is_complete
from sipwire.core._errors import LocalProtocolError
from sipwire.media import tone, wav


def _samples(pcm: bytes) -> list[float]:
    return [v / 32768.0 for v in array("h", pcm)]


def _write_raw_wav(
    path: pathlib.Path,
    frames: bytes,
    *,
    rate: int,
    channels: int,
    bits: int,
    tag: int = 1,
    extensible: bool = False,
) -> pathlib.Path:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + bytes(14)
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # an extra chunk to skip
    body += b"data" + struct.pack("<I", len(frames)) + frames
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(int(seconds * rate))]


def test_16bit_stereo_44k_is_downmixed_and_resampled(tmp_path: pathlib.Path) -> None:
    left = _tone(1000, 1.0, 44100)
    right = _tone(1000, 1.0, 44100, 0.25)
    interleaved = array(
        "h", [round(v * 32767) for pair in zip(left, right, strict=True) for v in pair]
    )
    path = _write_raw_wav(
        tmp_path / "a.wav", interleaved.tobytes(), rate=44100, channels=2, bits=16
    )
    pcm = wav.read_wav(path)
    assert len(pcm) == 2 * 8000
    samples = _samples(pcm)
    assert dominant_frequency((samples, 8000)) == pytest.approx(1000, abs=2)
    assert rms(samples[400:-400]) == pytest.approx(0.375 / math.sqrt(2), rel=0.01)


@pytest.mark.parametrize(
    ("bits", "rate", "tag", "extensible"),
    [
        (8, 8000, 1, False),
        (24, 16000, 1, False),
        (32, 48000, 1, True),
        (32, 22050, 3, False),
        (64, 11025, 3, True),
    ],
)
def test_other_sample_formats(
    tmp_path: pathlib.Path, bits: int, rate: int, tag: int, extensible: bool
) -> None:
    values = _tone(440, 0.5, rate)
    if tag == 3:
        raw = array("f" if bits == 32 else "d", values).tobytes()
    elif bits == 8:
        raw = bytes(round(v * 127) + 128 for v in values)
    elif bits == 24:
        raw = b"".join(round(v * 8388607).to_bytes(3, "little", signed=True) for v in values)
    else:
        raw = array("i", [round(v * 2147483647) for v in values]).tobytes()
    path = _write_raw_wav(
        tmp_path / "t.wav", raw, rate=rate, channels=1, bits=bits, tag=tag, extensible=extensible
    )
    samples = _samples(wav.read_wav(path))
    assert abs(len(samples) - 4000) <= 1  # 0.5 s at 11025 Hz is 5512 samples
    assert dominant_frequency((samples, 8000)) == pytest.approx(440, abs=2)
    assert rms(samples[200:-200]) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_8k_16bit_mono_is_read_unchanged(tmp_path: pathlib.Path) -> None:
    pcm = tone.sine(700, 0.3)
    wav.write_wav(tmp_path / "x.wav", pcm)
    assert wav.read_wav(tmp_path / "x.wav") == pcm


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a wav at all", "RIFF"),
        (b"RIFF\x04\x00\x00\x00WAVE", "fmt or data"),
    ],
)
def test_not_a_wav(tmp_path: pathlib.Path, data: bytes, message: str) -> None:
    (tmp_path / "bad.wav").write_bytes(data)
    with pytest.raises(wav.WavFormatError, match=message):
        wav.read_wav(tmp_path / "bad.wav")


def test_compressed_wav_is_refused(tmp_path: pathlib.Path) -> None:
    path = _write_raw_wav(tmp_path / "adpcm.wav", bytes(100), rate=8000, channels=1, bits=4, tag=2)
    with pytest.raises(wav.WavFormatError):
        wav.read_wav(path)
    path = _write_raw_wav(tmp_path / "ulaw.wav", bytes(100), rate=8000, channels=1, bits=8, tag=7)
    with pytest.raises(wav.WavFormatError, match="not PCM"):
        wav.read_wav(path)


def _level_db(freq: float, from_rate: int) -> float:
    out = wav.resample(_tone(freq, 0.5, from_rate), from_rate, 8000)[400:-400]
    return 20 * math.log10(max(rms(out), 1e-9) / (0.5 / math.sqrt(2)))


@pytest.mark.parametrize("from_rate", [44100, 48000, 16000])
def test_resampler_pass_band_and_stop_band(from_rate: int) -> None:
    for freq in (300, 1000, 2000, 3000):
        assert abs(_level_db(freq, from_rate)) < 0.3, freq
    assert -3 < _level_db(3400, from_rate) < 0
    for freq in (4200, 5000, 7000):  # would alias into the telephone band
        assert _level_db(freq, from_rate) < -50, freq


def test_resampler_upsamples_and_handles_odd_rates() -> None:
    up = wav.resample(_tone(1000, 1.0, 4000), 4000, 8000)
    assert len(up) == 8000
    assert dominant_frequency((up, 8000)) == pytest.approx(1000, abs=2)
    odd = wav.resample(_tone(1000, 1.0, 44056), 44056, 8000)  # > 1024 phases: quantized
    assert len(odd) == 8000
    assert dominant_frequency((odd, 8000)) == pytest.approx(1000, abs=2)
    assert wav.resample([], 16000, 8000) == []
    with pytest.raises(ValueError):
        wav.resample([0.0], 0, 8000)


def test_resampler_pure_python_path_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    signal = _tone(1234, 0.2, 22050)
    fast = wav.resample(signal, 22050, 8000)
    monkeypatch.setattr(wav, "_np", None)
    slow = wav.resample(signal, 22050, 8000)
    assert len(fast) == len(slow)
    assert max(abs(a - b) for a, b in zip(fast, slow, strict=True)) < 1e-9


def test_writer_keeps_the_file_valid_while_recording(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rec.wav"
    writer = wav.WavWriter(path, buffer_bytes=3200)
    for _ in range(25):  # half a second in 20 ms frames
        writer.write(tone.sine(500, 0.02))
    assert writer.seconds == pytest.approx(0.5)
    assert wav_is_complete(path)  # flushed at least once, header patched
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() >= 3200
    writer.close()
    writer.close()  # idempotent
    with wave.open(str(path)) as w:
        assert w.getnframes() == 4000
    with pytest.raises(ValueError):
        writer.write(b"\x00\x00")


# --------------------------------------------------------------------------- tones


def _power(samples: list[float], freq: float, rate: int = 8000) -> float:
    """Goertzel power of one frequency."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_sine_frequency_and_level() -> None:
    samples = _samples(tone.sine(1000, 1.0, amplitude=0.5))
    assert len(samples) == 8000
    assert dominant_frequency((samples, 8000), trim=0) == pytest.approx(1000, abs=1)
    assert rms(samples) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)
    assert max(abs(s) for s in samples) <= 0.5


@pytest.mark.parametrize("digit", list("147*2580369#ABCD"))
def test_dtmf_tone_has_its_two_frequencies(digit: str) -> None:
    samples = _samples(tone.dtmf_tone(digit, 0.1))
    assert len(samples) == 800
    low, high = tone.DTMF_FREQUENCIES[digit]
    all_freqs = {f for pair in tone.DTMF_FREQUENCIES.values() for f in pair}
    powers = {f: _power(samples, f) for f in all_freqs}
    strongest = sorted(powers, key=powers.__getitem__, reverse=True)[:2]
    assert sorted(strongest) == [low, high]


def test_tone_frames_are_phase_continuous() -> None:
    frames = list(tone.tone_frames(697, seconds=2.5))
    assert len(frames) == 125 and all(len(f) == 320 for f in frames)
    assert b"".join(frames) == tone.sine(697, 2.5)
    endless = tone.tone_frames(440, 1209, seconds=None)
    joined = b"".join(next(endless) for _ in range(150))
    assert joined == tone.dual_tone(440, 1209, 3.0)


def test_silence_and_framing() -> None:
    assert tone.silence(0.02) == bytes(320)
    chunks = list(tone.frames(b"\x01\x00" * 200))
    assert len(chunks) == 2
    assert chunks[1] == b"\x01\x00" * 40 + bytes(240)
    with pytest.raises(LocalProtocolError):
        tone.dtmf_tone("x")
    with pytest.raises(LocalProtocolError):
        tone.sine(440, 1.0, amplitude=2.0)
    with pytest.raises(LocalProtocolError):
        next(tone.tone_frames())
