"""The SIP proxy (RFC 3261 §16): stateful (forking) or stateless, or a redirect server.

::

    proxy = Proxy(endpoint, domains=["example.com"], location=registrar, auth=None,
                  routes=RouteTable.parse(["^sip:\\+1=sip:gw.example.net"]),
                  mode="proxy", stateless=False, fork="parallel", record_route=True,
                  hook="mypolicy:route", timer_c=180.0, user_exists=users_has_aor)
    proxy.install()         # ep.on_request / on_ack / on_cancel / on_stray_response

Per request (stateful): §16.3 validation (416, 483, 482 with spirals allowed, 420),
§16.4 Route processing (strict-router fix-up, our own Route entries popped), admission
(``auth.authorize`` for requests claiming one of our users and for relaying; never an
open relay when an authenticator is set), then the targets (§16.5): the dialog's route
set, the routing hook, the location service for our domains (Path as Route, the
binding's source for NAT), static routes, the outbound proxy, RFC 3263. Each forwarded
copy (§16.6) gets Max-Forwards - 1, Record-Route (doubled when the transports differ,
RFC 5658) and our Via, whose branch carries the loop hash. Responses: see
:mod:`sipwire.apps._proxy_context`. ACKs for 2xx, stray responses (2xx retransmissions
after the transaction ended) and CANCELs without a transaction are forwarded statelessly.

``stateless=True`` relays each request to one target without any transaction (§16.11):
the branch is derived from the received one, so retransmissions, the CANCEL and the
non-2xx ACK map to the same downstream transaction. ``mode="redirect"`` answers 302
with the bindings (q order) instead.

See ``docs/proxy.md`` for the configuration and the routing hook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Literal, Protocol

from sipwire.aio._transport_common import (
    Destination,
    Listener,
    Source,
    is_ip,
    normalize_ip,
    parse_hostport,
)
from sipwire.aio.dns import locate
from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.aio.transport import VIA_PLACEHOLDER_HOST
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.locate import LocationError
from sipwire.core.message import Request, Response
from sipwire.core.uri import URI, SipURI, TelURI, parse_uri
from sipwire.store import Binding

from ._proxy_context import ResponseContext, Target
from ._proxy_stateless import (
    NO_RECORD_ROUTE,
    StatelessRelay,
    decrement_max_forwards,
    reason_text,
)
from ._proxy_util import (
    branch_loop_part,
    loop_hash,
    make_branch,
    parse_source,
    record_route_value,
)
from .routing import (
    Decision,
    Redirect,
    Reject,
    Relay,
    RouteTable,
    RoutingContext,
    RoutingHook,
    call_hook,
    load_hook,
)

__all__ = ["Authenticator", "LocationService", "Proxy", "Target"]

_log = logging.getLogger("sipwire.proxy")

#: Proxy-Require option-tags this proxy implements (§16.3 item 5): none yet.
SUPPORTED_PROXY_OPTIONS: frozenset[str] = frozenset()
#: Destinations one branch fails over between (RFC 3263 may return many).
MAX_DESTINATIONS = 16
_WILDCARDS = frozenset({"0.0.0.0", "::"})

Mode = Literal["proxy", "redirect"]
ForkMode = Literal["parallel", "sequential"]
UserExists = Callable[[str], Awaitable[bool] | bool]
#: A locally generated answer: status, reason (None: the standard one), extra headers.
Reply = tuple[int, str | None, list[tuple[str, str]]]


class Authenticator(Protocol):
    """Admission control for the proxy (the digest authenticator of ``apps/auth.py``).

    The proxy calls ``authorize`` for every request that claims to come from one of our
    users (From in our domains) and for every request it would relay out of our
    domains (the Request-URI or the next Route is elsewhere); not for requests that
    follow a dialog's Record-Route through us, nor for ACK and CANCEL. Return True to go
    on: the request carries valid credentials of a local user, or comes from a trusted
    peer. Otherwise answer it (407 challenge, 403) on ``tx`` and return False.
    """

    async def authorize(self, request: Request, tx: ServerTransaction) -> bool: ...


class LocationService(Protocol):
    """The location service (``sipwire.apps.registrar.Registrar`` is one)."""

    async def lookup(self, aor: str) -> list[Binding]:
        """Current bindings of ``aor``, highest q first."""
        ...


class Proxy:
    """A SIP proxy / redirect server on an :class:`Endpoint`; see the module docstring.

    ``domains``: the domains we are responsible for (the first is the primary one:
    requests addressed to one of our IP addresses look up ``user@primary``).
    ``location``: the location service. ``auth``: an :class:`Authenticator`, or None
    for no authentication (and then relaying is allowed: the ``--no-auth`` server).
    ``routes``: static routes. ``mode``: ``"proxy"`` or ``"redirect"``. ``stateless``:
    §16.11 relaying. ``fork``: ``"parallel"`` or ``"sequential"`` (q order).
    ``record_route``: stay in the path of dialogs. ``hook``: a routing hook function or
    ``"module:function"``. ``timer_c``: §16.8, seconds (> 180 per the RFC).
    ``user_exists(aor)``: tells 480 (known user, no binding) from 404; without it every
    AOR without bindings gets 404. ``outbound_proxy``: next hop for every request to a
    foreign domain that no static route matches. ``recurse_3xx``: try the contacts of
    3xx responses (§16.7 step 4). ``sequential_timeout``: seconds a branch of a
    sequential fork may ring before the next target is tried (None: until timer C).
    ``max_targets``: bound on one request's target set. ``aliases``: more
    ``host[:port]`` names of this proxy (a public address behind NAT, a DNS name).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        domains: Iterable[str],
        location: LocationService,
        auth: Authenticator | None = None,
        routes: RouteTable | None = None,
        mode: Mode = "proxy",
        stateless: bool = False,
        fork: ForkMode = "parallel",
        record_route: bool = True,
        hook: RoutingHook | str | None = None,
        timer_c: float = 180.0,
        user_exists: UserExists | None = None,
        outbound_proxy: str | SipURI | None = None,
        recurse_3xx: bool = True,
        sequential_timeout: float | None = None,
        max_targets: int = 16,
        aliases: Iterable[str] = (),
    ) -> None:
        if mode not in ("proxy", "redirect"):
            raise LocalProtocolError(f"mode must be 'proxy' or 'redirect', not {mode!r}")
        if fork not in ("parallel", "sequential"):
            raise LocalProtocolError(f"fork must be 'parallel' or 'sequential', not {fork!r}")
        if stateless and mode != "proxy":
            raise LocalProtocolError("stateless applies to mode='proxy' only")
        if timer_c <= 0 or (sequential_timeout is not None and sequential_timeout <= 0):
            raise LocalProtocolError("timer_c and sequential_timeout must be positive")
        if max_targets < 1:
            raise LocalProtocolError("max_targets must be at least 1")
        self.endpoint = endpoint
        self.domains: list[str] = [d.strip().lower() for d in domains if d.strip()]
        self._domain_set = frozenset(self.domains)
        self.location = location
        self.auth = auth
        self.routes = routes if routes is not None else RouteTable()
        self.mode: Mode = mode
        self.stateless = stateless
        self.fork: ForkMode = fork
        self.record_route = record_route
        self.hook: RoutingHook | None = load_hook(hook) if isinstance(hook, str) else hook
        self.timer_c = timer_c
        self.user_exists = user_exists
        proxy_uri = parse_uri(outbound_proxy) if isinstance(outbound_proxy, str) else outbound_proxy
        if proxy_uri is not None and not isinstance(proxy_uri, SipURI):
            raise LocalProtocolError("the outbound proxy must be a sip: or sips: URI")
        self.outbound_proxy: SipURI | None = proxy_uri
        self.recurse_3xx = recurse_3xx
        self.sequential_timeout = sequential_timeout
        self.max_targets = max_targets
        self._aliases: list[tuple[str, int | None]] = []
        for alias in aliases:
            host, port = parse_hostport(alias.strip())
            self._aliases.append((normalize_ip(host), port))
        #: Counters: forwarded, loops, auth_refused, timer_c_fired, final_<status>, ...
        self.stats: Counter[str] = Counter()
        self._contexts: dict[ServerTransaction, ResponseContext] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stateless = StatelessRelay(self)

    # ------------------------------------------------------------------ wiring

    def install(self) -> None:
        """Register the proxy's handlers on the endpoint.

        ``on_request`` (every method without its own ``ep.on(...)`` handler: keep
        REGISTER for the registrar and call :meth:`handle_request` from it for foreign
        domains), ``on_ack``, ``on_cancel``, ``on_stray_response`` and, when stateless,
        ``on_stateless_request`` (which leaves REGISTERs for our domains to the
        transaction layer). Also turns the endpoint's merged-request check off: a proxy
        must not reject merged requests (§16.3).
        """
        ep = self.endpoint
        ep.txl.detect_merged = False
        ep.on_request(self.handle_request)
        ep.on_ack(self.handle_ack)
        ep.on_cancel(self.handle_cancel)
        ep.on_stray_response(self.handle_response)
        if self.stateless:
            ep.on_stateless_request(self._stateless.entry)

    async def close(self) -> None:
        """Stop timers and background tasks (the endpoint is closed by its owner)."""
        for ctx in list(self._contexts.values()):
            for branch in ctx.branches:
                branch.stop_timers()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("proxy task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ who we are

    def _listeners(self) -> tuple[Listener, ...]:
        return self.endpoint.listeners

    def is_our_address(self, host: str, port: int | None) -> bool:
        """True if ``host:port`` reaches this proxy (a listener or an alias)."""
        h = normalize_ip(host)
        for listener in self._listeners():
            ports = {listener.port, listener.advertised_port}
            # A port-less URI naming our address is taken as ours whatever our port:
            # sipsak drops the port from URIs, and a phone configured with the server's
            # address alone means the server.
            if port is not None and port not in ports:
                continue
            if h in (normalize_ip(listener.host), normalize_ip(listener.advertised_host)):
                return True
            if listener.host in _WILDCARDS and listener.advertised_host in _WILDCARDS:
                # A wildcard listener: any address of this host is ours. The kernel routes
                # to a local address from that same address (cached by the transport).
                if is_ip(h) and self.endpoint.transport._route_ip(h) == h:
                    return True
        for alias_host, alias_port in self._aliases:
            if h == alias_host and (alias_port is None or port is None or port == alias_port):
                return True
        return False

    def is_local_uri(self, uri: URI) -> bool:
        """True for a SIP URI in one of our domains or naming one of our addresses."""
        if not isinstance(uri, SipURI):
            return False
        host = uri.host.lower()
        return host in self._domain_set or self.is_our_address(uri.host, uri.port)

    def aor_of(self, uri: SipURI) -> str:
        """The location-service key of a local Request-URI (``sip:user@domain``)."""
        host = uri.host.lower()
        if host not in self._domain_set and self.domains:
            host = self.domains[0]
        return SipURI(user=uri.user, host=host).aor()

    def _is_our_route(self, uri: URI) -> bool:
        if not isinstance(uri, SipURI) or uri.user is not None:
            return False
        return uri.host.lower() in self._domain_set or self.is_our_address(uri.host, uri.port)

    def _from_local(self, request: Request) -> bool:
        try:
            return self.is_local_uri(request.from_.uri)
        except RemoteProtocolError:
            return False

    # ------------------------------------------------------------------ §16.3, §16.4

    def _validate(self, request: Request) -> Reply | None:
        """§16.3 checks 2, 3 and 5 (1 is the parser's; 4 needs the routes; 6 is auth)."""
        try:
            uri = request.uri
        except RemoteProtocolError as exc:
            return (exc.status_hint if exc.status_hint == 416 else 400, exc.reason, [])
        if not isinstance(uri, SipURI | TelURI):
            return (416, None, [])
        try:
            max_forwards = request.max_forwards
        except RemoteProtocolError as exc:
            return (400, exc.reason, [])
        if max_forwards is not None and max_forwards <= 0:
            if request.method == "OPTIONS":
                return self._options_reply()  # §16.3 item 3: we may answer it ourselves
            return (483, None, [])
        try:
            tags = request.proxy_require
        except RemoteProtocolError as exc:
            return (400, exc.reason, [])
        unsupported = [t for t in tags if t.lower() not in SUPPORTED_PROXY_OPTIONS]
        if unsupported:
            return (420, None, [("Unsupported", ", ".join(unsupported))])
        return None

    def _options_reply(self) -> Reply:
        return (
            200,
            None,
            [("Allow", ", ".join(self.endpoint.allowed_methods())), ("Accept", "application/sdp")],
        )

    def _preprocess_routes(self, request: Request) -> int:
        """§16.4: the strict-router fix-up, then pop our own Route values (both of a
        double Record-Route). Returns how many of ours were popped."""
        routes = request.route
        uri = request.uri
        popped = 0
        if (
            routes
            and isinstance(uri, SipURI)
            and uri.user is None
            and uri.lr
            and self.is_our_address(uri.host, uri.port)
        ):
            values = request.headers.get_all("Route")
            request.uri = Address.parse(values[-1]).uri
            request.headers.remove("Route")
            for value in reversed(values[:-1]):
                request.headers.insert_first("Route", value)
            popped += 1
            routes = request.route
        while routes and self._is_our_route(routes[0].uri):
            request.headers.pop_first("Route")
            popped += 1
            routes = request.route
        return popped

    def _looped(self, request: Request, loop: str) -> bool:
        """§16.3 item 4: one of our Vias whose loop hash matches this request's (a
        spiral, where the Request-URI or the routes changed, has another hash)."""
        for via in request.via:
            part = branch_loop_part(via.branch)
            if part == loop and self.is_our_address(via.host, via.port):
                return True
        return False

    # ------------------------------------------------------------------ stateful entry

    async def handle_request(self, request: Request, tx: ServerTransaction) -> None:
        """The endpoint handler for every request the proxy serves (stateful); also what
        a REGISTER handler calls for a REGISTER to a foreign domain. ``on_request`` is
        the same method."""
        try:
            await self._handle(request, tx)
        except RemoteProtocolError as exc:
            self.stats["bad_requests"] += 1
            if tx.final is None:
                status = exc.status_hint if 400 <= exc.status_hint <= 699 else 400
                await tx.respond(status, reason_text(status, exc.reason))

    on_request = handle_request

    async def _handle(self, request: Request, tx: ServerTransaction) -> None:
        method = request.method
        self.stats[f"requests.{method}"] += 1
        if method == "CANCEL":
            await self._stateless.unmatched_cancel(request, tx)
            return
        req = request.copy()
        problem = self._validate(req)
        if problem is not None:
            await self._reply(tx, problem)
            return
        if method == "INVITE" and self.mode == "proxy":
            await tx.respond(100)  # §16.2: stop the caller's retransmissions now
        popped = self._preprocess_routes(req)
        loop = loop_hash(req)
        if self._looped(req, loop):
            self.stats["loops"] += 1
            await tx.respond(482)
            return
        in_dialog = req.to.tag is not None
        routes_left = bool(req.route)
        uri = req.uri
        local = self.is_local_uri(uri)
        if not routes_left and local and isinstance(uri, SipURI) and uri.user is None:
            # Addressed to this proxy (or its domain) itself.
            if method == "OPTIONS":
                await self._reply(tx, self._options_reply())
            elif method == "REGISTER":
                await tx.respond(403, "Registrations are not handled here")
            else:
                await tx.respond(404)
            return
        if method == "REGISTER" and local and not routes_left:
            await tx.respond(403, "Registrations are not handled here")
            return
        if self.auth is not None and not await self._admit(request, req, tx, popped=popped):
            return
        if await self._cancelled_meanwhile(tx):
            return
        if self.mode == "redirect":
            await self._redirect(req, tx, local=local, in_dialog=in_dialog)
            return
        fork = self.fork
        targets: list[Target] | Reply
        if routes_left or (in_dialog and not local):
            targets = [Target(uri=uri)]  # the route set / remote target decides
        else:
            decision = None
            if self.hook is not None and not in_dialog:
                decision = await self._decide(req, tx.source, in_dialog=in_dialog)
            if isinstance(decision, Reject):
                await self._reply(tx, (decision.status, decision.reason, list(decision.headers)))
                return
            if isinstance(decision, Redirect):
                await self._reply_redirect(tx, decision.addresses, decision.status, decision.reason)
                return
            if isinstance(decision, Relay):
                fork = decision.fork or fork
                targets = await self._relay_targets(req, decision)
            else:
                targets = await self._default_targets(req)
        if isinstance(targets, tuple):
            await self._reply(tx, targets)
            return
        if await self._cancelled_meanwhile(tx):
            return
        decrement_max_forwards(req)
        record_route = self.record_route and not in_dialog and method not in NO_RECORD_ROUTE
        ctx = ResponseContext(
            self,
            tx,
            req,
            fork=fork,
            record_route=record_route,
            loop=loop,
            on_done=self._context_done,
        )
        self._contexts[tx] = ctx
        ctx.add_targets(targets)
        ctx.advance()

    async def _admit(
        self, original: Request, request: Request, tx: ServerTransaction, *, popped: int
    ) -> bool:
        """Admission with an authenticator (never an open relay).

        Requests following a dialog's Record-Route through us pass. An in-dialog request
        whose next Route is someone else's is not ours to relay (404, as a loose router
        that did not record-route it); neither is an initial request with a preloaded
        Route elsewhere unless it comes from one of our users. Otherwise ``authorize`` is
        asked for requests claiming one of our users and for requests leaving our
        domains; it answers (407/403) when it says no.
        """
        assert self.auth is not None
        in_dialog = request.to.tag is not None
        routes_left = bool(request.route)
        if in_dialog and popped > 0:
            return True
        from_local = self._from_local(request)
        if routes_left and (in_dialog or not from_local):
            self.stats["relay_refused"] += 1
            if in_dialog:
                await tx.respond(404, "Not Here (not a route of this proxy)")
            else:
                await tx.respond(403, "Relaying denied")
            return False
        foreign = routes_left or not self.is_local_uri(request.uri)
        if (foreign or from_local) and not await self.auth.authorize(original, tx):
            self.stats["auth_refused"] += 1
            return False
        return True

    def _context_done(self, ctx: ResponseContext) -> None:
        if self._contexts.get(ctx.tx) is ctx:
            del self._contexts[ctx.tx]

    async def _cancelled_meanwhile(self, tx: ServerTransaction) -> bool:
        """A CANCEL that arrived while we looked things up: answer 487 (§16.10)."""
        if tx.cancelled.is_set():
            if tx.final is None:
                await tx.respond(487)
            return True
        return False

    async def _reply(self, tx: ServerTransaction, reply: Reply) -> None:
        status, reason, headers = reply
        self.stats[f"local_{status}"] += 1
        if tx.final is None:
            await tx.respond(status, reason, headers=headers)

    async def _reply_redirect(
        self,
        tx: ServerTransaction,
        contacts: Sequence[Address],
        status: int = 302,
        reason: str | None = None,
    ) -> None:
        headers = [("Contact", str(a)) for a in contacts]
        await self._reply(tx, (status, reason, headers))

    # ------------------------------------------------------------------ targets (§16.5)

    async def _decide(
        self, request: Request, source: Source, *, in_dialog: bool
    ) -> Decision | None:
        assert self.hook is not None
        uri = request.uri
        local = self.is_local_uri(uri)
        aor = self.aor_of(uri) if local and isinstance(uri, SipURI) and uri.user else None
        context = RoutingContext(
            source=source,
            local=local,
            aor=aor,
            in_dialog=in_dialog,
            domains=self._domain_set,
            lookup=self.location.lookup,
            routes=self.routes,
        )
        return await call_hook(self.hook, request, context)

    async def _relay_targets(self, request: Request, relay: Relay) -> list[Target] | Reply:
        headers = tuple(relay.headers)
        hops = relay.hop_uris
        uris: list[URI] = list(relay.target_uris) or [request.uri]
        if hops:
            return [Target(uri=u, next_hops=hops, headers=headers) for u in uris]
        targets = await self._expand_contacts(uris)
        for target in targets:
            target.headers = headers
        return targets or (480, None, [])

    async def _default_targets(
        self, request: Request, *, rand: Callable[[], float] | None = None
    ) -> list[Target] | Reply:
        """The location service for our domains (then static routes, then 404/480);
        static routes, the outbound proxy or RFC 3263 for the rest."""
        uri = request.uri
        if self.is_local_uri(uri):
            assert isinstance(uri, SipURI)
            aor = self.aor_of(uri)
            bindings = await self.location.lookup(aor)
            targets = [t for b in bindings if (t := self._binding_target(b)) is not None]
            if targets:
                return targets
            hops = self._static_hops(uri, rand)
            if hops:
                return [Target(uri=uri, next_hops=hops)]
            exists = await self._user_exists(aor)
            self.stats["lookup_misses"] += 1
            return (480, None, []) if exists else (404, None, [])
        if isinstance(uri, SipURI):
            return [self._foreign_target(uri, rand)]
        hops = self._static_hops(uri, rand)
        if hops:
            return [Target(uri=uri, next_hops=hops)]
        return (404, "No route for this number", [])

    async def _user_exists(self, aor: str) -> bool:
        if self.user_exists is None:
            return False
        result = self.user_exists(aor)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def _static_hops(self, uri: URI, rand: Callable[[], float] | None) -> tuple[SipURI, ...]:
        route = self.routes.match(uri)
        if route is None:
            return ()
        return tuple(route.order(rand if rand is not None else self.routes.rand))

    def _foreign_target(self, uri: SipURI, rand: Callable[[], float] | None = None) -> Target:
        hops = self._static_hops(uri, rand)
        if not hops and self.outbound_proxy is not None:
            hops = (self.outbound_proxy,)
        return Target(uri=uri, next_hops=hops)

    def _binding_target(self, binding: Binding) -> Target | None:
        """A binding as a target: its contact, its Path as Route (RFC 3327) and, without
        a Path, its source as the first destination (NAT; over TCP/TLS the registered
        connection is reused, with the contact itself as the fallback)."""
        try:
            uri = parse_uri(binding.contact)
            route = [Address.parse(p) for p in binding.path]
        except RemoteProtocolError:
            return None
        if not isinstance(uri, SipURI):
            return None
        while route and self._is_our_route(route[0].uri):
            route.pop(0)
        destinations: tuple[Destination, ...] = ()
        fallback = False
        source = parse_source(binding.source) if not route else None
        if source is not None and _behind_nat(uri, source):
            destinations = (source,)
            fallback = source.transport != "UDP"
        return Target(
            uri=uri,
            route=tuple(str(a) for a in route),
            destinations=destinations,
            fallback_to_uri=fallback,
            q=binding.q if binding.q is not None else 1.0,
        )

    async def _expand_contacts(self, uris: Sequence[URI]) -> list[Target]:
        """Targets for URIs (3xx contacts, hook targets): ours through the location
        service, others through static routes / the outbound proxy / RFC 3263."""
        out: list[Target] = []
        for uri in uris:
            if self.is_local_uri(uri):
                assert isinstance(uri, SipURI)
                if uri.user is None:
                    continue
                bindings = await self.location.lookup(self.aor_of(uri))
                out.extend(t for b in bindings if (t := self._binding_target(b)) is not None)
            elif isinstance(uri, SipURI):
                out.append(self._foreign_target(uri))
            else:
                hops = self._static_hops(uri, None)
                if hops:
                    out.append(Target(uri=uri, next_hops=hops))
        return out

    # ------------------------------------------------------------------ redirect mode

    async def _redirect(
        self, request: Request, tx: ServerTransaction, *, local: bool, in_dialog: bool
    ) -> None:
        """Redirect server (RFC 3261 §8.3 / §21.3.3): 302 with the bindings in q order."""
        decision = None
        if self.hook is not None and not in_dialog:
            decision = await self._decide(request, tx.source, in_dialog=in_dialog)
        if isinstance(decision, Reject):
            await self._reply(tx, (decision.status, decision.reason, list(decision.headers)))
            return
        if isinstance(decision, Redirect):
            await self._reply_redirect(tx, decision.addresses, decision.status, decision.reason)
            return
        if isinstance(decision, Relay):
            uris: list[URI] = [*decision.target_uris] or [request.uri]
            await self._reply_redirect(tx, [Address(uri=u) for u in uris])
            return
        uri = request.uri
        if not (local and isinstance(uri, SipURI)):
            await self._reply(tx, (404, "Not a domain of this server", []))
            return
        aor = self.aor_of(uri)
        bindings = await self.location.lookup(aor)
        contacts: list[Address] = []
        for b in bindings:
            try:
                address = Address(uri=parse_uri(b.contact))
            except RemoteProtocolError:
                continue
            if b.q is not None:
                address = address.with_param("q", f"{b.q:g}")
            contacts.append(address)
        if contacts:
            await self._reply_redirect(tx, contacts)
            return
        exists = await self._user_exists(aor)
        await self._reply(tx, (480, None, []) if exists else (404, None, []))

    # ------------------------------------------------------------------ building copies

    def _branch_request(self, template: Request, target: Target) -> tuple[Request, SipURI | None]:
        """§16.6 steps 1-7 for one target: the copy with its Request-URI, the target's
        Route values, extra headers and the strict-router post-processing. Returns it
        with the URI to locate (the first Route, or the Request-URI)."""
        req = template.copy()
        if str(target.uri) != req.uri_text:
            req.uri = target.uri
        for value in reversed(target.route):
            req.headers.insert_first("Route", value)
        for name, value in target.headers:
            req.headers.add(name, value)
        routes = req.route
        if routes:
            first = routes[0].uri
            if not isinstance(first, SipURI):
                raise LocalProtocolError(f"cannot route to {first}")
            if not first.lr:  # §16.6 step 7: the next hop is a strict router
                old = req.uri_text
                req.headers.pop_first("Route")
                req.headers.add("Route", f"<{old}>")
                req.uri = first
            return req, first
        uri = req.uri
        return req, uri if isinstance(uri, SipURI) else None

    async def _destinations(
        self,
        request: Request,
        target: Target,
        hop: SipURI | None,
        *,
        rand_below: Callable[[int], int] | None = None,
    ) -> list[Destination]:
        """Where to send one branch, in failover order (§16.6 step 7, RFC 3263)."""
        out = list(target.destinations)
        if out and not target.fallback_to_uri:
            return out
        uris: list[SipURI] = list(target.next_hops) or ([hop] if hop is not None else [])
        if not uris and not out:
            raise LocationError(f"no SIP URI to route {request.uri_text} to", status_hint=404)
        last: LocationError | None = None
        for uri in uris:
            try:
                found = await locate(
                    uri,
                    resolver=self.endpoint.resolver,
                    supported_transports=self._transports(),
                    rand_below=rand_below,
                )
            except LocationError as exc:
                last = exc
                continue
            for t in found:
                dest = Destination(
                    transport=t.transport, host=t.address, port=t.port, server_name=t.host
                )
                if dest not in out:
                    out.append(dest)
            if len(out) >= MAX_DESTINATIONS:
                break
        if not out:
            raise last if last is not None else LocationError("no destination")
        return out[:MAX_DESTINATIONS]

    def _transports(self) -> tuple[str, ...]:
        names = {listener.transport for listener in self._listeners()}
        out = [t for t in ("UDP", "TCP", "TLS", "WS", "WSS") if t in names]
        out.extend(t for t in ("TCP", "TLS") if t not in out)
        return tuple(out)

    def _new_branch(self, loop: str) -> str:
        return make_branch(loop, self.endpoint.new_tag())

    def _prepare_copy(
        self,
        copy: Request,
        destination: Destination,
        *,
        inbound: Source | None,
        record_route: bool,
        branch: str,
    ) -> None:
        """§16.6 steps 4 and 8: Record-Route (two values when the request changes
        transport or address family, RFC 5658) and our Via."""
        if record_route:
            outbound = self._listener_towards(destination)
            arrived = self._listener_of(inbound) if inbound is not None else None
            if arrived is not None and outbound is not None and arrived != outbound:
                copy.headers.insert_first("Record-Route", self._rr(arrived, inbound, None))
            first = outbound or arrived
            if first is not None:
                rr = self._rr(first, inbound if first is arrived else None, destination)
                copy.headers.insert_first("Record-Route", rr)
        copy.headers.insert_first(
            "Via",
            f"SIP/2.0/{destination.transport} {VIA_PLACEHOLDER_HOST};branch={branch};rport",
        )

    def _listener_of(self, source: Source) -> Listener | None:
        fallback = None
        for listener in self._listeners():
            if listener.transport != source.transport:
                continue
            if listener.port == source.local[1] and (
                listener.host in _WILDCARDS or normalize_ip(listener.host) == source.local[0]
            ):
                return listener
            fallback = fallback or listener
        return fallback

    def _listener_towards(self, destination: Destination) -> Listener | None:
        v6 = ":" in destination.host
        for listener in self._listeners():
            if listener.transport == destination.transport and (":" in listener.host) == v6:
                return listener
        return None

    def _rr(
        self, listener: Listener, inbound: Source | None, destination: Destination | None
    ) -> str:
        host = listener.advertised_host
        if host in _WILDCARDS:
            if inbound is not None and inbound.local[0] not in _WILDCARDS:
                host = inbound.local[0]
            elif destination is not None:
                host = self.endpoint.transport._route_ip(destination.host)
        return record_route_value(host, listener.advertised_port, listener.transport)

    # ------------------------------------------------------------------ CANCEL, ACK

    def handle_cancel(self, cancel: Request, invite_tx: ServerTransaction) -> None:
        """The caller CANCELled a proxied INVITE (§16.10; the endpoint answered 200)."""
        self.stats["cancels"] += 1
        ctx = self._contexts.get(invite_tx)
        if ctx is not None:
            ctx.cancel()
        # Otherwise it is still being looked up: _cancelled_meanwhile answers 487.

    async def handle_ack(self, ack: Request, source: Source) -> None:
        """An ACK outside any transaction (for a 2xx), forwarded statelessly."""
        await self._stateless.ack(ack, source)

    async def handle_response(self, response: Response, source: Source) -> None:
        """A response without a client transaction, forwarded by its Via (§16.7, §16.11)."""
        await self._stateless.response(response, source)


def _behind_nat(contact: SipURI, source: Destination) -> bool:
    """Whether to send to where the REGISTER came from instead of the Contact.

    Over TCP/TLS/WS the registered connection is the only sure way back (a phone behind
    NAT cannot accept connections), so it is tried first. Over UDP only when the Contact's
    IP differs from the REGISTER's source IP (NAT rewrote it, RFC 3581 territory) or the
    Contact is not an IP at all: a third party registering someone else's contact from
    the same host (sipsak registering a SIPp UAS) must not have its own port used.
    """
    if source.transport != "UDP":
        return True
    host = contact.host.strip("[]")
    if not is_ip(host):
        return True
    return normalize_ip(host) != normalize_ip(source.host)
