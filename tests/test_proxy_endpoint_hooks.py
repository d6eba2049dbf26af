"""The two Endpoint hooks the proxy needs (RFC 3261 §16.7 step 9, §16.11).

* ``ClientTransaction.on_response``: every response of a client transaction, including
  the 2xx retransmissions of a UAS waiting for its ACK, which ``responses()`` no longer
  yields once it has returned the first final response.
* ``Endpoint.on_stateless_request``: requests reach the handler with their Source and
  no server transaction (no 100 Trying, no automatic answer, no retransmission).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from sipwire.aio._transport_common import Source
from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.transaction import TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    server = Endpoint(listen=["udp:127.0.0.1:0"], timers=FAST)
    client = Endpoint(listen=["udp:127.0.0.1:0"], timers=FAST)
    async with server, client:
        yield server, client


def port_of(ep: Endpoint) -> int:
    listener = ep.transport.listener("UDP")
    assert listener is not None
    return listener.port


def invite(uri: str, call_id: str) -> Request:
    return Request(
        "INVITE",
        uri,
        [
            ("From", "<sip:alice@example.test>;tag=a1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1>"),
        ],
    )


async def test_on_response_sees_2xx_retransmissions_after_responses_ended(
    pair: tuple[Endpoint, Endpoint],
) -> None:
    server, client = pair

    async def on_invite(request: Request, tx: ServerTransaction) -> None:
        await tx.respond(180)
        await tx.respond(200, headers=[("Contact", "<sip:bob@127.0.0.1>")])

    server.on("INVITE", on_invite)
    handle = client.send_request(invite(f"sip:bob@127.0.0.1:{port_of(server)}", "hook-1"))
    seen: list[int] = []
    three_ok = asyncio.Event()

    def on_response(response: Response) -> None:
        seen.append(response.status)
        if seen.count(200) >= 3:
            three_ok.set()

    handle.on_response = on_response
    iterated = [r.status async for r in handle.responses()]
    assert iterated[-1] == 200  # the iterator ends at the first final response
    # No ACK is sent: the UAS retransmits its 200 (T1, 2T1, ...) and each reaches the hook.
    await asyncio.wait_for(three_ok.wait(), 5)
    assert seen[0] == 180 and seen.count(200) >= 3


async def test_on_response_sees_synthesized_timeout() -> None:
    async with Endpoint(listen=["udp:127.0.0.1:0"], timers=FAST) as client:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            req = Request(
                "OPTIONS",
                f"sip:127.0.0.1:{silent.getsockname()[1]}",
                [
                    ("From", "<sip:a@example.test>;tag=1"),
                    ("To", "<sip:b@example.test>"),
                    ("Call-ID", "hook-408"),
                    ("CSeq", "1 OPTIONS"),
                ],
            )
            handle = client.send_request(req)
            seen: list[int] = []
            handle.on_response = lambda r: seen.append(r.status)
            final = await handle.wait_final(10)
    assert final.status == 408 and seen == [408]


async def test_stateless_handler_gets_requests_without_transactions(
    pair: tuple[Endpoint, Endpoint],
) -> None:
    server, _ = pair
    got: list[tuple[Request, Source]] = []
    arrived = asyncio.Event()

    def handler(request: Request, source: Source) -> bool:
        if request.method == "OPTIONS":
            return False  # not taken: the transaction layer and ep.on("OPTIONS") answer it
        got.append((request, source))
        arrived.set()
        return True

    server.on_stateless_request(handler)
    server.on("OPTIONS", lambda r, tx: tx.respond(200))
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        raw = (
            f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsl1;rport\r\n"
            "From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>\r\n"
            "Call-ID: sl-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        await loop.sock_sendto(sock, raw.encode(), ("127.0.0.1", port_of(server)))
        await asyncio.wait_for(arrived.wait(), 5)
        request, source = got[0]
        assert request.method == "INVITE" and source.remote == ("127.0.0.1", port)
        assert request.top_via.rport == port  # RFC 3581 still applied by the transport
        # No transaction: no 100 Trying arrives, even after the Timer-Trying delay.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(sock, 65535), 0.5)
        assert server.statistics()["transactions_live"] == 0
        # The handler answers statelessly.
        await server.send(make_response(request, 486), source)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        reply = parse_message(data)
        assert isinstance(reply, Response) and reply.status == 486
        # A request the handler declines goes through a transaction as usual.
        options = raw.replace("INVITE", "OPTIONS").replace("z9hG4bKsl1", "z9hG4bKsl2")
        await loop.sock_sendto(sock, options.encode(), ("127.0.0.1", port_of(server)))
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
    reply = parse_message(data)
    assert isinstance(reply, Response) and reply.status == 200
    assert reply.cseq.method == "OPTIONS" and len(got) == 1
