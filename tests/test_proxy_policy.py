"""Proxy validation (§16.3), targets (§16.5: location, static routes, RFC 3263, outbound
proxy), the routing hook, admission (never an open relay), and the stateless paths of a
stateful proxy (ACK, stray responses, unmatched CANCEL, 2xx retransmissions)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable

import pytest

from sipwire.aio.endpoint import ServerTransaction
from sipwire.apps.routing import Redirect, Reject, Relay, RouteTable, RoutingContext
from sipwire.core.message import Request, Response, parse_message
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
    route_destination,
)

BOB = f"sip:bob@{DOMAIN}"


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


# --------------------------------------------------------------------------- §16.3


async def test_validation_statuses() -> None:
    async with Net() as net:
        bob = await net.ua("bob")
        await net.bind("bob", bob)
        uac = net.uac.ep
        dest = net.proxy_dest()
        mail = request(uac, "MESSAGE", "mailto:bob@example.test")
        assert (await uac.request(mail, destination=dest, timeout=WAIT)).status == 416
        hops = request(uac, "MESSAGE", BOB, Max_Forwards="0")
        assert (await uac.request(hops, destination=dest, timeout=WAIT)).status == 483
        bad = request(uac, "MESSAGE", BOB, Max_Forwards="abc")
        resp = await uac.request(bad, destination=dest, timeout=WAIT)
        assert resp.status == 400 and "Max-Forwards" in resp.reason
        ext = request(uac, "MESSAGE", BOB, Proxy_Require="foo, bar")
        resp = await uac.request(ext, destination=dest, timeout=WAIT)
        assert resp.status == 420 and resp.headers.get("Unsupported") == "foo, bar"
        assert not bob.requests  # nothing was forwarded
        # OPTIONS with Max-Forwards 0 is answered by the proxy itself (§16.3 item 3).
        ping = request(uac, "OPTIONS", BOB, Max_Forwards="0")
        resp = await uac.request(ping, destination=dest, timeout=WAIT)
        assert resp.status == 200 and "INVITE" in (resp.headers.get("Allow") or "")
        # ... and so is an OPTIONS addressed to the proxy.
        ping = request(uac, "OPTIONS", f"sip:127.0.0.1:{net.proxy_port}")
        resp = await uac.request(ping, destination=dest, timeout=WAIT)
        assert resp.status == 200 and not bob.requests


async def test_loop_is_482_and_a_spiral_is_not() -> None:
    async with Net() as net:
        me = f"UDP 127.0.0.1:{net.proxy_port}"
        # sip:loop@ is bound to itself through this proxy: the same request comes back.
        await net.bind("loop", net.uac, contact=f"sip:loop@{DOMAIN}", source=me)
        responses = await collect(
            net.uac.ep.send_request(
                invite(net.uac.ep, f"sip:loop@{DOMAIN}"), destination=net.proxy_dest()
            )
        )
        assert responses[-1].status == 482
        assert net.proxy.stats["loops"] == 1
        # sip:alias@ is bound to sip:bob@ (through this proxy): a spiral, then bob.
        bob = await net.ua("bob", answer(200))
        await net.bind("bob", bob)
        await net.bind("alias", net.uac, contact=BOB, source=me)
        responses = await collect(
            net.uac.ep.send_request(
                invite(net.uac.ep, f"sip:alias@{DOMAIN}"), destination=net.proxy_dest()
            )
        )
        assert responses[-1].status == 200
        got = bob.last("INVITE")
        assert len(got.via) == 3 and got.max_forwards == 68
        assert all(v.port == net.proxy_port for v in got.via[:2])


async def test_unknown_user_404_and_known_user_without_binding_480() -> None:
    async with Net() as net:
        resp = await net.uac.ep.request(
            request(net.uac.ep, "MESSAGE", f"sip:nobody@{DOMAIN}"),
            destination=net.proxy_dest(),
            timeout=WAIT,
        )
        assert resp.status == 404

    async def exists(aor: str) -> bool:
        return aor == f"sip:known@{DOMAIN}"

    for checker in (exists, lambda aor: aor == f"sip:known@{DOMAIN}"):
        async with Net(user_exists=checker) as net:
            uac = net.uac.ep
            known = request(uac, "MESSAGE", f"sip:known@{DOMAIN}")
            assert (
                await uac.request(known, destination=net.proxy_dest(), timeout=WAIT)
            ).status == 480
            other = request(uac, "MESSAGE", f"sip:other@{DOMAIN}")
            assert (
                await uac.request(other, destination=net.proxy_dest(), timeout=WAIT)
            ).status == 404


async def test_request_to_our_address_looks_up_the_primary_domain() -> None:
    async with Net() as net:
        bob = await net.ua("bob")
        await net.bind("bob", bob)
        msg = request(net.uac.ep, "MESSAGE", f"sip:bob@127.0.0.1:{net.proxy_port}")
        resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200 and bob.last("MESSAGE").uri_text == bob.uri()


# --------------------------------------------------------------------------- routes


def dead_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


async def test_foreign_domain_by_rfc3263_and_outbound_proxy() -> None:
    async with Net() as net:
        carol = await net.ua("carol")
        msg = request(net.uac.ep, "MESSAGE", carol.uri())  # a foreign host: RFC 3263
        resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200 and carol.last("MESSAGE").max_forwards == 69
    async with Net() as net:
        gateway = await net.ua("gw")
        net.proxy.outbound_proxy = SipURI.parse(gateway.uri())
        msg = request(net.uac.ep, "MESSAGE", "sip:dave@far.invalid")
        resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200
        assert gateway.last("MESSAGE").uri_text == "sip:dave@far.invalid"


async def test_static_route_fails_over_to_the_second_hop() -> None:
    async with Net() as net:
        second = await net.ua("second", answer(200))
        dead = dead_tcp_port()
        net.proxy.routes = RouteTable.parse(
            [rf"@far\.test=sip:127.0.0.1:{dead};transport=tcp,{second.uri()}"]
        )
        responses = await collect(
            net.uac.ep.send_request(
                invite(net.uac.ep, "sip:carol@far.test"), destination=net.proxy_dest()
            )
        )
        assert responses[-1].status == 200
        got = second.last("INVITE")
        assert got.uri_text == "sip:carol@far.test"  # a next hop: the Request-URI stays


async def test_static_route_fails_over_after_a_udp_timeout() -> None:
    """An INVITE (the proxy's 100 Trying keeps the caller waiting) fails over when the
    first hop never answers (Timer B, RFC 3263 §4.3)."""
    async with Net() as net:
        second = await net.ua("second", answer(200))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            net.proxy.routes = RouteTable.parse(
                [f"^sip:.*@far=sip:127.0.0.1:{silent.getsockname()[1]},{second.uri()}"]
            )
            responses = await collect(
                net.uac.ep.send_request(
                    invite(net.uac.ep, "sip:carol@far"), destination=net.proxy_dest()
                )
            )
        assert responses[-1].status == 200
        assert second.last("INVITE").uri_text == "sip:carol@far"


async def test_weighted_static_route_spreads_requests() -> None:
    async with Net() as net:
        a = await net.ua("a")
        b = await net.ua("b")
        draws = itertools.cycle([0.1, 0.5, 0.9, 0.5])  # 2 draws per request: a, then b
        net.proxy.routes = RouteTable.parse(
            [f"@far=sip:127.0.0.1:{port_of(a.ep)};weight=1,sip:127.0.0.1:{port_of(b.ep)};weight=1"],
            rand=lambda: next(draws),
        )
        for _ in range(4):
            msg = request(net.uac.ep, "MESSAGE", "sip:x@far")
            resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
            assert resp.status == 200
        assert len(a.requests) == 2 and len(b.requests) == 2


async def test_static_route_for_an_unregistered_local_number() -> None:
    async with Net() as net:
        gateway = await net.ua("gw")
        net.proxy.routes = RouteTable.parse(
            [rf"^sip:\+?[0-9]+@=sip:127.0.0.1:{port_of(gateway.ep)}"]
        )
        msg = request(net.uac.ep, "MESSAGE", f"sip:+15551234@{DOMAIN}")
        resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200 and gateway.last("MESSAGE").uri_text == f"sip:+15551234@{DOMAIN}"


async def test_register_for_a_foreign_domain_is_proxied() -> None:
    async with Net() as net:
        registrar = await net.ua("registrar")
        net.proxy.routes = RouteTable.parse(
            [f"^sip:far\\.test=sip:127.0.0.1:{port_of(registrar.ep)}"]
        )
        reg = request(net.uac.ep, "REGISTER", "sip:far.test", Contact="<sip:alice@127.0.0.1>")
        resp = await net.uac.ep.request(reg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200
        got = registrar.last("REGISTER")
        assert "Record-Route" not in got.headers and got.max_forwards == 69
        # A REGISTER for our own domain is the registrar's, not the proxy's.
        reg = request(net.uac.ep, "REGISTER", f"sip:{DOMAIN}", Contact="<sip:alice@127.0.0.1>")
        resp = await net.uac.ep.request(reg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 403


# --------------------------------------------------------------------------- the hook


async def test_hook_relay_redirect_reject_and_default() -> None:
    seen: list[RoutingContext] = []

    async def hook(req: Request, ctx: RoutingContext) -> Relay | Redirect | Reject | None:
        seen.append(ctx)
        user = getattr(req.uri, "user", None)
        if user == "fork":
            req.headers.add("X-Routed", "by-hook")
            return Relay(targets=targets)
        if user == "gw":
            return Relay(next_hops=[targets[0]])
        if user == "moved":
            return Redirect(contacts=["<sip:new@elsewhere.test>;q=0.5"])
        if user == "busy":
            return Reject(486, "Busy by policy")
        return None

    async with Net(hook=hook) as net:
        one = await net.ua("one", answer(200))
        two = await net.ua("two", answer(486))
        targets = [one.uri(), two.uri()]
        bob = await net.ua("bob", answer(200))
        await net.bind("bob", bob)
        uac = net.uac.ep
        responses = await collect(
            uac.send_request(invite(uac, f"sip:fork@{DOMAIN}"), destination=net.proxy_dest())
        )
        assert responses[-1].status == 200
        assert one.last("INVITE").headers.get("X-Routed") == "by-hook"
        assert two.last("INVITE").uri_text == two.uri()
        msg = request(uac, "MESSAGE", f"sip:gw@{DOMAIN}")
        assert (await uac.request(msg, destination=net.proxy_dest(), timeout=WAIT)).status == 200
        assert one.last("MESSAGE").uri_text == f"sip:gw@{DOMAIN}"
        moved = await uac.request(
            invite(uac, f"sip:moved@{DOMAIN}"), destination=net.proxy_dest(), timeout=WAIT
        )
        assert moved.status == 302
        assert moved.headers.get("Contact") == "<sip:new@elsewhere.test>;q=0.5"
        busy = await uac.request(
            invite(uac, f"sip:busy@{DOMAIN}"), destination=net.proxy_dest(), timeout=WAIT
        )
        assert (busy.status, busy.reason) == (486, "Busy by policy")
        plain = await collect(uac.send_request(invite(uac, BOB), destination=net.proxy_dest()))
        assert plain[-1].status == 200 and bob.requests
        assert seen[-1].local and seen[-1].aor == BOB and not seen[-1].in_dialog
        assert seen[-1].source.remote[1] == port_of(uac)


async def test_sync_hook_and_failing_hook() -> None:
    def sync_hook(req: Request, ctx: RoutingContext) -> Reject:
        return Reject(603)

    async with Net(hook=sync_hook) as net:
        resp = await net.uac.ep.request(
            request(net.uac.ep, "MESSAGE", BOB), destination=net.proxy_dest(), timeout=WAIT
        )
        assert resp.status == 603

    def broken(req: Request, ctx: RoutingContext) -> object:
        return "not a decision"

    async with Net(hook=broken) as net:
        resp = await net.uac.ep.request(
            request(net.uac.ep, "MESSAGE", BOB), destination=net.proxy_dest(), timeout=WAIT
        )
        assert resp.status == 500


# --------------------------------------------------------------------------- admission


class StubAuth:
    """Challenges until a Proxy-Authorization is present (the real one checks it)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def authorize(self, request: Request, tx: ServerTransaction) -> bool:
        self.calls.append(request.method)
        if request.headers.get("Proxy-Authorization"):
            return True
        header = f'Digest realm="{DOMAIN}", nonce="abc", algorithm=MD5'
        await tx.respond(407, headers=[("Proxy-Authenticate", header)])
        return False


async def test_admission_never_an_open_relay() -> None:
    auth = StubAuth()
    async with Net(auth=auth) as net:
        uac = net.uac.ep
        outside = await net.ua("outside")
        bob = await net.ua("bob", answer(200))
        await net.bind("bob", bob)
        # From elsewhere to elsewhere: authorize decides (here: a challenge, no relay).
        relay = request(uac, "MESSAGE", outside.uri())
        relay.headers.set("From", "<sip:mallory@evil.test>;tag=m1")
        assert (await uac.request(relay, destination=net.proxy_dest(), timeout=WAIT)).status == 407
        assert not outside.requests and auth.calls == ["MESSAGE"]
        # From elsewhere to one of our users: no authentication needed.
        inbound = invite(uac, BOB)
        inbound.headers.set("From", "<sip:carol@elsewhere.test>;tag=c1")
        ok = (await collect(uac.send_request(inbound, destination=net.proxy_dest())))[-1]
        assert ok.status == 200 and auth.calls == ["MESSAGE"]
        # ... and the dialog's requests follow our Record-Route without authentication.
        ack = in_dialog("ACK", inbound, ok, 1)
        await uac.send(ack, route_destination(ack), add_via=True)
        bye = in_dialog("BYE", inbound, ok, 2)
        resp = await uac.request(bye, destination=route_destination(bye), timeout=WAIT)
        assert resp.status == 200 and auth.calls == ["MESSAGE"]
        await asyncio.wait_for(bob.got_ack.wait(), WAIT)
        # A local user is authenticated, wherever the request goes.
        local = request(uac, "MESSAGE", BOB)
        assert (await uac.request(local, destination=net.proxy_dest(), timeout=WAIT)).status == 407
        local = request(uac, "MESSAGE", BOB, Proxy_Authorization='Digest username="alice"')
        assert (await uac.request(local, destination=net.proxy_dest(), timeout=WAIT)).status == 200
        # A Route that is not ours: not relayed, in a dialog (404) or not (403).
        preloaded = request(uac, "MESSAGE", BOB, Route=f"<{outside.uri()};lr>")
        preloaded.headers.set("From", "<sip:mallory@evil.test>;tag=m2")
        resp = await uac.request(preloaded, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 403
        fake = request(uac, "BYE", outside.uri(), Route=f"<{outside.uri()};lr>")
        fake.headers.set("To", f"<{outside.uri()}>;tag=t1")
        resp = await uac.request(fake, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 404
        # An ACK cannot be challenged: to elsewhere without our Route it is dropped.
        stray_ack = request(uac, "ACK", outside.uri())
        stray_ack.headers.set("To", f"<{outside.uri()}>;tag=t2")
        await uac.send(stray_ack, net.proxy_dest(), add_via=True)
        await until(lambda: net.proxy.stats["acks_dropped"] == 1)
        assert not outside.requests and not outside.acks


# --------------------------------------------------------------------------- stateless bits


async def test_2xx_retransmissions_reach_the_caller() -> None:
    """§16.7 step 9: every 2xx goes upstream, retransmissions included, until the ACK."""
    async with Net() as net:
        bob = await net.ua("bob", answer(200))
        await net.bind("bob", bob)
        handle = net.uac.ep.send_request(invite(net.uac.ep, BOB), destination=net.proxy_dest())
        oks: list[Response] = []
        three = asyncio.Event()

        def on_response(response: Response) -> None:
            if response.status == 200:
                oks.append(response)
                if len(oks) >= 3:
                    three.set()

        handle.on_response = on_response
        await asyncio.wait_for(three.wait(), WAIT)  # no ACK sent: bob keeps resending
        assert len({r.to.tag for r in oks}) == 1


async def test_stray_response_is_forwarded_by_via_and_foreign_ones_dropped() -> None:
    async with Net() as net:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            ours = f"SIP/2.0/UDP 127.0.0.1:{net.proxy_port};branch=z9hG4bKswabc.def;rport"
            raw = (
                f"SIP/2.0 200 OK\r\nVia: {ours}\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcaller;rport={port}\r\n"
                f"From: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <{BOB}>;tag=2\r\nCall-ID: stray-1\r\n"
                "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
            await loop.sock_sendto(sock, raw.encode(), ("127.0.0.1", net.proxy_port))
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), WAIT)
            forwarded = parse_message(data)
            assert isinstance(forwarded, Response) and forwarded.status == 200
            assert len(forwarded.via) == 1 and forwarded.top_via.branch == "z9hG4bKcaller"
            foreign = raw.replace(ours, "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKswabc.def")
            await loop.sock_sendto(sock, foreign.encode(), ("127.0.0.1", net.proxy_port))
            await until(lambda: net.proxy.stats["responses_dropped"] == 1)


async def test_cancel_without_a_transaction_is_forwarded() -> None:
    async with Net() as net:
        bob = await net.ua("bob")
        await net.bind("bob", bob)
        cancel = request(net.uac.ep, "CANCEL", BOB)
        resp = await net.uac.ep.request(cancel, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 481  # bob's answer, relayed
        got = bob.last("CANCEL")
        assert got.top_via.branch is not None and got.top_via.branch.startswith("z9hG4bKsw")


@pytest.mark.parametrize("spec", ["", "nocolon", ":f", "m:"])
def test_bad_hook_spec_is_a_configuration_error(spec: str) -> None:
    from sipwire.apps.routing import load_hook
    from sipwire.core._errors import LocalProtocolError

    with pytest.raises(LocalProtocolError):
        load_hook(spec)


async def test_wildcard_listener_recognises_this_hosts_addresses() -> None:
    """With ``udp:0.0.0.0:PORT`` every local address at that port is ours (Route popping,
    loop detection), remote ones are not. (No wildcard socket is bound here.)"""
    from sipwire.aio._transport_common import Listener
    from sipwire.aio.transport import TransportLayer
    from sipwire.apps.proxy import Proxy

    class FakeEndpoint:
        transport = TransportLayer(on_message=lambda message, source: None)
        listeners = (
            Listener(
                transport="UDP",
                host="0.0.0.0",
                port=5090,
                advertised_host="0.0.0.0",
                advertised_port=5090,
            ),
        )

    class NoLocation:
        async def lookup(self, aor: str) -> list[object]:
            return []

    proxy = Proxy(FakeEndpoint(), domains=[DOMAIN], location=NoLocation())  # type: ignore[arg-type]
    assert proxy.is_our_address("127.0.0.1", 5090)
    assert not proxy.is_our_address("127.0.0.1", 5091)
    assert not proxy.is_our_address("192.0.2.77", 5090)  # TEST-NET: not this host
    assert not proxy.is_our_address("gw.example.net", 5090)


async def test_udp_binding_from_its_own_address_is_reached_at_its_contact() -> None:
    """A REGISTER sent from the contact's own IP (a third party registering a UAS on the
    same host, e.g. sipsak for SIPp) is no NAT: the contact's port is used, not the
    REGISTER's source port."""
    async with Net() as net:
        bob = await net.ua("bob")
        await net.bind("bob", bob, source="UDP 127.0.0.1:9")  # the registering tool's port
        msg = request(net.uac.ep, "MESSAGE", BOB)
        resp = await net.uac.ep.request(msg, destination=net.proxy_dest(), timeout=WAIT)
        assert resp.status == 200 and bob.last("MESSAGE").uri_text == bob.uri()
