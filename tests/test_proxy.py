"""The stateful proxy on loopback (RFC 3261 §16): calls, Record-Route, forking, responses.

User agents are Endpoints; the callee is put in the location store directly (the
registrar's own tests cover REGISTER). See tests/test_proxy_harness.py for the pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sipwire.aio.endpoint import ServerTransaction
from sipwire.core.message import Request, Response
from sipwire.core.uri import SipURI
from test_proxy_harness import (
    DOMAIN,
    WAIT,
    Net,
    answer,
    collect,
    in_dialog,
    invite,
    port_of,
    request,
    ring_until_cancelled,
    route_destination,
)

BOB = f"sip:bob@{DOMAIN}"


async def ack_and_bye(net: Net, inv: Request, ok: Response) -> Response:
    """The caller's ACK (stateless, by the route set) and BYE (a transaction)."""
    ack = in_dialog("ACK", inv, ok, 1)
    await net.uac.ep.send(ack, route_destination(ack), add_via=True)
    bye = in_dialog("BYE", inv, ok, 2)
    return await net.uac.ep.request(bye, destination=route_destination(bye), timeout=WAIT)


async def test_call_through_the_proxy_with_record_route() -> None:
    async with Net() as net:
        bob = await net.ua("bob", answer(180, 200))
        await net.bind("bob", bob)
        inv = invite(net.uac.ep, BOB)
        responses = await collect(net.uac.ep.send_request(inv, destination=net.proxy_dest()))
        statuses = [r.status for r in responses]
        assert 180 in statuses and statuses[-1] == 200
        ok = responses[-1]
        # What the callee got (§16.6): its contact as Request-URI, Max-Forwards - 1, our
        # Record-Route (one value: UDP in and out), our Via with a loop-hash branch.
        got = bob.last("INVITE")
        assert got.uri_text == bob.uri()
        assert got.max_forwards == 69
        assert [str(a) for a in got.record_route] == [
            f"<sip:127.0.0.1:{net.proxy_port};transport=udp;lr>"
        ]
        assert got.via[0].branch is not None and got.via[0].branch.startswith("z9hG4bKsw")
        assert got.via[0].port == net.proxy_port and len(got.via) == 2
        assert got.body == inv.body
        # The response lost our Via and kept the Record-Route for the caller's route set.
        assert len(ok.via) == 1 and ok.record_route == got.record_route
        bye_response = await ack_and_bye(net, inv, ok)
        assert bye_response.status == 200
        await asyncio.wait_for(bob.got_ack.wait(), WAIT)
        assert bob.acks[0].headers.get("Route") is None  # we popped our own Route entry
        bye = bob.last("BYE")
        assert bye.uri_text == bob.uri() and "Route" not in bye.headers
        assert net.proxy.stats["forwarded"] >= 2


async def test_double_record_route_between_udp_and_tcp() -> None:
    """RFC 5658: a request that changes transport gets two Record-Route values; both are
    popped from requests of the dialog, in either direction."""
    async with Net() as net:
        bob = await net.ua("bob", answer(200), listen=("tcp:127.0.0.1:0", "udp:127.0.0.1:0"))
        await net.bind("bob", bob, transport="TCP")
        inv = invite(net.uac.ep, BOB)
        responses = await collect(net.uac.ep.send_request(inv, destination=net.proxy_dest()))
        ok = responses[-1]
        assert ok.status == 200
        got = bob.last("INVITE")
        assert got.top_via.transport == "TCP"
        assert [str(a) for a in got.record_route] == [
            f"<sip:127.0.0.1:{port_of(net.proxy_ep, 'TCP')};transport=tcp;lr>",
            f"<sip:127.0.0.1:{net.proxy_port};transport=udp;lr>",
        ]
        assert (await ack_and_bye(net, inv, ok)).status == 200
        assert bob.last("BYE").headers.get("Route") is None
        # The callee hangs up a second call: its route set is the Record-Route in order.
        inv2 = invite(net.uac.ep, BOB)
        ok2 = (await collect(net.uac.ep.send_request(inv2, destination=net.proxy_dest())))[-1]
        bye = in_dialog("BYE", inv2, ok2, 1, callee=True)
        assert route_destination(bye).transport == "TCP"
        reply = await bob.ep.request(bye, destination=route_destination(bye), timeout=WAIT)
        assert reply.status == 200
        caller_bye = net.uac.last("BYE")
        assert caller_bye.headers.get("Route") is None
        assert caller_bye.top_via.transport == "UDP"


async def test_strict_router_fix_up_and_popping_our_routes() -> None:
    """§16.4: a Request-URI that is our Record-Route (a strict router upstream) is
    replaced by the last Route value; our own Route values are removed."""
    async with Net() as net:
        bob = await net.ua("bob")
        rr = f"sip:127.0.0.1:{net.proxy_port};transport=udp;lr"
        strict = request(net.uac.ep, "MESSAGE", rr, Route=f"<{bob.uri()}>")
        strict.headers.set("To", f"<{BOB}>;tag=x1")
        resp = await net.uac.ep.request(strict, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200
        got = bob.last("MESSAGE")
        assert got.uri_text == bob.uri() and "Route" not in got.headers
        loose = request(
            net.uac.ep,
            "INFO",
            bob.uri(),
            Route=f"<{rr}>, <sip:{DOMAIN};lr>",
        )
        loose.headers.set("To", f"<{BOB}>;tag=x2")
        resp = await net.uac.ep.request(loose, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200
        got = bob.last("INFO")
        assert got.uri_text == bob.uri() and "Route" not in got.headers


async def test_path_of_the_binding_becomes_route() -> None:
    async with Net() as net:
        edge = await net.ua("edge", answer(200))
        bob = await net.ua("bob")
        edge_uri = f"sip:127.0.0.1:{port_of(edge.ep)};lr"
        await net.bind("bob", bob, path=(f"<{edge_uri}>",))
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert responses[-1].status == 200
        got = edge.last("INVITE")  # sent to the first Path hop ...
        assert [str(a.uri) for a in got.route] == [edge_uri]
        assert got.uri_text == bob.uri()  # ... with the contact as Request-URI
        assert not bob.requests


async def test_nat_binding_is_reached_at_its_source() -> None:
    """A contact that cannot be reached (a private address) is reached where its REGISTER
    came from; over TCP the registered connection is reused."""
    async with Net() as net:
        bob = await net.ua("bob", answer(200))
        await net.bind(
            "bob",
            bob,
            contact="sip:bob@192.0.2.1:5062",
            source=f"UDP 127.0.0.1:{port_of(bob.ep)}",
        )
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert responses[-1].status == 200
        assert bob.last("INVITE").uri_text == "sip:bob@192.0.2.1:5062"
        # TCP: carol registers over a connection she opened (no TCP listener at all).
        carol = await net.ua("carol", answer(200))
        registered: list[str] = []

        async def on_register(req: Request, tx: ServerTransaction) -> None:
            src = tx.source
            registered.append(f"{src.transport} {src.remote[0]}:{src.remote[1]}")
            outcome = await net.registrar.register(req, source=registered[-1])
            await tx.respond(outcome.status, outcome.reason, headers=outcome.headers)

        net.proxy_ep.on("REGISTER", on_register)
        reg = request(carol.ep, "REGISTER", f"sip:{DOMAIN}")
        reg.headers.set("To", f"<sip:carol@{DOMAIN}>")
        reg.headers.set("From", f"<sip:carol@{DOMAIN}>;tag=r1")
        reg.headers.add("Contact", "<sip:carol@10.9.9.9:5999;transport=tcp>")
        resp = await carol.ep.request(reg, destination=net.proxy_dest("TCP"), timeout=WAIT)
        assert resp.status == 200 and registered[0].startswith("TCP 127.0.0.1:")
        responses = await collect(
            net.uac.ep.send_request(
                invite(net.uac.ep, f"sip:carol@{DOMAIN}"), destination=net.proxy_dest()
            )
        )
        assert responses[-1].status == 200
        got = carol.last("INVITE")
        assert got.uri_text == "sip:carol@10.9.9.9:5999;transport=tcp"
        assert got.top_via.transport == "TCP"


async def test_parallel_fork_cancels_the_other_branch() -> None:
    async with Net() as net:
        ringing = await net.ua("bob2", ring_until_cancelled())

        async def answer_after_other_rings(req: Request, tx: ServerTransaction) -> None:
            await tx.respond(180)
            await ringing.wait_request("INVITE")
            await tx.respond(200, headers=[("Contact", f"<{req.uri_text}>")])

        winner = await net.ua("bob1", answer_after_other_rings)
        await net.bind("bob", winner)
        await net.bind("bob", ringing)
        inv = invite(net.uac.ep, BOB)
        responses = await collect(net.uac.ep.send_request(inv, destination=net.proxy_dest()))
        assert responses[-1].status == 200
        assert responses[-1].contact[0].uri == SipURI.parse(winner.uri())
        loser_tx = ringing.transactions[0]
        await asyncio.wait_for(loser_tx.cancelled.wait(), WAIT)
        assert loser_tx.final is not None and loser_tx.final.status == 487
        assert 487 not in [r.status for r in responses]
        assert (await ack_and_bye(net, inv, responses[-1])).status == 200
        assert winner.last("BYE") is not None and not [
            r for r in ringing.requests if r.method == "BYE"
        ]


async def test_sequential_fork_by_q_with_181() -> None:
    async with Net(fork="sequential") as net:
        low = await net.ua("low", answer(200))
        high = await net.ua("high", answer(180, 486))
        await net.bind("bob", low, q=0.5)
        await net.bind("bob", high, q=1.0)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        statuses = [r.status for r in responses]
        assert statuses[-1] == 200
        assert 181 in statuses and statuses.index(180) < statuses.index(181)
        assert high.transactions[0].final is not None
        assert high.transactions[0].final.status == 486
        assert len(low.requests) == 1


async def test_sequential_timeout_moves_on_to_the_next_target() -> None:
    async with Net(fork="sequential", sequential_timeout=0.3) as net:
        first = await net.ua("first", ring_until_cancelled())
        second = await net.ua("second", answer(200))
        await net.bind("bob", first, q=0.9)
        await net.bind("bob", second, q=0.1)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert responses[-1].status == 200
        assert first.transactions[0].cancelled.is_set()


async def best_of(*statuses: int, **options: object) -> Response:
    async with Net(**options) as net:
        for i, status in enumerate(statuses):
            ua = await net.ua(f"b{i}", answer(status))
            await net.bind("bob", ua)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        return responses[-1]


async def test_best_response_prefers_6xx_then_busy() -> None:
    """§16.7 step 6: a 6xx wins; within 4xx, 486 Busy Here says more than 404."""
    assert (await best_of(404, 486, 603)).status == 603
    assert (await best_of(404, 486)).status == 486
    assert (await best_of(500, 404)).status == 404


async def test_503_from_downstream_becomes_500() -> None:
    response = await best_of(503)
    assert response.status == 500 and "Retry-After" not in response.headers


async def test_challenges_of_all_branches_are_aggregated() -> None:
    async with Net() as net:
        for realm in ("a.test", "b.test"):

            async def challenge(req: Request, tx: ServerTransaction, realm: str = realm) -> None:
                header = f'Digest realm="{realm}", nonce="n-{realm}", algorithm=MD5'
                await tx.respond(407, headers=[("Proxy-Authenticate", header)])

            ua = await net.ua(realm, challenge)
            await net.bind("bob", ua)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        final = responses[-1]
        assert final.status == 407
        realms = sorted(v.split('"')[1] for v in final.headers.values("Proxy-Authenticate"))
        assert realms == ["a.test", "b.test"]


async def test_caller_cancel_reaches_every_branch_and_gets_487() -> None:
    async with Net() as net:
        one = await net.ua("one", ring_until_cancelled())
        two = await net.ua("two", ring_until_cancelled())
        await net.bind("bob", one)
        await net.bind("bob", two)
        handle = net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        statuses: list[int] = []

        async def run() -> None:
            async for response in handle.responses():
                statuses.append(response.status)
                if response.status == 180 and statuses.count(180) == 1:
                    await two.wait_request("INVITE")
                    await handle.cancel()

        await asyncio.wait_for(run(), WAIT)
        assert statuses[-1] == 487
        for ua in (one, two):
            assert ua.transactions[0].cancelled.is_set()


async def test_timer_c_cancels_a_ringing_branch() -> None:
    """§16.8: a branch ringing longer than timer C is CANCELled; the caller gets 408."""
    async with Net(timer_c=0.4) as net:
        slow = await net.ua("slow", ring_until_cancelled())
        await net.bind("bob", slow)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert [r.status for r in responses][-1] == 408
        assert slow.transactions[0].cancelled.is_set()
        assert net.proxy.stats["timer_c_fired"] == 1


async def test_3xx_contacts_are_recursed() -> None:
    async with Net() as net:
        target = await net.ua("target", answer(200))

        async def redirect(req: Request, tx: ServerTransaction) -> None:
            await tx.respond(302, headers=[("Contact", f"<{target.uri()}>")])

        mover = await net.ua("mover2", redirect)
        await net.bind("bob", mover)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        statuses = [r.status for r in responses]
        assert statuses[-1] == 200 and 181 in statuses
        assert target.last("INVITE").uri_text == target.uri()
    async with Net(recurse_3xx=False) as net:
        mover = await net.ua("mover", redirect)
        await net.bind("bob", mover)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert responses[-1].status == 302


async def test_non_invite_requests_are_proxied() -> None:
    async with Net() as net:
        bob = await net.ua("bob")
        await net.bind("bob", bob)
        message = request(net.uac.ep, "MESSAGE", BOB, Content_Type="text/plain")
        message.body = b"hello"
        resp = await net.uac.ep.request(message, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200
        got = bob.last("MESSAGE")
        assert got.body == b"hello" and got.max_forwards == 69


async def test_3xx_to_one_of_our_users_uses_the_location_service() -> None:
    async with Net() as net:
        carol = await net.ua("carol", answer(200))
        await net.bind("carol", carol)

        async def forward_to(user: str) -> Callable[[Request, ServerTransaction], Awaitable[None]]:
            async def behaviour(req: Request, tx: ServerTransaction) -> None:
                await tx.respond(302, headers=[("Contact", f"<sip:{user}@{DOMAIN}>")])

            return behaviour

        bob = await net.ua("bob", await forward_to("carol"))
        await net.bind("bob", bob)
        responses = await collect(
            net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        )
        assert responses[-1].status == 200
        assert carol.last("INVITE").uri_text == carol.uri()
        # A 3xx to one of our users who is not registered cannot be recursed: it stays.
        dave = await net.ua("dave", await forward_to("nobody"))
        await net.bind("dave", dave)
        responses = await collect(
            net.uac.ep.send_request(
                invite(net.uac.ep, f"sip:dave@{DOMAIN}"), destination=net.proxy_dest()
            )
        )
        final = responses[-1]
        assert final.status == 302
        assert [str(a.uri) for a in final.contact] == [f"sip:nobody@{DOMAIN}"]
