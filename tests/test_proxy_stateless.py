"""Stateless relaying (RFC 3261 §16.11) and the redirect server mode."""

from __future__ import annotations

import asyncio
import socket

from sipwire.aio.endpoint import ServerTransaction
from sipwire.core.message import Request, Response, parse_message
from test_proxy_harness import (
    DOMAIN,
    WAIT,
    Net,
    answer,
    collect,
    in_dialog,
    invite,
    request,
    ring_until_cancelled,
    route_destination,
)

BOB = f"sip:bob@{DOMAIN}"


async def test_stateless_invite_200_ack_bye() -> None:
    async with Net(stateless=True) as net:
        bob = await net.ua("bob", answer(180, 200))
        await net.bind("bob", bob)
        inv = invite(net.uac.ep, BOB)
        responses = await collect(net.uac.ep.send_request(inv, destination=net.proxy_dest()))
        statuses = [r.status for r in responses]
        assert statuses[-1] == 200 and 180 in statuses
        ok = responses[-1]
        got = bob.last("INVITE")
        assert got.uri_text == bob.uri() and got.max_forwards == 69
        assert [str(a) for a in got.record_route] == [
            f"<sip:127.0.0.1:{net.proxy_port};transport=udp;lr>"
        ]
        ack = in_dialog("ACK", inv, ok, 1)
        await net.uac.ep.send(ack, route_destination(ack), add_via=True)
        await asyncio.wait_for(bob.got_ack.wait(), WAIT)
        bye = in_dialog("BYE", inv, ok, 2)
        reply = await net.uac.ep.request(bye, destination=route_destination(bye), timeout=WAIT)
        assert reply.status == 200 and bob.last("BYE").headers.get("Route") is None
        # No transaction was ever made on the proxy.
        stats = net.proxy_ep.statistics()
        assert stats["transactions_live"] == 0
        assert net.proxy.stats["forwarded_stateless"] >= 3
        assert net.proxy.stats["responses_stateless"] >= 3


async def test_stateless_retransmissions_and_cancel_map_to_one_downstream_branch() -> None:
    """The branch is derived from the received one: a retransmitted INVITE reaches the
    callee's server transaction as a retransmission, and the CANCEL matches it."""
    async with Net(stateless=True) as net:
        bob = await net.ua("bob", ring_until_cancelled())
        await net.bind("bob", bob)
        seen_branches: list[str | None] = []
        bob.ep.trace = lambda rec: (
            seen_branches.append(rec.message.top_via.branch)
            if rec.direction == "in" and rec.first_line.startswith("INVITE")
            else None
        )
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            head = (
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsl-1;rport\r\n"
                f"From: <sip:carol@elsewhere.test>;tag=c1\r\nTo: <{BOB}>\r\n"
                "Call-ID: sl-cancel\r\nMax-Forwards: 70\r\n"
            )
            inv = (
                f"INVITE {BOB} SIP/2.0\r\n{head}CSeq: 1 INVITE\r\n"
                f"Contact: <sip:carol@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
            )
            target = ("127.0.0.1", net.proxy_port)
            await loop.sock_sendto(sock, inv.encode(), target)
            await bob.wait_request("INVITE")
            await loop.sock_sendto(sock, inv.encode(), target)  # a retransmission

            async def next_response() -> Response:
                while True:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 65535), WAIT)
                    msg = parse_message(data)
                    assert isinstance(msg, Response)
                    return msg

            async def until_status(status: int) -> Response:
                while True:
                    resp = await next_response()
                    if resp.status == status:
                        return resp

            ringing = await until_status(180)
            assert ringing.top_via.branch == "z9hG4bKsl-1" and len(ringing.via) == 1

            async def two_copies() -> None:
                while len(seen_branches) < 2:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(two_copies(), WAIT)
            assert seen_branches[0] == seen_branches[1]
            assert len(bob.requests) == 1  # the callee absorbed the retransmission
            cancel = f"CANCEL {BOB} SIP/2.0\r\n{head}CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
            await loop.sock_sendto(sock, cancel.encode(), target)
            terminated = await until_status(487)
            assert terminated.cseq.method == "INVITE"
        assert bob.transactions[0].cancelled.is_set()


async def test_stateless_errors_are_answered_statelessly() -> None:
    async with Net(stateless=True) as net:
        uac = net.uac.ep
        resp = await uac.request(
            request(uac, "MESSAGE", f"sip:nobody@{DOMAIN}"),
            destination=net.proxy_dest(),
            timeout=WAIT,
        )
        assert resp.status == 404 and resp.to.tag and resp.to.tag.startswith("sl")
        resp = await uac.request(
            request(uac, "MESSAGE", BOB, Max_Forwards="0"),
            destination=net.proxy_dest(),
            timeout=WAIT,
        )
        assert resp.status == 483


async def test_stateless_with_an_authenticator_refuses_relaying() -> None:
    class NeverCalled:
        async def authorize(self, request: Request, tx: ServerTransaction) -> bool:
            raise AssertionError("a stateless proxy cannot challenge")

    async with Net(stateless=True, auth=NeverCalled()) as net:
        outside = await net.ua("outside")
        bob = await net.ua("bob")
        await net.bind("bob", bob)
        uac = net.uac.ep
        resp = await uac.request(
            request(uac, "MESSAGE", outside.uri()), destination=net.proxy_dest(), timeout=WAIT
        )
        assert resp.status == 403 and not outside.requests
        resp = await uac.request(
            request(uac, "MESSAGE", BOB), destination=net.proxy_dest(), timeout=WAIT
        )
        assert resp.status == 200 and bob.requests


async def test_stateless_leaves_register_for_our_domain_to_the_registrar() -> None:
    async with Net(stateless=True) as net:
        net.proxy_ep.on("REGISTER", lambda r, tx: tx.respond(200, "Registrar here"))
        reg = request(net.uac.ep, "REGISTER", f"sip:{DOMAIN}", Contact="<sip:a@127.0.0.1>")
        resp = await net.uac.ep.request(reg, destination=net.proxy_dest(), timeout=WAIT)
        assert (resp.status, resp.reason) == (200, "Registrar here")


async def test_redirect_mode_answers_302_with_contacts_in_q_order() -> None:
    async with Net(mode="redirect", user_exists=lambda aor: aor.startswith("sip:known@")) as net:
        desk = await net.ua("desk")
        mobile = await net.ua("mobile")
        await net.bind("bob", desk, q=0.3)
        await net.bind("bob", mobile, q=0.8)
        uac = net.uac.ep
        resp = await uac.request(invite(uac, BOB), destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 302
        assert [str(a) for a in resp.contact] == [
            f"<{mobile.uri()}>;q=0.8",
            f"<{desk.uri()}>;q=0.3",
        ]
        assert not desk.requests and not mobile.requests
        for user, status in (("known", 480), ("unknown", 404)):
            resp = await uac.request(
                invite(uac, f"sip:{user}@{DOMAIN}"), destination=net.proxy_dest(), timeout=WAIT
            )
            assert resp.status == status
