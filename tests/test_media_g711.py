"""G.711 mu-law / A-law (ITU-T G.711, G.191 reference algorithms)."""

from __future__ import annotations

import array
import itertools
import sys
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwire.media import g711

ALL_SAMPLES = array.array("h", range(-32768, 32768))
if sys.byteorder == "big":  # pragma: no cover
    ALL_SAMPLES.byteswap()
ALL_PCM = ALL_SAMPLES.tobytes()
ALL_CODES = bytes(range(256))


def _linear(pcm: bytes) -> list[int]:
    values = array.array("h", pcm)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return list(values)


def test_known_vectors() -> None:
    assert g711.ulaw_encode(b"\x00\x00") == b"\xff"
    assert g711.alaw_encode(b"\x00\x00") == b"\xd5"
    assert g711.ulaw_from_linear(0) == 0xFF
    assert g711.alaw_from_linear(0) == 0xD5
    assert g711.ulaw_to_linear(0xFF) == 0
    assert g711.ulaw_to_linear(0x7F) == 0
    assert g711.ulaw_to_linear(0x00) == -32124
    assert g711.ulaw_to_linear(0x80) == 32124
    assert g711.alaw_to_linear(0xD5) == 8
    assert g711.alaw_to_linear(0x55) == -8
    assert g711.alaw_to_linear(0xAA) == 32256
    assert g711.alaw_to_linear(0x2A) == -32256
    assert g711.ulaw_from_linear(32767) == 0x80
    assert g711.ulaw_from_linear(-32768) == 0x00
    assert g711.alaw_from_linear(32767) == 0xAA
    assert g711.alaw_from_linear(-32768) == 0x2A


def test_frame_functions_match_the_scalar_reference() -> None:
    assert g711.ulaw_encode(ALL_PCM) == bytes(
        g711.ulaw_from_linear(v) for v in range(-32768, 32768)
    )
    assert g711.alaw_encode(ALL_PCM) == bytes(
        g711.alaw_from_linear(v) for v in range(-32768, 32768)
    )
    assert _linear(g711.ulaw_decode(ALL_CODES)) == [g711.ulaw_to_linear(c) for c in range(256)]
    assert _linear(g711.alaw_decode(ALL_CODES)) == [g711.alaw_to_linear(c) for c in range(256)]


def test_pure_python_path_equals_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with_numpy = (g711.ulaw_encode(ALL_PCM), g711.alaw_encode(ALL_PCM))
    monkeypatch.setattr(g711, "_np", None)
    assert (g711.ulaw_encode(ALL_PCM), g711.alaw_encode(ALL_PCM)) == with_numpy


def test_codes_survive_decode_then_encode() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES
    again = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    # 0x7F is mu-law "negative zero": it decodes to 0, which encodes as 0xFF
    assert again == ALL_CODES[:0x7F] + b"\xff" + ALL_CODES[0x80:]


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_round_trip_error_is_within_half_a_quantization_step(law: str) -> None:
    decoded = _linear(g711.decode(law, g711.encode(law, ALL_PCM)))
    levels = sorted(set(decoded))
    assert len(levels) == (255 if law == "PCMU" else 256)  # mu-law has two zeros
    index = {level: i for i, level in enumerate(levels)}
    for x, y in zip(range(-32768, 32768), decoded, strict=True):
        if not levels[0] <= x <= levels[-1]:
            assert y == (levels[0] if x < 0 else levels[-1])  # clipped to the extremes
            continue
        i = index[y]
        below = y - levels[i - 1] if i > 0 else 0
        above = levels[i + 1] - y if i + 1 < len(levels) else 0
        # the quantization step at y is the larger gap to its neighbours (segment edges)
        assert abs(x - y) <= max(below, above) / 2 + 1, (x, y)
    # and the step stays a small fraction of the level: a logarithmic quantizer
    assert all(b - a <= max(16, abs(b) / 12) for a, b in itertools.pairwise(levels))


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_quantizer_is_monotonic(law: str) -> None:
    decoded = _linear(g711.decode(law, g711.encode(law, ALL_PCM)))
    assert all(a <= b for a, b in itertools.pairwise(decoded))


def test_matches_an_independent_implementation_where_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # stdlib until Python 3.13
    assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    # audioop's mu-law (the Sun code) rounds negative values the other way at the
    # decision thresholds; G.191 takes the one's complement. They differ by one code.
    ours, theirs = g711.ulaw_encode(ALL_PCM), audioop.lin2ulaw(ALL_PCM, 2)
    assert all(abs(a - b) <= 1 for a, b in zip(ours, theirs, strict=True))
    assert sum(a != b for a, b in zip(ours, theirs, strict=True)) < 600


def test_codec_names_and_errors() -> None:
    assert g711.encode("pcmu", b"\x00\x00") == b"\xff"
    assert g711.decode("PcMa", b"\xd5") == b"\x08\x00"
    with pytest.raises(ValueError, match="unsupported codec"):
        g711.encode("G722", b"\x00\x00")
    with pytest.raises(ValueError, match="even"):
        g711.ulaw_encode(b"\x00")
    with pytest.raises(ValueError, match="16-bit"):
        g711.ulaw_from_linear(40000)


@given(st.binary(max_size=400))
def test_decode_length_and_reencode(data: bytes) -> None:
    pcm = g711.ulaw_decode(data)
    assert len(pcm) == 2 * len(data)
    assert g711.ulaw_decode(g711.ulaw_encode(pcm)) == pcm
    pcm_a = g711.alaw_decode(data)
    assert g711.alaw_encode(pcm_a) == data
