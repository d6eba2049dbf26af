"""The endpoint's synchronous hot path: handlers that answer without a task, sends that
leave without a task, the 2xx/ACK bookkeeping and the address caches behind them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from sipwire.aio import _transport_common as common
from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.apps.uas import Responder
from sipwire.core._errors import LocalProtocolError
from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.transaction import TimerConfig
from sipwire.core.uas2xx import TwoXXRetransmitter

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


@pytest.fixture
async def server() -> AsyncIterator[Endpoint]:
    async with Endpoint(listen=["udp:127.0.0.1:0"], timers=FAST) as ep:
        yield ep


class Peer:
    """A raw UDP socket playing the client."""

    def __init__(self, server: Endpoint) -> None:
        listener = server.transport.listener("UDP")
        assert listener is not None
        self.target = ("127.0.0.1", listener.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def send(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, text.encode(), self.target)

    async def recv(self) -> Response:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), 5)
        msg = parse_message(data)
        assert isinstance(msg, Response)
        return msg

    def close(self) -> None:
        self.sock.close()


def invite(port: int, call_id: str, *, branch: str = "z9hG4bKi1") -> str:
    return (
        f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        f"From: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:alice@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
    )


def in_dialog(method: str, port: int, call_id: str, to: str, seq: int, branch: str) -> str:
    return (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        f"From: <sip:alice@example.test>;tag=a1\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    )


async def test_sync_handler_answers_in_order_and_events_are_lazy(server: Endpoint) -> None:
    """A plain function handler answers 180, 183, 200 with respond_nowait: they leave in
    that order; acked/cancelled made after the fact still report what happened."""
    answered: list[ServerTransaction] = []

    def on_invite(request: Request, tx: ServerTransaction) -> None:
        answered.append(tx)
        tx.respond_nowait(180)
        tx.respond_nowait(183)
        tx.respond_nowait(200, headers=[("Contact", "<sip:bob@127.0.0.1>")])

    server.on("INVITE", on_invite)
    peer = Peer(server)
    try:
        await peer.send(invite(peer.port, "sync-1"))
        got = [await peer.recv() for _ in range(3)]
        assert [r.status for r in got] == [180, 183, 200]
        assert len({r.to.tag for r in got}) == 1  # one To tag per transaction
        ok = got[2]
        await peer.send(
            in_dialog("ACK", peer.port, "sync-1", ok.headers.get("To") or "", 1, "z9hG4bKa1")
        )
        tx = answered[0]
        await asyncio.wait_for(tx.acked.wait(), 5)  # first touched after the ACK came
        assert not tx.cancelled.is_set()
        assert server.statistics()["uas_2xx_pending"] == 0
        with pytest.raises(LocalProtocolError):
            tx.respond_nowait(486)  # a second final response is refused
    finally:
        peer.close()


async def test_cancel_sets_an_event_made_later(server: Endpoint) -> None:
    answered: list[ServerTransaction] = []

    def on_invite(request: Request, tx: ServerTransaction) -> None:
        answered.append(tx)
        tx.respond_nowait(180)

    server.on("INVITE", on_invite)
    peer = Peer(server)
    try:
        await peer.send(invite(peer.port, "cancel-1", branch="z9hG4bKc1"))
        assert (await peer.recv()).status == 180
        await peer.send(
            in_dialog("CANCEL", peer.port, "cancel-1", "<sip:bob@example.test>", 1, "z9hG4bKc1")
        )
        statuses = sorted([(await peer.recv()).status, (await peer.recv()).status])
        assert statuses == [200, 487]  # the CANCEL's 200 and the INVITE's 487
        assert answered[0].cancelled.is_set()
        assert answered[0].final is not None and answered[0].final.status == 487
    finally:
        peer.close()


async def test_responder_call_without_tasks(server: Endpoint) -> None:
    """The built-in responder: INVITE -> 180 + 200 with SDP, ACK, BYE -> 200; a BYE for
    a call it does not know -> 481; all answered without creating a task per request."""
    responder = Responder(server)
    responder.install()
    peer = Peer(server)
    try:
        await peer.send(invite(peer.port, "resp-1"))
        first, second = await peer.recv(), await peer.recv()
        assert (first.status, second.status) == (180, 200)
        assert second.headers.get("Content-Type") == "application/sdp"
        assert second.body.startswith(b"v=0")
        to = second.headers.get("To") or ""
        await peer.send(in_dialog("ACK", peer.port, "resp-1", to, 1, "z9hG4bKa2"))
        await peer.send(in_dialog("BYE", peer.port, "resp-1", to, 2, "z9hG4bKb2"))
        assert (await peer.recv()).status == 200
        await peer.send(in_dialog("BYE", peer.port, "resp-1", to, 3, "z9hG4bKb3"))
        assert (await peer.recv()).status == 481
        assert len(server._tasks) == 0
        assert responder.counters["answered"] == 1 and responder.counters["bye"] == 1
    finally:
        peer.close()


def _request(call_id: str) -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.test",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"),
            ("From", "<sip:alice@example.test>;tag=f1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", call_id),
            ("CSeq", "7 INVITE"),
        ],
    )


def test_2xx_retransmitter_hands_back_its_owner() -> None:
    rtx = TwoXXRetransmitter(t1=0.5, t2=4.0)
    owner = object()
    request = _request("own-1")
    ok = make_response(request, 200, to_tag="t1")
    rtx.start(ok, peer="p", reliable=False, now=0.0, owner=owner)
    ack = Request("ACK", "sip:bob@example.test", [(n, v) for n, v in request.headers.items()])
    ack.headers.set("CSeq", "7 ACK")
    pending = rtx.acknowledge_pending(ack)
    assert pending is not None and pending.owner is owner and pending.response is ok
    assert rtx.acknowledge_pending(ack) is None and len(rtx) == 0
    assert rtx.next_deadline() is None


def test_ip_caches_answer_like_ipaddress_and_stay_bounded() -> None:
    cases = {
        "127.0.0.1": ("127.0.0.1", True),
        "[2001:DB8::1]": ("2001:db8::1", True),
        "::ffff:192.0.2.7": ("192.0.2.7", True),
        "Example.TEST": ("example.test", False),
        "1.2.3": ("1.2.3", False),
    }
    for _ in range(2):  # the second round comes from the caches
        for host, (normalized, is_ip) in cases.items():
            assert common.normalize_ip(host) == normalized
            assert common.is_ip(host) is is_ip
    for i in range(common.IP_CACHE_SIZE + 10):
        common.is_ip(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        common.normalize_ip(f"host{i}.example.test")
    assert len(common._is_ip_cache) <= common.IP_CACHE_SIZE
    assert len(common._normalized_cache) <= common.IP_CACHE_SIZE
    assert (
        common.is_ip("10.0.0.1")
        and common.normalize_ip("HOST1.example.test") == "host1.example.test"
    )


def test_token_pool_gives_distinct_hex_tokens_across_refills() -> None:
    from sipwire.aio.endpoint import _TokenPool

    pool = _TokenPool()
    tokens = [pool.token() for _ in range(3 * _TokenPool.SIZE // _TokenPool.TOKEN_BYTES + 5)]
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)
    assert len(set(tokens)) == len(tokens)


async def test_to_tags_new_request_gets_one_in_dialog_keeps_its_own(server: Endpoint) -> None:
    seen: list[ServerTransaction] = []

    def on_options(request: Request, tx: ServerTransaction) -> None:
        seen.append(tx)
        tx.respond_nowait(200)

    server.on("OPTIONS", on_options)
    peer = Peer(server)
    try:
        await peer.send(
            in_dialog("OPTIONS", peer.port, "tag-1", "<sip:bob@example.test>", 1, "z9hG4bKo1")
        )
        first = await peer.recv()
        assert first.to.tag and first.to.tag == seen[0].to_tag
        await peer.send(
            in_dialog(
                "OPTIONS", peer.port, "tag-1", "<sip:bob@example.test>;tag=mine", 2, "z9hG4bKo2"
            )
        )
        second = await peer.recv()
        assert second.to.tag == "mine"
    finally:
        peer.close()
