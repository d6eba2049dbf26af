"""sipwire.media: RTP/RTCP, G.711, RFC 4733 DTMF, jitter buffer, WAV, tones.

Pure packet logic lives in sans-IO modules (time and randomness are arguments):
:mod:`~sipwire.media.rtp`, :mod:`~sipwire.media.rtcp`, :mod:`~sipwire.media.g711`,
:mod:`~sipwire.media.dtmf`, :mod:`~sipwire.media.jitter`, :mod:`~sipwire.media.session`
(one call's engine), plus :mod:`~sipwire.media.wav` and :mod:`~sipwire.media.tone`.
:mod:`~sipwire.media.stream` is the asyncio shell, :class:`MediaStream`.

The common names are re-exported here lazily, so ``import sipwire.media`` does not
import asyncio.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "MediaStream": "sipwire.media.stream",
    "PortRange": "sipwire.media.stream",
    "MediaConfig": "sipwire.media.session",
    "MediaStatistics": "sipwire.media.session",
    "RemoteMedia": "sipwire.media.session",
    "RtpSession": "sipwire.media.session",
    "RtpPacket": "sipwire.media.rtp",
    "RtpSender": "sipwire.media.rtp",
    "RtpReceiver": "sipwire.media.rtp",
    "JitterBuffer": "sipwire.media.jitter",
    "DtmfDigit": "sipwire.media.dtmf",
    "read_wav": "sipwire.media.wav",
    "write_wav": "sipwire.media.wav",
    "WavWriter": "sipwire.media.wav",
}

__all__ = [  # noqa: RUF022 - grouped by module like _LAZY
    "MediaStream",
    "PortRange",
    "MediaConfig",
    "MediaStatistics",
    "RemoteMedia",
    "RtpSession",
    "RtpPacket",
    "RtpSender",
    "RtpReceiver",
    "JitterBuffer",
    "DtmfDigit",
    "read_wav",
    "write_wav",
    "WavWriter",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sipwire.media' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
