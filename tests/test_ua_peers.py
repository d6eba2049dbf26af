"""sipwire.UserAgent against real phones (baresip, linphonec), registered at a real server
(``sipwire serve`` or Kamailio): register, call both ways, answer, hang up from either
side, audio checked by its frequency, DTMF both ways, hold/resume, CANCEL, busy, decline,
unregistered users.

The user agent runs in the test's event loop; every blocking wait on a peer goes through
``asyncio.to_thread`` so the user agent keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from peers.audio import dominant_frequency, write_tone
from peers.baresip import Baresip, BaresipAccount
from peers.kamailio import Kamailio
from peers.linphone import Linphone
from peers.procs import Procs
from peers.sipwire_serve import SipwireServe
from sipwire import Call, UserAgent
from sipwire.apps.useragent import CallFailed
from sipwire.core.sdp import Direction

pytestmark = pytest.mark.peer

T = TypeVar("T")
USERS = {name: f"{name}-pw" for name in ("alice", "bob", "lin", "carol")}
REGISTRARS = ["serve", "kamailio"]


@dataclass
class Registrar:
    kind: str
    address: str
    domain: str

    def outbound(self, transport: str = "udp") -> str:
        return f"sip:{self.address};transport={transport}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"


def start_registrar(kind: str, procs: Procs, tmp: pathlib.Path) -> Registrar:
    if kind == "serve":
        srv = SipwireServe(procs, tmp, USERS)
        return Registrar(kind, srv.address, srv.domain)
    kam = Kamailio.registrar(procs, tmp, USERS, domain="example.test")
    return Registrar(kind, kam.address, "example.test")


async def blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking peer-harness call without stopping the user agent."""
    return await asyncio.to_thread(func, *args, **kwargs)


def agent(reg: Registrar, user: str) -> UserAgent:
    return UserAgent(reg.aor(user), password=USERS[user], server=reg.address)


def baresip(
    procs: Procs,
    tmp: pathlib.Path,
    reg: Registrar,
    user: str,
    *,
    tone: int = 440,
    answermode: str = "auto",
    register: bool = True,
) -> Baresip:
    account = BaresipAccount(
        user,
        domain=reg.domain,
        password=USERS[user],
        outbound=reg.outbound(),
        answermode=answermode,  # type: ignore[arg-type]
        regint=600 if register else 0,
    )
    phone = Baresip(procs, tmp, account, name=f"baresip-{user}", tone_hz=tone)
    if register:
        phone.wait_event("REGISTER_OK", timeout=15)
    return phone


async def wait_incoming(ua: UserAgent, timeout: float = 15.0) -> Call:
    async def first() -> Call:
        async for call in ua.incoming():
            return call
        raise AssertionError("user agent closed")

    return await asyncio.wait_for(first(), timeout)


async def rtp_flows(call: Call, *, stopped: bool = False, timeout: float = 5.0) -> bool:
    """Whether RTP from the peer arrives (the counter grows within 0.3 s), or with
    ``stopped`` whether it stops (a 0.4 s window without growth) -- polled until
    ``timeout``, as the peer takes a moment to apply a re-INVITE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    window = 0.4 if stopped else 0.3
    while loop.time() < deadline:
        before = call.statistics().packets_received
        await asyncio.sleep(window)
        grew = call.statistics().packets_received > before
        if grew != stopped:
            return True
    return False


# ------------------------------------------------------------------------------ baresip


@pytest.mark.parametrize("kind", REGISTRARS)
async def test_sipwire_calls_baresip_audio_dtmf_hold_and_hangs_up(
    procs: Procs, tmp_path: pathlib.Path, kind: str
) -> None:
    reg = start_registrar(kind, procs, tmp_path)
    bob = baresip(procs, tmp_path, reg, "bob", tone=440)
    async with agent(reg, "alice") as alice:
        assert alice.registered
        call = await alice.call(reg.aor("bob"))
        heard = call.record(tmp_path / "alice-heard.wav")
        await call.wait_answered(15)
        assert (await blocking(bob.wait_event, "CALL_ESTABLISHED"))["direction"] == "incoming"
        assert call.negotiated[0].telephone_event is not None  # baresip offers RFC 4733
        await call.play_tone(1000, seconds=1.2)
        # DTMF both ways
        await call.send_dtmf("7")
        assert (await blocking(bob.wait_event, "CALL_DTMF_START"))["param"] == "7"
        await blocking(bob.send_dtmf, "5")
        assert await asyncio.wait_for(anext(call.dtmf()), 10) == "5"
        # hold: our re-INVITE says sendonly, baresip answers recvonly and stops sending
        assert await rtp_flows(call)
        await call.hold()
        assert call.negotiated[0].local_direction is Direction.SENDONLY
        assert call.negotiated[0].remote_direction is Direction.RECVONLY
        assert await rtp_flows(call, stopped=True)
        sent = call.statistics().packets_sent
        await asyncio.sleep(0.3)
        assert call.statistics().packets_sent > sent  # we still send (sendonly)
        await call.resume()
        assert call.negotiated[0].remote_direction is Direction.SENDRECV
        assert await rtp_flows(call)
        await call.hangup()
        assert (await call.wait_ended(5)).reason == "local BYE"
        closed = await blocking(bob.wait_event, "CALL_CLOSED")
        assert closed["param"] == "Connection reset by peer"
        assert await asyncio.wait_for(heard, 5) > 1.5
    assert dominant_frequency(tmp_path / "alice-heard.wav") == pytest.approx(440, abs=10)
    bob_heard = await blocking(bob.wait_recording, "dec")
    assert dominant_frequency(bob_heard) == pytest.approx(1000, abs=10)


@pytest.mark.parametrize("kind", REGISTRARS)
async def test_baresip_calls_sipwire_which_answers_and_baresip_hangs_up(
    procs: Procs, tmp_path: pathlib.Path, kind: str
) -> None:
    reg = start_registrar(kind, procs, tmp_path)
    async with agent(reg, "bob") as bob:
        alice = baresip(procs, tmp_path, reg, "alice", tone=1000, register=False)
        await blocking(alice.dial, reg.aor("bob"))
        incoming = await wait_incoming(bob)
        assert incoming.remote == reg.aor("alice")
        heard = incoming.record(tmp_path / "bob-heard.wav")
        await blocking(alice.wait_event, "CALL_RINGING")  # our automatic 180
        await incoming.answer()
        await blocking(alice.wait_event, "CALL_ESTABLISHED")
        await incoming.play_tone(600, seconds=1.0)
        await blocking(alice.send_dtmf, "#")
        assert await asyncio.wait_for(anext(incoming.dtmf()), 10) == "#"
        await blocking(alice.hangup)
        end = await incoming.wait_ended(10)
        assert (end.by, end.reason) == ("remote", "remote BYE")
        assert await asyncio.wait_for(heard, 5) > 0.8
    assert dominant_frequency(tmp_path / "bob-heard.wav") == pytest.approx(1000, abs=10)
    alice_heard = await blocking(alice.wait_recording, "dec")
    assert dominant_frequency(alice_heard) == pytest.approx(600, abs=10)


# ------------------------------------------------------------------------------ linphone


def linphone(procs: Procs, tmp: pathlib.Path, reg: Registrar, *, tone: int) -> Linphone:
    lin = Linphone(
        procs,
        tmp,
        "lin",
        play=write_tone(tmp / f"lin-{tone}.wav", tone, 10.0),
        record=tmp / "lin-heard.wav",
    )
    lin.register(reg.aor("lin"), f"sip:{reg.address}", USERS["lin"], timeout=15)
    return lin


@pytest.mark.parametrize("kind", REGISTRARS)
async def test_sipwire_calls_linphone_which_hangs_up(
    procs: Procs, tmp_path: pathlib.Path, kind: str
) -> None:
    reg = start_registrar(kind, procs, tmp_path)
    lin = linphone(procs, tmp_path, reg, tone=1000)
    await blocking(lin.autoanswer, True)
    async with agent(reg, "alice") as alice:
        mark = lin.p.mark()
        call = await alice.call(reg.aor("lin"))
        heard = call.record(tmp_path / "alice-heard.wav")
        await call.wait_answered(15)
        await blocking(lin.wait_connected, None, 15, start=mark)
        await call.play_tone(600, seconds=1.5)
        await blocking(lin.terminate)
        end = await call.wait_ended(10)
        assert (end.by, end.reason) == ("remote", "remote BYE")
        assert await asyncio.wait_for(heard, 5) > 1.0
        await blocking(lin.wait_ended, None, 10, start=mark)
    assert dominant_frequency(tmp_path / "alice-heard.wav") == pytest.approx(1000, abs=10)
    assert dominant_frequency(tmp_path / "lin-heard.wav") == pytest.approx(600, abs=10)


@pytest.mark.parametrize("kind", REGISTRARS)
async def test_linphone_calls_sipwire_which_hangs_up(
    procs: Procs, tmp_path: pathlib.Path, kind: str
) -> None:
    reg = start_registrar(kind, procs, tmp_path)
    lin = linphone(procs, tmp_path, reg, tone=440)
    async with agent(reg, "bob") as bob:
        mark = lin.p.mark()
        # linphonec sends out-of-dialog requests to the Request-URI's host, not its proxy:
        # address the callee at the server (both servers take their address as their own).
        await blocking(lin.call, f"sip:bob@{reg.address}")
        incoming = await wait_incoming(bob)
        heard = incoming.record(tmp_path / "bob-heard.wav")
        await incoming.answer()
        await blocking(lin.wait_connected, None, 15, start=mark)
        await incoming.play_tone(1000, seconds=1.5)
        await incoming.hangup()
        assert (await incoming.wait_ended(5)).by == "local"
        reason = (await blocking(lin.wait_ended, None, 10, start=mark)).group(1)
        assert reason == "No error"  # a normal BYE
        assert await asyncio.wait_for(heard, 5) > 1.0
    assert dominant_frequency(tmp_path / "bob-heard.wav") == pytest.approx(440, abs=10)
    assert dominant_frequency(tmp_path / "lin-heard.wav") == pytest.approx(1000, abs=10)


# ------------------------------------------------------------------------------ failures


async def test_cancel_busy_decline_and_unregistered_users_via_serve(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    reg = start_registrar("serve", procs, tmp_path)
    bob = baresip(procs, tmp_path, reg, "bob", answermode="manual")
    async with agent(reg, "alice") as alice:
        # CANCEL before the answer
        call = await alice.call(reg.aor("bob"))
        await blocking(bob.wait_event, "CALL_INCOMING")
        await call.wait_ringing(10)
        await call.hangup()
        with pytest.raises(CallFailed) as info:
            await call.wait_answered(10)
        assert info.value.status == 487
        await blocking(bob.wait_event, "CALL_CLOSED")
        # busy: baresip refuses the ringing call
        call = await alice.call(reg.aor("bob"))
        await blocking(bob.wait_event, "CALL_INCOMING")
        await blocking(bob.hangup)
        with pytest.raises(CallFailed) as info:
            await call.wait_answered(10)
        assert info.value.status == 486
        await blocking(bob.wait_event, "CALL_CLOSED")
        # decline: sipwire refuses a call from baresip with 603
        alice.on_incoming(lambda incoming: incoming.reject(603))
        await blocking(bob.dial, reg.aor("alice"))
        closed = await blocking(bob.wait_event, "CALL_CLOSED")
        assert "603" in closed["param"]
        # carol exists but is not registered; nobody does not exist
        with pytest.raises(CallFailed) as info:
            await (await alice.call(reg.aor("carol"))).wait_answered(10)
        assert info.value.status in (404, 480)
        with pytest.raises(CallFailed) as info:
            await (await alice.call(reg.aor("nobody"))).wait_answered(10)
        assert info.value.status == 404
        # a sipwire user agent unregisters on exit: then it cannot be reached
        async with agent(reg, "carol") as carol:
            carol.on_incoming(lambda incoming: incoming.answer())
            call = await alice.call(reg.aor("carol"))
            await call.wait_answered(10)
            await call.hangup()
        with pytest.raises(CallFailed) as info:
            await (await alice.call(reg.aor("carol"))).wait_answered(10)
        assert info.value.status in (404, 480)
