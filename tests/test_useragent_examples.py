"""The scripts in examples/ run as a user would run them, against ``sipwire serve``, and
do what their docstrings say (checked with a sipwire user agent on the other end)."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import pytest

from peers.audio import dominant_frequency, rms
from peers.procs import PeerProcess, Procs
from peers.sipwire_serve import SipwireServe
from sipwire import Call, UserAgent
from sipwire.media.tone import tone_frames

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "echo": "echo-pw", "ivr": "ivr-pw"}


def example(procs: Procs, srv: SipwireServe, script: str, *args: str) -> PeerProcess:
    return procs.start(
        script.removesuffix(".py"),
        [sys.executable, str(EXAMPLES / script), *args, "--server", srv.address],
    )


def alice(srv: SipwireServe) -> UserAgent:
    return UserAgent("sip:alice@localhost", password="alice-pw", server=srv.address)


def samples_of(pcm: bytes) -> list[float]:
    return [
        int.from_bytes(pcm[i : i + 2], "little", signed=True) / 32768 for i in range(0, len(pcm), 2)
    ]


async def read_seconds(call: Call, seconds: float) -> list[float]:
    pcm = b""
    for _ in range(round(seconds / 0.02)):
        pcm += await call.read_frame()
    return samples_of(pcm)


async def until_quiet(call: Call, frames: int = 10, timeout: float = 10.0) -> None:
    """Read audio until something was heard and then ``frames`` frames of silence."""

    async def run() -> None:
        heard, quiet = False, 0
        while quiet < frames or not heard:
            level = rms(samples_of(await call.read_frame()))
            if level > 0.05:
                heard, quiet = True, 0
            else:
                quiet += 1

    await asyncio.wait_for(run(), timeout)


async def test_echo_bot_sends_the_callers_audio_back(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    bot = example(procs, srv, "echo_bot.py", "sip:echo@localhost", "--password", "echo-pw")
    await asyncio.to_thread(bot.wait_for, "registered sip:echo@localhost", 30)
    async with alice(srv) as ua:
        call = await ua.call("sip:echo@localhost")
        await call.wait_answered(15)
        tone = list(tone_frames(800, seconds=1.5))

        async def talk() -> None:
            for frame in tone:
                await call.write_frame(frame)

        _, heard = await asyncio.gather(talk(), read_seconds(call, 1.6))
        assert rms(heard) > 0.1
        assert dominant_frequency((heard, 8000)) == pytest.approx(800, abs=10)
        await call.hangup()
    await asyncio.to_thread(bot.wait_for, r"sip:alice@localhost: ended by the peer", 10)


async def test_ivr_reads_digits_and_answers_them(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    ivr = example(procs, srv, "ivr.py", "sip:ivr@localhost", "--password", "ivr-pw")
    await asyncio.to_thread(ivr.wait_for, "registered sip:ivr@localhost", 30)
    async with alice(srv) as ua:
        call = await ua.call("sip:ivr@localhost")
        await call.wait_answered(15)
        await until_quiet(call)  # the greeting chime is over
        await call.send_dtmf("1")  # menu 1: a 440 Hz tone
        heard = await read_seconds(call, 1.0)
        assert dominant_frequency((heard, 8000)) == pytest.approx(440, abs=10)
        await call.send_dtmf("42#")
        await asyncio.to_thread(ivr.wait_for, r"sip:alice@localhost entered PIN 42", 10)
        await until_quiet(call, frames=30, timeout=20)  # 4 + 10 beeps read back
        await call.send_dtmf("*")  # the IVR hangs up
        end = await call.wait_ended(10)
        assert (end.by, end.reason) == ("remote", "remote BYE")
    for digit in "142#*":
        assert f"sip:alice@localhost pressed {digit}" in ivr.output


async def test_call_and_play_calls_plays_and_hangs_up(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    async with UserAgent("sip:bob@localhost", password="bob-pw", server=srv.address) as bob:
        script = example(
            procs,
            srv,
            "call_and_play.py",
            "sip:alice@localhost",
            "sip:bob@localhost",
            "--password",
            "alice-pw",
            "--dtmf",
            "9",
        )
        incoming = await anext(aiter(bob.incoming()))
        recording = incoming.record(tmp_path / "bob.wav")
        await incoming.answer()
        assert await asyncio.wait_for(anext(incoming.dtmf()), 15) == "9"
        assert (await incoming.wait_ended(15)).by == "remote"
        assert await recording > 1.5
    assert await asyncio.to_thread(script.wait, 15) == 0
    assert "ended by us: local BYE" in script.output
    assert dominant_frequency(tmp_path / "bob.wav") == pytest.approx(440, abs=10)
