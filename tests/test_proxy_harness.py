"""Shared pieces of the proxy tests (no tests here): a proxy on loopback UDP+TCP with an
in-memory location service, user agents built on Endpoints, and dialog helpers.

Every test gets fresh endpoints bound to port 0; waits are bounded; timers are short
(``FAST``: T1 = 50 ms, so Timer B/F = 3.2 s) so failover and timeouts stay quick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from sipwire.aio._transport_common import Destination, Source
from sipwire.aio.endpoint import ClientTransaction, Endpoint, ServerTransaction
from sipwire.apps.proxy import Proxy
from sipwire.apps.registrar import Registrar
from sipwire.core.address import Address
from sipwire.core.message import Request, Response
from sipwire.core.transaction import TimerConfig
from sipwire.store import Binding
from sipwire.store.memory import MemoryLocationStore

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
DOMAIN = "example.test"
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 7000 RTP/AVP 0\r\n"
)
WAIT = 8.0


def port_of(ep: Endpoint, transport: str = "UDP") -> int:
    listener = ep.transport.listener(transport)
    assert listener is not None, f"no {transport} listener"
    return listener.port


@dataclass
class UA:
    """A user agent on its own Endpoint; records what it receives."""

    ep: Endpoint
    name: str
    requests: list[Request] = field(default_factory=list)
    transactions: list[ServerTransaction] = field(default_factory=list)
    acks: list[Request] = field(default_factory=list)
    got_request: asyncio.Event = field(default_factory=asyncio.Event)
    got_ack: asyncio.Event = field(default_factory=asyncio.Event)

    def uri(self, transport: str = "UDP", user: str | None = None) -> str:
        return str(self.ep.contact_uri(transport, user=user or self.name))

    def last(self, method: str) -> Request:
        return [r for r in self.requests if r.method == method][-1]

    async def wait_request(self, method: str, count: int = 1) -> Request:
        async def until() -> Request:
            while len([r for r in self.requests if r.method == method]) < count:
                self.got_request.clear()
                await self.got_request.wait()
            return [r for r in self.requests if r.method == method][count - 1]

        return await asyncio.wait_for(until(), WAIT)


Behaviour = Callable[[Request, ServerTransaction], Awaitable[None]]


def answer(*statuses: int, contact: str | None = None, delay: float = 0.0) -> Behaviour:
    """Answer with these statuses in order (a 2xx gets a Contact and, for INVITE, SDP)."""

    async def behaviour(request: Request, tx: ServerTransaction) -> None:
        for status in statuses:
            if delay:
                await asyncio.sleep(delay)
            headers: list[tuple[str, str]] = []
            body = b""
            if 200 <= status < 300:
                # Default Contact: the Request-URI, i.e. the contact we were reached at.
                headers.append(("Contact", f"<{contact or request.uri_text}>"))
                if request.method == "INVITE":
                    headers.append(("Content-Type", "application/sdp"))
                    body = SDP
            await tx.respond(status, headers=headers, body=body)

    return behaviour


def ring_until_cancelled() -> Behaviour:
    """180, then wait for the CANCEL (the Endpoint answers 487 by itself)."""

    async def behaviour(request: Request, tx: ServerTransaction) -> None:
        await tx.respond(180)
        await asyncio.wait_for(tx.cancelled.wait(), 30)

    return behaviour


class Net:
    """A proxy plus user agents; use as ``async with Net(...) as net``."""

    def __init__(self, *, timers: TimerConfig = FAST, **proxy_options: Any) -> None:
        self.proxy_options = proxy_options
        self.stack = AsyncExitStack()
        self.store = MemoryLocationStore()
        self.registrar = Registrar(self.store, wall_clock=time.time)
        self.proxy_ep = Endpoint(
            listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], timers=timers, user_agent="proxy"
        )
        self.proxy: Proxy = None  # type: ignore[assignment]
        self.uas: list[UA] = []

    async def __aenter__(self) -> Net:
        await self.stack.enter_async_context(self.proxy_ep)
        options = {"domains": [DOMAIN], "location": self.registrar, **self.proxy_options}
        self.proxy = Proxy(self.proxy_ep, **options)
        self.proxy.install()
        self.stack.push_async_callback(self.proxy.close)
        self.uac = await self.ua("alice")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    @property
    def proxy_port(self) -> int:
        return port_of(self.proxy_ep, "UDP")

    def proxy_dest(self, transport: str = "UDP") -> Destination:
        return Destination(
            transport=transport, host="127.0.0.1", port=port_of(self.proxy_ep, transport)
        )

    async def ua(
        self,
        name: str,
        behaviour: Behaviour | None = None,
        *,
        listen: tuple[str, ...] = ("udp:127.0.0.1:0",),
    ) -> UA:
        ep = Endpoint(listen=list(listen), timers=FAST, user_agent=name)
        await self.stack.enter_async_context(ep)
        ua = UA(ep, name)

        async def on_request(request: Request, tx: ServerTransaction) -> None:
            ua.requests.append(request)
            ua.transactions.append(tx)
            ua.got_request.set()
            if behaviour is not None and request.method == "INVITE":
                await behaviour(request, tx)
            elif request.method == "CANCEL":
                await tx.respond(481)  # a CANCEL that matched no INVITE here
            else:
                await tx.respond(200)

        def on_ack(ack: Request, source: Source) -> None:
            ua.acks.append(ack)
            ua.got_ack.set()

        ep.on_request(on_request)
        ep.on_ack(on_ack)
        self.uas.append(ua)
        return ua

    async def bind(
        self,
        user: str,
        ua: UA,
        *,
        transport: str = "UDP",
        q: float | None = None,
        contact: str | None = None,
        source: str | None = None,
        path: tuple[str, ...] = (),
    ) -> None:
        """Add a binding for sip:user@DOMAIN directly in the location store."""
        aor = f"sip:{user}@{DOMAIN}"
        current = await self.store.get(aor, now=time.time())
        binding = Binding(
            aor=aor,
            contact=contact or ua.uri(transport),
            expires_at=time.time() + 3600,
            q=q,
            path=path,
            source=source,
        )
        await self.store.replace(aor, [*current, binding])


def invite(ep: Endpoint, uri: str, *, call_id: str | None = None, **extra: str) -> Request:
    contact = ep.contact_uri("UDP", user="alice")
    rows = [
        ("From", f"<sip:alice@{DOMAIN}>;tag={ep.new_tag()}"),
        ("To", f"<{uri}>"),
        ("Call-ID", call_id or ep.new_call_id()),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<{contact}>"),
        ("Content-Type", "application/sdp"),
    ]
    rows.extend((k.replace("_", "-"), v) for k, v in extra.items())
    return Request("INVITE", uri, rows, SDP)


def request(ep: Endpoint, method: str, uri: str, **extra: str) -> Request:
    rows = [
        ("From", f"<sip:alice@{DOMAIN}>;tag={ep.new_tag()}"),
        ("To", f"<{uri}>"),
        ("Call-ID", ep.new_call_id()),
        ("CSeq", f"1 {method}"),
    ]
    rows.extend((k.replace("_", "-"), v) for k, v in extra.items())
    return Request(method, uri, rows)


async def collect(handle: ClientTransaction) -> list[Response]:
    async def run() -> list[Response]:
        return [r async for r in handle.responses()]

    return await asyncio.wait_for(run(), WAIT + 30)


def in_dialog(
    method: str, invite_request: Request, ok: Response, cseq: int, *, callee: bool = False
) -> Request:
    """A request inside the dialog the 2xx ``ok`` created (RFC 3261 §12.2.1.1): Route from
    Record-Route (reversed for the caller), remote target from the 2xx Contact (the
    INVITE's Contact for the callee)."""
    rr = [str(a) for a in ok.record_route]
    if callee:
        target = str(invite_request.contact[0].uri)
        route = rr
        from_, to = ok.headers.get("To"), invite_request.headers.get("From")
    else:
        target = str(ok.contact[0].uri)
        route = list(reversed(rr))
        from_, to = invite_request.headers.get("From"), ok.headers.get("To")
    assert from_ is not None and to is not None
    rows = [("Route", r) for r in route]
    rows += [
        ("From", from_),
        ("To", to),
        ("Call-ID", invite_request.call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    return Request(method, target, rows)


def route_destination(req: Request) -> Destination:
    """The destination of the first Route (a loose router), as a UA would resolve it."""
    uri = Address.parse(str(req.route[0])).uri
    host = getattr(uri, "host", "")
    port = getattr(uri, "port", None) or 5060
    transport = (getattr(uri, "transport", None) or "udp").upper()
    return Destination(transport=transport, host=host, port=port)
