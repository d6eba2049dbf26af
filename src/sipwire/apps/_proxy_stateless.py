"""What the proxy relays without transactions (RFC 3261 §16.11, §16.7, §16.10).

* ACKs for 2xx responses (a new transaction hop by hop, never answered): forwarded by
  their Route headers or Request-URI (to every binding of one of our AORs).
* Responses without a client transaction (a 2xx retransmission after the INVITE client
  transaction ended): our Via popped, sent to the next Via (§18.2.2, RFC 3581).
* A CANCEL that matches no INVITE server transaction (§16.10): forwarded as a stateless
  proxy would, with the branch derived from the received one.
* Stateless mode: every request relayed to one target, the branch derived from the
  received one so retransmissions, the CANCEL and the non-2xx ACK reach the same
  downstream transaction; errors answered statelessly (§8.2.7) with a To tag derived
  from the request. Routing choices that involve chance (weighted static routes, RFC
  2782 SRV weights) are seeded by the request so a CANCEL goes where its INVITE went.

An authenticator cannot challenge these requests, so when one is configured nothing
is relayed out of our domains here unless it follows a dialog's Record-Route.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from sipwire.aio._transport_common import Source
from sipwire.aio.endpoint import ServerTransaction
from sipwire.aio.transport import TransportError
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.locate import LocationError
from sipwire.core.message import Request, Response, make_response, reason_phrase
from sipwire.core.uri import SipURI

from ._proxy_context import Target
from ._proxy_util import (
    branch_loop_part,
    loop_hash,
    make_branch,
    response_destination,
    stateless_key,
)
from .routing import Redirect, Reject, Relay

if TYPE_CHECKING:
    from .proxy import Proxy, Reply

__all__ = ["StatelessRelay", "decrement_max_forwards", "reason_text"]

_log = logging.getLogger("sipwire.proxy")

#: Methods never Record-Routed (no dialog, or hop-by-hop).
NO_RECORD_ROUTE = frozenset({"REGISTER", "ACK", "CANCEL"})


def decrement_max_forwards(request: Request) -> None:
    """§16.6 step 3 (70 when there was none)."""
    value = request.max_forwards
    request.headers.set("Max-Forwards", "70" if value is None else str(value - 1))


def reason_text(status: int, detail: str) -> str:
    text = f"{reason_phrase(status)} ({detail})" if detail else reason_phrase(status)
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200]


def seeded(request: Request) -> Callable[[], float]:
    """A random source fixed by the request's branch, sent-by and Call-ID."""
    return random.Random(stateless_key(request) + request.call_id).random


class StatelessRelay:
    """The proxy's transaction-less paths; see the module docstring."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    # ------------------------------------------------------------------ targets

    async def targets(
        self, request: Request, popped: int, original: Request, source: Source
    ) -> list[Target]:
        """Where a request relayed without a transaction goes; empty when nowhere (or
        when it would make us an open relay)."""
        proxy = self.proxy
        in_dialog = request.to.tag is not None
        routes_left = bool(request.route)
        uri = request.uri
        local = proxy.is_local_uri(uri)
        if not routes_left and local and isinstance(uri, SipURI) and uri.user is None:
            return []
        if proxy.auth is not None and not (in_dialog and popped) and (routes_left or not local):
            return []  # no way to authenticate it: no relaying
        if routes_left or (in_dialog and not local):
            return [Target(uri=uri)]
        if proxy.hook is not None and request.method != "ACK" and not in_dialog:
            decision = await proxy._decide(request, source, in_dialog=in_dialog)
            if isinstance(decision, Relay):
                relayed = await proxy._relay_targets(request, decision)
                return relayed if isinstance(relayed, list) else []
            if decision is not None:
                return []
        result = await proxy._default_targets(request, rand=seeded(original))
        return result if isinstance(result, list) else []

    async def send(
        self,
        request: Request,
        target: Target,
        branch: str,
        source: Source | None,
        *,
        record_route: bool,
        rand_below: Callable[[int], int] | None = None,
    ) -> None:
        proxy = self.proxy
        base, hop = proxy._branch_request(request, target)
        destination = (await proxy._destinations(base, target, hop, rand_below=rand_below))[0]
        proxy._prepare_copy(
            base, destination, inbound=source, record_route=record_route, branch=branch
        )
        try:
            await proxy.endpoint.send(base, destination)
        except (TransportError, OSError) as exc:
            _log.info("stateless forward of %s to %s failed: %s", base, destination, exc)
            return
        proxy.stats["forwarded_stateless"] += 1

    # ------------------------------------------------------------------ ACK, responses

    async def ack(self, ack: Request, source: Source) -> None:
        """An ACK outside any transaction (for a 2xx)."""
        proxy = self.proxy
        req = ack.copy()
        try:
            max_forwards = req.max_forwards
            if max_forwards is not None and max_forwards <= 0:
                return
            popped = proxy._preprocess_routes(req)
            targets = await self.targets(req, popped, ack, source)
            if not targets:
                proxy.stats["acks_dropped"] += 1
                return
            decrement_max_forwards(req)
            branch = make_branch(loop_hash(req), stateless_key(ack))
            for target in targets:
                await self.send(req, target, branch, source, record_route=False)
        except (RemoteProtocolError, LocalProtocolError, LocationError) as exc:
            _log.info("ACK not forwarded: %s", exc)

    async def response(self, response: Response, source: Source) -> None:
        """Pop our Via and send the response to the next one; one whose top Via is not
        ours is dropped (§18.1.2)."""
        proxy = self.proxy
        try:
            vias = response.via
            top = vias[0]
            ours = branch_loop_part(top.branch) is not None
            if len(vias) < 2 or not ours or not proxy.is_our_address(top.host, top.port):
                proxy.stats["responses_dropped"] += 1
                return
            response.headers.pop_first("Via")
            destination = response_destination(response.top_via)
            await proxy.endpoint.send(response, destination)
            proxy.stats["responses_stateless"] += 1
        except (RemoteProtocolError, LocalProtocolError, TransportError, OSError) as exc:
            _log.info("stray response not forwarded: %s", exc)

    # ------------------------------------------------------------------ CANCEL

    async def unmatched_cancel(self, request: Request, tx: ServerTransaction) -> None:
        """§16.10: a CANCEL without a matching INVITE, forwarded with the branch a
        stateless proxy would use; its response comes back on ``tx``."""
        proxy = self.proxy
        req = request.copy()
        try:
            max_forwards = req.max_forwards
        except RemoteProtocolError:
            max_forwards = None
        if max_forwards is not None and max_forwards <= 0:
            await tx.respond(483)
            return
        popped = proxy._preprocess_routes(req)
        targets = await self.targets(req, popped, request, tx.source)
        if not targets:
            await tx.respond(481)
            return
        decrement_max_forwards(req)
        try:
            base, hop = proxy._branch_request(req, targets[0])
            destination = (await proxy._destinations(base, targets[0], hop))[0]
        except (LocationError, LocalProtocolError):
            await tx.respond(481)
            return
        branch = make_branch(loop_hash(req), stateless_key(request))
        proxy._prepare_copy(base, destination, inbound=None, record_route=False, branch=branch)
        handle = proxy.endpoint.send_request(base, destination=destination, add_via=False)
        response = await handle.wait_final()
        response.headers.pop_first("Via")
        if tx.final is None:
            await tx.send(response)

    # ------------------------------------------------------------------ stateless mode

    def entry(self, request: Request, source: Source) -> bool:
        """The endpoint's stateless hook: REGISTERs for our domains go to the registrar
        (through a transaction); everything else is relayed here."""
        if request.method == "REGISTER":
            try:
                if self.proxy.is_local_uri(request.uri):
                    return False
            except RemoteProtocolError:
                return False
        self.proxy._spawn(self.relay(request, source))
        return True

    async def relay(self, request: Request, source: Source) -> None:
        try:
            await self._relay(request, source)
        except (RemoteProtocolError, LocalProtocolError, LocationError) as exc:
            status = exc.status_hint if isinstance(exc, RemoteProtocolError) else 500
            status = status if 400 <= status <= 699 and status != 503 else 500
            await self.reply(request, source, (status, reason_text(status, str(exc)), []))

    async def _relay(self, request: Request, source: Source) -> None:
        """§16.11: one target, no transaction, the branch derived from the received one."""
        proxy = self.proxy
        method = request.method
        proxy.stats[f"requests.{method}"] += 1
        if method == "ACK":
            await self.ack(request, source)
            return
        req = request.copy()
        problem = proxy._validate(req)
        if problem is not None:
            await self.reply(request, source, problem)
            return
        popped = proxy._preprocess_routes(req)
        loop = loop_hash(req)
        if proxy._looped(req, loop):
            proxy.stats["loops"] += 1
            await self.reply(request, source, (482, None, []))
            return
        uri = req.uri
        local = proxy.is_local_uri(uri)
        in_dialog = req.to.tag is not None
        routes_left = bool(req.route)
        if not routes_left and local and isinstance(uri, SipURI) and uri.user is None:
            reply = proxy._options_reply() if method == "OPTIONS" else (404, None, [])
            await self.reply(request, source, reply)
            return
        if proxy.auth is not None and not (in_dialog and popped) and (routes_left or not local):
            await self.reply(request, source, (403, "Relaying denied", []))
            return
        found: list[Target] | Reply
        if routes_left or (in_dialog and not local):
            found = [Target(uri=uri)]
        else:
            decision = None
            if proxy.hook is not None and not in_dialog:
                decision = await proxy._decide(req, source, in_dialog=False)
            if isinstance(decision, Reject):
                reply = (decision.status, decision.reason, list(decision.headers))
                await self.reply(request, source, reply)
                return
            if isinstance(decision, Redirect):
                headers = [("Contact", str(a)) for a in decision.addresses]
                await self.reply(request, source, (decision.status, decision.reason, headers))
                return
            if isinstance(decision, Relay):
                found = await proxy._relay_targets(req, decision)
            else:
                found = await proxy._default_targets(req, rand=seeded(request))
        if isinstance(found, tuple):
            await self.reply(request, source, found)
            return
        decrement_max_forwards(req)
        record_route = proxy.record_route and not in_dialog and method not in NO_RECORD_ROUTE
        draw = seeded(request)
        await self.send(
            req,
            found[0],
            make_branch(loop, stateless_key(request)),
            source,
            record_route=record_route,
            rand_below=lambda n: min(n - 1, int(draw() * n)),
        )

    async def reply(self, request: Request, source: Source, reply: Reply) -> None:
        """A response without a transaction (§8.2.7); the To tag is derived from the
        request so a retransmission gets the same one."""
        if request.method == "ACK":
            return
        proxy = self.proxy
        status, reason, headers = reply
        proxy.stats[f"local_{status}"] += 1
        try:
            to_tag = None if request.to.tag else "sl" + stateless_key(request)[:12]
            response = make_response(request, status, reason, to_tag=to_tag)
        except (RemoteProtocolError, LocalProtocolError):
            return
        for name, value in headers:
            response.headers.add(name, value)
        if proxy.endpoint.server_header:
            response.headers.add("Server", proxy.endpoint.server_header)
        response.headers.add("Content-Length", "0")
        try:
            await proxy.endpoint.send(response, source)
        except (TransportError, OSError) as exc:
            _log.info("stateless %s not sent: %s", status, exc)
