"""sipwire.UserAgent on loopback: two user agents calling each other directly, and through
the in-process all-in-one server (registrar + digest auth + proxy).

What a user notices is asserted: the call is answered or fails with the status, audio
sent by one side is heard by the other (dominant frequency of the recording), DTMF
arrives, hold stops the held direction's RTP, every port is released on exit.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import time
from collections.abc import AsyncIterator

import pytest

from peers.audio import dominant_frequency, rms
from sipwire import Call, UserAgent
from sipwire.apps.config import ServerConfig
from sipwire.apps.server import Server
from sipwire.apps.useragent import (
    AuthenticationError,
    CallFailed,
    CallState,
    NoResponseError,
    RegistrationError,
)
from sipwire.core._errors import LocalProtocolError
from sipwire.core.digest import ha1_table
from sipwire.core.sdp import Direction
from sipwire.core.transaction import TimerConfig
from sipwire.media.tone import tone_frames
from sipwire.store import UserRecord

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)  # 64*T1 = 3.2 s
FASTER = TimerConfig(t1=0.02, t2=0.16, t4=0.2)  # 64*T1 = 1.28 s, for timeouts
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def ua(name: str, **kwargs: object) -> UserAgent:
    kwargs.setdefault("timers", FAST)
    return UserAgent(f"sip:{name}@localhost", **kwargs)  # type: ignore[arg-type]


def uri_of(agent: UserAgent, user: str = "bob") -> str:
    host, port = agent.local_address
    return f"sip:{user}@{host}:{port}"


async def wait_for_call(agent: UserAgent, timeout: float = 5.0) -> Call:
    async def first() -> Call:
        async for call in agent.incoming():
            return call
        raise AssertionError("the user agent closed")

    return await asyncio.wait_for(first(), timeout)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    async with ua("alice") as alice, ua("bob") as bob:
        yield alice, bob


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[Server]:
    config = ServerConfig(
        listen=["udp:127.0.0.1:0"], domains=["localhost"], db=str(tmp_path / "sipwire.db")
    )
    srv = Server(config)
    await srv.start()
    for name, password in USERS.items():
        await srv.db.users.put_user(
            UserRecord(
                username=name, domain="localhost", ha1=ha1_table(name, "localhost", password)
            )
        )
    try:
        yield srv
    finally:
        await srv.stop(grace=0.0)


def address_of(srv: Server) -> str:
    listener = srv.endpoint.listeners[0]
    return f"{listener.host}:{listener.port}"


async def bindings(srv: Server, user: str) -> list[object]:
    return list(await srv.db.locations.get(f"sip:{user}@localhost", now=time.time()))


# ------------------------------------------------------------------------ direct calls


async def test_call_answered_audio_both_ways_dtmf_and_caller_hangs_up(
    pair: tuple[UserAgent, UserAgent], tmp_path: pathlib.Path
) -> None:
    alice, bob = pair
    call = await alice.call(uri_of(bob))
    incoming = await wait_for_call(bob)
    assert incoming.direction == "incoming" and incoming.state is CallState.RINGING
    assert incoming.remote == "sip:alice@localhost"
    alice_heard = call.record(tmp_path / "alice.wav")
    bob_heard = incoming.record(tmp_path / "bob.wav")
    await call.wait_ringing(5)
    assert call.progress_status == 180 and call.state is CallState.RINGING
    await incoming.answer()
    await call.wait_answered(5)
    assert call.state is CallState.ANSWERED and call.status == 200
    assert call.negotiated[0].send_codec is not None
    assert call.negotiated[0].send_codec.name == "PCMU"
    await asyncio.gather(call.play_tone(1000, seconds=1.0), incoming.play_tone(600, seconds=1.0))
    await call.send_dtmf("1#")
    digits = incoming.dtmf()
    assert [await anext(digits), await anext(digits)] == ["1", "#"]
    await incoming.send_dtmf("9")
    assert await anext(call.dtmf()) == "9"
    await call.hangup()
    end = await call.wait_ended(5)
    assert (end.by, end.reason) == ("local", "local BYE")
    far_end = await incoming.wait_ended(5)
    assert (far_end.by, far_end.reason) == ("remote", "remote BYE")
    assert await asyncio.wait_for(bob_heard, 5) > 1.0
    assert await asyncio.wait_for(alice_heard, 5) > 1.0
    assert dominant_frequency(tmp_path / "bob.wav") == pytest.approx(1000, abs=10)
    assert dominant_frequency(tmp_path / "alice.wav") == pytest.approx(600, abs=10)
    # the dtmf() iterators end with the call
    assert [d async for d in digits] == []


async def test_callee_hangs_up(pair: tuple[UserAgent, UserAgent]) -> None:
    alice, bob = pair
    bob.on_incoming(lambda call: call.answer())
    call = await alice.call(uri_of(bob))
    await call.wait_answered(5)
    (incoming,) = bob.calls
    await incoming.wait_answered(5)
    await incoming.hangup()
    assert (await call.wait_ended(5)).by == "remote"
    assert (await incoming.wait_ended(5)).by == "local"
    assert await call.read_frame() == b""  # media is closed


@pytest.mark.parametrize(("status", "reason"), [(486, "Busy Here"), (603, "Decline")])
async def test_rejected_call_raises_call_failed_with_the_status(
    pair: tuple[UserAgent, UserAgent], status: int, reason: str
) -> None:
    alice, bob = pair
    bob.on_incoming(lambda call: call.reject(status))
    call = await alice.call(uri_of(bob))
    with pytest.raises(CallFailed) as info:
        await call.wait_answered(5)
    assert (info.value.status, info.value.reason) == (status, reason)
    assert str(status) in str(info.value)
    end = await call.wait_ended(1)
    assert (end.by, end.reason, end.status) == ("remote", "rejected", status)
    assert not await call.play_tone(440, seconds=0.1)  # media never started


async def test_cancel_before_answer(pair: tuple[UserAgent, UserAgent]) -> None:
    alice, bob = pair
    call = await alice.call(uri_of(bob))
    incoming = await wait_for_call(bob)
    await call.wait_ringing(5)
    await call.hangup()  # CANCEL
    with pytest.raises(CallFailed) as info:
        await call.wait_answered(5)
    assert info.value.status == 487
    assert (await call.wait_ended(5)).by == "local"
    end = await incoming.wait_ended(5)
    assert (end.reason, end.by) == ("cancelled", "remote")
    with pytest.raises(CallFailed):
        await incoming.answer()  # too late


async def test_hold_and_resume_change_sdp_direction_and_rtp_flow(
    pair: tuple[UserAgent, UserAgent],
) -> None:
    alice, bob = pair
    bob.on_incoming(lambda call: call.answer())
    call = await alice.call(uri_of(bob))
    await call.wait_answered(5)
    (incoming,) = bob.calls
    await incoming.wait_answered(5)

    async def flows(c: Call, *, stopped: bool = False) -> bool:
        """RTP arrives (the counter grows within 0.3 s), or with ``stopped`` it stops
        (a 0.4 s window without growth), polled for up to 5 s."""
        for _ in range(12):
            before = c.statistics().packets_received
            await asyncio.sleep(0.4 if stopped else 0.3)
            if (c.statistics().packets_received > before) != stopped:
                return True
        return False

    assert await flows(call)
    await call.hold()
    assert call.held and not call.remote_held
    assert call.negotiated[0].local_direction is Direction.SENDONLY
    assert incoming.remote_held and incoming.negotiated[0].local_direction is Direction.RECVONLY
    assert await flows(call, stopped=True)  # bob stopped sending to us
    assert await flows(incoming)  # we still send (music on hold)
    await call.resume()
    assert not call.held and call.negotiated[0].local_direction is Direction.SENDRECV
    assert await flows(call)
    await call.hangup()


async def test_frames_api_with_an_echo_bot(pair: tuple[UserAgent, UserAgent]) -> None:
    alice, bob = pair

    async def echo(call: Call) -> None:
        call.echo = True
        await call.answer()

    bob.on_incoming(echo)
    call = await alice.call(uri_of(bob))
    await call.wait_answered(5)
    tone = list(tone_frames(800, seconds=1.5))

    async def writer() -> None:
        for frame in tone:
            await call.write_frame(frame)

    async def reader() -> bytes:
        pcm = b""
        for _ in range(len(tone) + 10):
            pcm += await call.read_frame()
        return pcm

    _, heard = await asyncio.gather(writer(), reader())
    samples = [
        int.from_bytes(heard[i : i + 2], "little", signed=True) / 32768
        for i in range(0, len(heard), 2)
    ]
    assert rms(samples) > 0.1
    assert dominant_frequency((samples, 8000)) == pytest.approx(800, abs=10)
    with pytest.raises(LocalProtocolError):
        await call.write_frame(b"short")
    await call.hangup()


async def test_call_to_a_silent_host_times_out_naming_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with ua("alice", timers=FASTER) as alice:
            call = await alice.call(f"sip:nobody@127.0.0.1:{port}")
            with pytest.raises(NoResponseError) as info:
                await call.wait_answered(10)
            assert (await call.wait_ended(1)).by is None
    assert str(info.value) == f"no response from 127.0.0.1:{port} (udp) within 1.28 s"


async def test_incoming_iterator_ends_when_the_user_agent_closes() -> None:
    bob = ua("bob")
    await bob.start()
    collected: list[Call] = []

    async def collect() -> None:
        async for call in bob.incoming():
            collected.append(call)

    task = asyncio.ensure_future(collect())
    await asyncio.sleep(0)
    await bob.close()
    await asyncio.wait_for(task, 2)
    assert collected == []
    with pytest.raises(LocalProtocolError):
        await bob.call("sip:alice@127.0.0.1:5")


async def test_everything_is_released_on_exit() -> None:
    before = asyncio.all_tasks()
    async with ua("bob") as bob, ua("alice") as alice:  # alice closes first
        bob.on_incoming(lambda call: call.answer())
        sip_port = alice.local_address[1]
        call = await alice.call(uri_of(bob))
        await call.wait_answered(5)
        assert call.media is not None
        rtp_port = call.media.local_port
        # leave the call up: exiting hangs it up
    assert call.ended and (await call.wait_ended(0)).by == "local"
    assert bob.calls == [] or all(c.ended for c in bob.calls)
    for port in (sip_port, rtp_port, rtp_port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))  # free again
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


def test_bad_arguments_are_refused_up_front() -> None:
    with pytest.raises(LocalProtocolError, match="sip:USER@DOMAIN"):
        UserAgent("alice")
    with pytest.raises(LocalProtocolError, match="udp, tcp or tls"):
        UserAgent("sip:a@b", transport="sctp")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="certfile"):
        UserAgent("sip:a@b", transport="tls", server="127.0.0.1")
    with pytest.raises(LocalProtocolError, match="PCMU"):
        UserAgent("sip:a@b", codecs=["opus"])
    with pytest.raises(LocalProtocolError, match="server"):
        UserAgent("sip:a@b", register=True)


# ------------------------------------------------------------------------ through the server


async def test_register_call_through_the_server_and_unregister_on_exit(server: Server) -> None:
    address = address_of(server)
    async with ua("alice", password="alice-pw", server=address) as alice:
        async with ua("bob", password="bob-pw", server=address) as bob:
            assert alice.registered and bob.registered
            assert len(await bindings(server, "bob")) == 1
            bob.on_incoming(lambda call: call.answer())
            call = await alice.call("sip:bob@localhost")  # via the server: 407, then relayed
            await call.wait_answered(5)
            await call.send_dtmf("5")
            (incoming,) = bob.calls
            assert await asyncio.wait_for(anext(incoming.dtmf()), 5) == "5"
            await call.hangup()
            assert (await incoming.wait_ended(5)).by == "remote"
        assert await bindings(server, "bob") == []  # bob unregistered on exit
        assert len(await bindings(server, "alice")) == 1
        # calling someone who is not registered: the server answers 404/480
        with pytest.raises(CallFailed) as info:
            await (await alice.call("carol")).wait_answered(5)
        assert info.value.status in (404, 480)
        with pytest.raises(CallFailed) as info:
            await (await alice.call("sip:nobody-at-all@localhost")).wait_answered(5)
        assert info.value.status in (404, 480)
    assert await bindings(server, "alice") == []


async def test_busy_and_decline_through_the_server(server: Server) -> None:
    address = address_of(server)
    async with (
        ua("alice", password="alice-pw", server=address) as alice,
        ua("bob", password="bob-pw", server=address) as bob,
    ):
        for status in (486, 603):
            bob.on_incoming(lambda call, s=status: call.reject(s))
            call = await alice.call("sip:bob@localhost")
            with pytest.raises(CallFailed) as info:
                await call.wait_answered(5)
            assert info.value.status == status


async def test_wrong_password_is_an_authentication_error(server: Server) -> None:
    agent = ua("alice", password="not-it", server=address_of(server))
    with pytest.raises(AuthenticationError) as info:
        await agent.start()
    assert str(info.value).startswith("wrong password for alice@localhost")
    assert info.value.status == 401
    assert agent.closed  # released after the failure
    missing = ua("alice", server=address_of(server))
    with pytest.raises(AuthenticationError, match="requires a password"):
        await missing.start()
    stranger = ua("mallory", password="x", server=address_of(server))
    with pytest.raises(RegistrationError):
        await stranger.start()


async def test_registration_timeout_names_the_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        agent = ua("alice", password="pw", server=f"127.0.0.1:{port}", timers=FASTER)
        with pytest.raises(NoResponseError) as info:
            await agent.start()
    assert str(info.value) == f"no response from 127.0.0.1:{port} (udp) within 1.28 s"
    assert agent.closed


async def test_incoming_calls_through_the_server_with_the_iterator(server: Server) -> None:
    address = address_of(server)
    async with (
        ua("alice", password="alice-pw", server=address) as alice,
        ua("bob", password="bob-pw", server=address) as bob,
    ):
        call = await bob.call("alice")
        incoming = await wait_for_call(alice)
        assert incoming.remote == "sip:bob@localhost"
        await incoming.answer()
        await call.wait_answered(5)
        await incoming.hangup()
        assert (await call.wait_ended(5)).by == "remote"


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_register_and_call_over_tcp_and_tls(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    from test_transport_support import make_certs

    certs = make_certs(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", certs.ca)  # the server verifies our listeners too
    config = ServerConfig(
        listen=[f"{transport}:127.0.0.1:0"], domains=["localhost"], db=str(tmp_path / "s.db")
    )
    config.tls.cert, config.tls.key = certs.cert, certs.key
    srv = Server(config)
    await srv.start()
    try:
        for name, password in USERS.items():
            await srv.db.users.put_user(
                UserRecord(
                    username=name, domain="localhost", ha1=ha1_table(name, "localhost", password)
                )
            )
        tls = {"certfile": certs.cert, "keyfile": certs.key, "tls_ca_file": certs.ca}
        extra = tls if transport == "tls" else {}
        address = address_of(srv)
        async with (
            ua("alice", password="alice-pw", server=address, transport=transport, **extra) as alice,
            ua("bob", password="bob-pw", server=address, transport=transport, **extra) as bob,
        ):
            assert alice.registered and bob.registered
            assert bob.contact is not None and f"transport={transport}" in str(bob.contact)
            bob.on_incoming(lambda call: call.answer())
            call = await alice.call("sip:bob@localhost")
            await call.wait_answered(5)
            await call.send_dtmf("3")
            (incoming,) = bob.calls
            assert await asyncio.wait_for(anext(incoming.dtmf()), 5) == "3"
            await incoming.hangup()
            assert (await call.wait_ended(5)).by == "remote"
        assert await bindings(srv, "bob") == []
    finally:
        await srv.stop(grace=0.0)


async def test_registration_is_refreshed_before_it_expires(tmp_path: pathlib.Path) -> None:
    config = ServerConfig(
        listen=["udp:127.0.0.1:0"], domains=["localhost"], db=str(tmp_path / "s.db")
    )
    config.registrar.min_expires = 1
    srv = Server(config)
    await srv.start()
    try:
        await srv.db.users.put_user(
            UserRecord(
                username="alice", domain="localhost", ha1=ha1_table("alice", "localhost", "pw")
            )
        )
        seen: list[str] = []
        agent = ua(
            "alice",
            password="pw",
            server=address_of(srv),
            expires=2,
            trace=lambda record: seen.append(record.first_line),
        )

        def registers() -> int:
            return sum(line.startswith("REGISTER") for line in seen)

        loop = asyncio.get_running_loop()
        async with agent:
            expiry = loop.time() + 2
            assert getattr(agent.registration_event, "expires", None) == 2
            first = registers()
            while registers() == first and loop.time() < expiry + 5:
                await asyncio.sleep(0.05)  # the refresh is due after 1 s (half of 2 s)
            assert registers() > first
            await asyncio.sleep(max(0.0, expiry + 0.5 - loop.time()))  # past the old expiry
            assert agent.registered
            assert len(await bindings(srv, "alice")) == 1
    finally:
        await srv.stop(grace=0.0)


async def test_dtmf_by_sip_info_both_ways(pair: tuple[UserAgent, UserAgent]) -> None:
    alice, bob = pair
    bob.on_incoming(lambda call: call.answer())
    call = await alice.call(uri_of(bob))
    await call.wait_answered(5)
    (incoming,) = bob.calls
    await call.send_dtmf("4*", mode="info")
    digits = incoming.dtmf()
    assert [await anext(digits), await anext(digits)] == ["4", "*"]
    assert incoming.statistics().dtmf_received == 0  # not RFC 4733: SIP INFO
    await incoming.send_dtmf("B", mode="info")
    assert await asyncio.wait_for(anext(call.dtmf()), 5) == "B"
    with pytest.raises(LocalProtocolError):
        await call.send_dtmf("12x")
    await call.hangup()


async def test_early_media_announcement_before_answering(
    pair: tuple[UserAgent, UserAgent], tmp_path: pathlib.Path
) -> None:
    alice, bob = pair
    call = await alice.call(uri_of(bob))
    heard = call.record(tmp_path / "early.wav", max_seconds=1.0)
    incoming = await wait_for_call(bob)
    await incoming.ring(183, early_media=True)
    await call.wait_media(5)  # the caller's audio starts with the 183
    assert not call.answered and call.progress_status == 183
    await incoming.play_tone(700, seconds=1.2)
    assert await asyncio.wait_for(heard, 5) >= 0.9
    assert dominant_frequency(tmp_path / "early.wav") == pytest.approx(700, abs=10)
    await incoming.answer()
    await call.wait_answered(5)
    await call.hangup()


async def test_call_over_ipv6_loopback() -> None:
    async with ua("alice", listen="[::1]:0") as alice, ua("bob", listen="[::1]:0") as bob:
        bob.on_incoming(lambda call: call.answer())
        host, port = bob.local_address
        call = await alice.call(f"sip:bob@[{host}]:{port}")
        await call.wait_answered(5)
        assert call.negotiated[0].remote_address == "::1"
        assert await call.wait_media(5)
        (incoming,) = bob.calls
        await call.send_dtmf("0")
        assert await asyncio.wait_for(anext(incoming.dtmf()), 5) == "0"
        await call.hangup()
