"""The asyncio Endpoint on real loopback sockets: server and client APIs end to end."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from sipwire.aio._transport_common import Destination
from sipwire.aio.endpoint import Endpoint, ServerTransaction, TraceRecord
from sipwire.core.message import Request, Response, parse_message
from sipwire.core.transaction import TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


def options(uri: str, call_id: str = "cid-1") -> Request:
    return Request(
        "OPTIONS",
        uri,
        [
            ("From", "<sip:alice@example.test>;tag=a1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", call_id),
            ("CSeq", "1 OPTIONS"),
        ],
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    server = Endpoint(listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], timers=FAST)
    client = Endpoint(listen=["udp:127.0.0.1:0"], timers=FAST)
    async with server, client:
        yield server, client


def port_of(ep: Endpoint, transport: str) -> int:
    listener = ep.transport.listener(transport)
    assert listener is not None
    return listener.port


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_options_round_trip(pair: tuple[Endpoint, Endpoint], transport: str) -> None:
    server, client = pair
    seen: list[Request] = []

    async def on_options(request: Request, tx: ServerTransaction) -> None:
        seen.append(request)
        await tx.respond(200, headers=[("Accept", "application/sdp")])

    server.on("OPTIONS", on_options)
    suffix = "" if transport == "UDP" else ";transport=tcp"
    resp = await client.request(
        options(f"sip:127.0.0.1:{port_of(server, transport)}{suffix}"), timeout=5
    )
    assert resp.status == 200
    assert resp.headers.get("Accept") == "application/sdp"
    assert resp.to.tag  # §8.2.6.2: the UAS adds a To tag
    via = seen[0].top_via
    assert via.transport == transport and via.branch and via.branch.startswith("z9hG4bK")
    assert seen[0].max_forwards == 70
    assert seen[0].headers.get("User-Agent") == "sipwire"


async def test_unhandled_methods_get_405_or_501_with_allow(pair: tuple[Endpoint, Endpoint]) -> None:
    server, client = pair
    server.on("OPTIONS", lambda r, tx: tx.respond(200))
    uri = f"sip:127.0.0.1:{port_of(server, 'UDP')}"
    msg = options(uri, "c-405")
    msg.method = "MESSAGE"
    msg.headers.set("CSeq", "1 MESSAGE")
    resp = await client.request(msg, timeout=5)
    assert resp.status == 405 and "OPTIONS" in (resp.headers.get("Allow") or "")
    unknown = options(uri, "c-501")
    unknown.method = "FROB"
    unknown.headers.set("CSeq", "1 FROB")
    resp = await client.request(unknown, timeout=5)
    assert resp.status == 501


def udp_exchange(port: int, data: bytes, *, count: int = 1, timeout: float = 3.0) -> list[bytes]:
    """Send one datagram from a raw socket and collect ``count`` replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", port))
        return [sock.recvfrom(65535)[0] for _ in range(count)]


async def test_malformed_request_gets_400_with_reason(pair: tuple[Endpoint, Endpoint]) -> None:
    server, _ = pair
    bad = (
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx;rport\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 99999999999 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    replies = await asyncio.to_thread(udp_exchange, port_of(server, "UDP"), bad)
    resp = parse_message(replies[0], validate=False)  # it echoes the bad CSeq
    assert isinstance(resp, Response) and resp.status == 400
    assert "CSeq" in resp.reason or "CSeq" in (resp.headers.get("Warning") or "")
    bad_version = bad.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1).replace(b"99999999999", b"1")
    replies = await asyncio.to_thread(udp_exchange, port_of(server, "UDP"), bad_version)
    resp = parse_message(replies[0], validate=False)
    assert isinstance(resp, Response) and resp.status == 505
    assert server.statistics()["malformed_in"] == 2


INVITE = (
    "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKinv1;rport\r\n"
    "From: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\n"
    "Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "Contact: <sip:alice@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
)


async def test_2xx_is_retransmitted_until_ack(pair: tuple[Endpoint, Endpoint]) -> None:
    """§13.3.1.4: the UAS core resends the 2xx (T1, 2T1, ...) until the ACK arrives."""
    server, _ = pair
    answered: list[ServerTransaction] = []

    async def on_invite(request: Request, tx: ServerTransaction) -> None:
        answered.append(tx)
        await tx.respond(200, headers=[("Contact", "<sip:bob@127.0.0.1>")])

    server.on("INVITE", on_invite)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    try:
        await loop.sock_sendto(
            sock, INVITE.format(port=port).encode(), ("127.0.0.1", port_of(server, "UDP"))
        )
        got: list[Response] = []
        while len([r for r in got if r.status == 200]) < 3:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
            msg = parse_message(data)
            assert isinstance(msg, Response)
            got.append(msg)
        ok = next(r for r in got if r.status == 200)
        ack = (
            f"ACK sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKack1\r\n"
            f"From: <sip:alice@example.test>;tag=a1\r\nTo: {ok.headers.get('To')}\r\n"
            f"Call-ID: inv-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        await loop.sock_sendto(sock, ack.encode(), ("127.0.0.1", port_of(server, "UDP")))
        await asyncio.wait_for(answered[0].acked.wait(), 5)
        assert server.statistics()["2xx_retransmissions"] >= 2
        assert server.statistics()["uas_2xx_pending"] == 0
    finally:
        sock.close()


async def test_invite_cancel_gets_487(pair: tuple[Endpoint, Endpoint]) -> None:
    server, client = pair

    async def on_invite(request: Request, tx: ServerTransaction) -> None:
        await tx.respond(180)
        await asyncio.wait_for(tx.cancelled.wait(), 5)

    server.on("INVITE", on_invite)
    invite = Request(
        "INVITE",
        f"sip:bob@127.0.0.1:{port_of(server, 'UDP')}",
        [
            ("From", "<sip:alice@example.test>;tag=a2"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", "cancel-1"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1>"),
        ],
    )
    handle = client.send_request(invite)
    statuses = []
    async for resp in handle.responses():
        statuses.append(resp.status)
        if resp.status == 180:
            await handle.cancel()
    assert statuses[-1] == 487 and 180 in statuses


async def test_timeout_is_408_and_failover_to_next_target(
    pair: tuple[Endpoint, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = pair
    server.on("OPTIONS", lambda r, tx: tx.respond(200))
    # A UDP port where nobody answers: the client transaction times out (Timer F = 64*T1).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = Destination(transport="UDP", host="127.0.0.1", port=silent.getsockname()[1])
        resp = await client.request(
            options("sip:x@127.0.0.1", "c-408"), destination=dead, timeout=10
        )
        assert resp.status == 408
        live = Destination(transport="UDP", host="127.0.0.1", port=port_of(server, "UDP"))

        async def two_targets(request: Request) -> list[Destination]:
            return [dead, live]

        monkeypatch.setattr(client, "resolve", two_targets)
        handle = client.send_request(options("sip:x@example.test", "c-failover"))
        resp = await handle.wait_final(10)
        assert resp.status == 200 and handle.destination == live


async def test_trace_hook_sees_both_directions(pair: tuple[Endpoint, Endpoint]) -> None:
    server, client = pair
    records: list[TraceRecord] = []
    client.trace = records.append
    server.on("OPTIONS", lambda r, tx: tx.respond(200))
    await client.request(options(f"sip:127.0.0.1:{port_of(server, 'UDP')}", "c-trace"), timeout=5)
    assert [(r.direction, r.first_line.split()[0]) for r in records] == [
        ("out", "OPTIONS"),
        ("in", "SIP/2.0"),
    ]
