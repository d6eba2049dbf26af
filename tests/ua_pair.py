"""An in-memory network of user agents, proxies and a registrar, with a manual clock.

Every node is a small sans-IO SIP element built the way the asyncio ``UserAgent`` wires
the same pieces to the ``Endpoint``: a real :class:`TransactionLayer`, the UAS core's
:class:`TwoXXRetransmitter`, and the cores under test (:class:`InviteSession`,
:class:`Registration`).  Messages cross the network as bytes and are parsed again on
arrival (so what a peer sees is what went on the wire).  Hosts are names
(``alice.test``); a request goes to its next hop's host, a response to its top Via's.

* :class:`Network` -- ``run()`` delivers until quiet; ``advance(seconds)`` moves the clock
  from deadline to deadline firing timers (nothing sleeps); ``drop`` loses chosen
  messages; ``trace`` records ``(time, src, dst, first line)``.
* :class:`Phone` -- a user agent: ``call(...)`` returns the caller's session; incoming
  INVITEs create a session and call ``phone.on_invite(session)`` (the application's
  policy: ring, answer, reject...); ``challenge`` makes it ask for Digest credentials on
  the methods listed.  Every session event lands in ``phone.log``.
* :class:`Proxy` -- a stateless proxy: forks to every registered host of a user,
  optionally Record-Routes (loose ``;lr`` or an RFC 2543 strict router).
* :class:`RegistrarNode` -- ``sipwire.apps.registrar.process_register`` on a dict, with
  optional Digest challenges and scripted failures.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sipwire.apps.registrar import RegistrarPolicy, process_register
from sipwire.core.address import Address
from sipwire.core.dialog import (
    SendAck,
    SendCancel,
    SendRequest,
    SendResponse,
    reject_out_of_dialog,
    session_key,
)
from sipwire.core.digest import Algorithm, DigestClient, DigestServer, ha1
from sipwire.core.invite import InviteSession, SessionConfig
from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.offeranswer import MediaCapability, MediaSession
from sipwire.core.registration import Registration, RegistrationConfig
from sipwire.core.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    InviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTimeout,
    TransportFailure,
)
from sipwire.core.uas2xx import TwoXXRetransmitter
from sipwire.core.uri import SipURI

Drop = Callable[[str, str, "Request | Response"], bool]


@dataclass
class Hop:
    time: float
    src: str
    dst: str
    first_line: str
    message: Request | Response


class Network:
    """Nodes by host name, a FIFO of messages in flight and a manual clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.trace: list[Hop] = []
        self.dropped: list[Hop] = []
        self.drop: Drop | None = None

    def attach(self, node: Node) -> None:
        self.nodes[node.host] = node

    def send(self, src: str, dst: str, message: Request | Response) -> None:
        data = message.to_bytes()
        hop = Hop(self.now, src, dst, data.split(b"\r\n", 1)[0].decode(), message)
        if self.drop is not None and self.drop(src, dst, message):
            self.dropped.append(hop)
            return
        self.trace.append(hop)
        self.queue.append((src, dst, data))

    def run(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if not self.queue:
                return
            src, dst, data = self.queue.popleft()
            node = self.nodes.get(dst)
            if node is not None:
                node.receive(parse_message(data), src)
        raise AssertionError("the network did not go quiet (a message loop?)")

    def next_deadline(self) -> float | None:
        deadlines = [d for n in self.nodes.values() if (d := n.next_deadline()) is not None]
        return min(deadlines, default=None)

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds``, firing every timer at its deadline."""
        self.run()
        target = self.now + seconds
        for _ in range(100_000):
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            for node in list(self.nodes.values()):
                node.handle_timer(self.now)
            self.run()
        else:
            raise AssertionError("timers kept firing")
        self.now = target

    def lines(self, src: str | None = None, dst: str | None = None) -> list[str]:
        """First lines of what went over the wire, optionally filtered."""
        return [
            h.first_line
            for h in self.trace
            if (src is None or h.src == src) and (dst is None or h.dst == dst)
        ]

    def trace_requests(self, src: str) -> list[Request]:
        """Every request ``src`` put on the wire, in order."""
        return [h.message for h in self.trace if isinstance(h.message, Request) and h.src == src]

    def messages(self, method: str, src: str | None = None) -> list[Request]:
        return [
            h.message
            for h in self.trace
            if isinstance(h.message, Request)
            and h.message.method == method
            and (src is None or h.src == src)
        ]


def _tokens(prefix: str) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


class Node:
    """A SIP element with a transaction layer on the in-memory network."""

    def __init__(self, net: Network, host: str) -> None:
        self.net = net
        self.host = host
        self.random_token = _tokens(host.split(".", maxsplit=1)[0] + "-")
        self.txl = TransactionLayer(TimerConfig(), random_token=self.random_token)
        net.attach(self)

    def via(self, request: Request) -> None:
        branch = self.txl.new_branch()
        request.headers.insert_first("Via", f"SIP/2.0/UDP {self.host};branch={branch}")

    def flush(self) -> None:
        """Send what the transaction layer queued, then handle its events, until quiet."""
        while True:
            outgoing, events = self.txl.outgoing(), self.txl.events()
            if not outgoing and not events:
                return
            for out in outgoing:
                self.net.send(self.host, str(out.peer), out.message)
            for event in events:
                self.on_event(event)

    def receive(self, message: Request | Response, src: str) -> None:
        self.txl.receive(message, peer=src, reliable=False, now=self.net.now)
        self.flush()

    def on_event(self, event: Any) -> None:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        return self.txl.next_deadline()

    def handle_timer(self, now: float) -> None:
        self.txl.handle_timer(now)
        self.flush()


def _host_of(uri: Any) -> str:
    assert isinstance(uri, SipURI), uri
    return uri.host


Owner = InviteSession | Registration


@dataclass
class Phone(Node):
    """A user agent (see the module docstring)."""

    net: Network
    host: str
    user: str = "user"
    port: int = 4000
    config: SessionConfig = field(default_factory=SessionConfig)
    media: bool = True
    auth: DigestClient | None = None
    challenge: DigestServer | None = None
    challenge_methods: tuple[str, ...] = ("INVITE", "BYE")
    challenge_status: int = 401  # 407: Proxy-Authenticate / Proxy-Authorization
    on_invite: Callable[[Phone, InviteSession], None] | None = None
    rand: Callable[[int], int] = field(default=lambda n: 0)

    def __post_init__(self) -> None:
        Node.__init__(self, self.net, self.host)
        self.uas2xx = TwoXXRetransmitter()
        self.sessions: dict[tuple[str, str], InviteSession] = {}
        self.by_invite_tx: dict[ServerTransaction, InviteSession] = {}
        self.owners: dict[ClientTransaction, Owner] = {}
        self.client_of: dict[int, ClientTransaction] = {}
        self.registrations: list[Registration] = []
        self.log: list[tuple[InviteSession, Any]] = []
        self.reg_log: list[Any] = []
        self.incoming: list[InviteSession] = []
        self.ha1 = ha1(self.user, "test", "secret", Algorithm.MD5)

    # -- application side ---------------------------------------------------------

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.host}"

    def new_media(self) -> MediaSession | None:
        if not self.media:
            return None
        return MediaSession(
            streams=[MediaCapability(port=self.port)],
            address=f"192.0.2.{len(self.host)}",
            random_below=lambda n: 1000 + self.port,
        )

    def call(self, target: str, *, via: str | None = None, **kw: Any) -> InviteSession:
        """Start a call to ``target`` (through the proxy host ``via`` as a preloaded
        loose route when given)."""
        route = [f"<sip:{via};lr>"] if via is not None else []
        session = InviteSession.uac(
            target=target,
            from_=f"<{self.aor}>",
            contact=f"<{self.aor}>",
            media=kw.pop("media", self.new_media()),
            route=route,
            auth=kw.pop("auth", self.auth),
            config=kw.pop("config", self.config),
            random_token=self.random_token,
            random_below=self.rand,
            **kw,
        )
        self.sessions[session.key] = session
        session.invite(self.net.now)
        self.pump(session)
        return session

    def register(self, registrar: str, **kw: Any) -> Registration:
        reg = Registration(
            registrar=f"sip:{registrar}",
            aor=f"<sip:{self.user}@{registrar}>",
            contact=f"<{self.aor}>",
            auth=kw.pop("auth", self.auth),
            config=kw.pop("config", RegistrationConfig()),
            random_token=self.random_token,
            random_below=kw.pop("random_below", lambda n: n - 1),
            **kw,
        )
        self.registrations.append(reg)
        reg.register(self.net.now)
        self.pump(reg)
        return reg

    def act(self, session: InviteSession | Registration, fn: Callable[[], Any]) -> Any:
        """Run an application call on a core, then send what it queued."""
        result = fn()
        self.pump(session)
        return result

    def events(self, session: InviteSession | None = None) -> list[Any]:
        return [e for s, e in self.log if session is None or s is session]

    def event_types(self, session: InviteSession | None = None) -> list[str]:
        return [type(e).__name__ for e in self.events(session)]

    # -- the shell ------------------------------------------------------------------

    def pump(self, core: Owner) -> None:
        now = self.net.now
        for out in core.outgoing():
            if isinstance(out, SendRequest):
                self.via(out.request)
                txn = self.txl.send_request(
                    out.request, peer=_host_of(out.next_hop), reliable=False, now=now
                )
                self.owners[txn] = core
                self.client_of[id(out.request)] = txn
            elif isinstance(out, SendAck):
                self.via(out.request)
                self.txl.send_stateless(out.request, peer=_host_of(out.next_hop), reliable=False)
            elif isinstance(out, SendCancel):
                txn = self.client_of[id(out.invite)]
                assert isinstance(txn, InviteClientTransaction)
                self.txl.cancel(txn, now=now)
            elif isinstance(out, SendResponse):
                stx = out.transaction
                assert isinstance(stx, ServerTransaction)
                self.send_response(stx, out.response)
        if isinstance(core, InviteSession):
            for event in core.events():
                self.log.append((core, event))
        else:
            self.reg_log.extend(core.events())
        self.flush()

    def send_response(self, stx: ServerTransaction, response: Response) -> None:
        now = self.net.now
        if stx.terminated:
            self.txl.send_stateless(response, peer=stx.peer, reliable=False)
        else:
            self.txl.send_response(stx, response, now)
        if stx.method == "INVITE" and 200 <= response.status < 300:
            self.uas2xx.start(response, peer=stx.peer, reliable=False, now=now)

    def answer_plain(self, stx: ServerTransaction, status: int, **headers: str) -> None:
        response = make_response(stx.request, status, to_tag=self.random_token())
        for name, value in headers.items():
            response.headers.add(name.replace("_", "-"), value)
        self.send_response(stx, response)
        self.flush()

    def authorized(self, request: Request) -> bool:
        if self.challenge is None or request.method not in self.challenge_methods:
            return True
        header = "Authorization" if self.challenge_status == 401 else "Proxy-Authorization"
        creds = self.challenge.select(request.headers.values(header))
        if creds is None:
            return False
        verdict = self.challenge.verify(
            creds, ha1=self.ha1, method=request.method, now=self.net.now
        )
        return verdict.ok

    def on_event(self, event: Any) -> None:
        now = self.net.now
        if isinstance(event, RequestReceived):
            request, stx = event.request, event.transaction
            if not self.authorized(request):
                assert self.challenge is not None
                status = self.challenge_status
                response = make_response(request, status, to_tag=self.random_token())
                name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                for ch in self.challenge.challenges(now, algorithms=(Algorithm.MD5,)):
                    response.headers.add(name, str(ch))
                self.send_response(stx, response)
                return
            if request.method == "INVITE" and request.to.tag is None:
                session = InviteSession.uas(
                    request,
                    transaction=stx,
                    contact=f"<{self.aor}>",
                    now=now,
                    media=self.new_media(),
                    local_tag=self.random_token(),
                    config=self.config,
                    auth=self.auth,
                    random_token=self.random_token,
                    random_below=self.rand,
                )
                stx.to_tag = session.local_tag
                self.sessions[session.key] = session
                self.by_invite_tx[stx] = session
                self.incoming.append(session)
                self.pump(session)
                if self.on_invite is not None and not session.ended:
                    self.on_invite(self, session)
                    self.pump(session)
                return
            key = session_key(request)
            session = self.sessions.get(key) if key is not None else None
            if session is None:
                status = 481 if key is not None else 405
                response = (
                    reject_out_of_dialog(request)
                    if status == 481
                    else make_response(request, 405, to_tag=self.random_token())
                )
                self.send_response(stx, response)
                return
            session.receive_request(request, now, transaction=stx)
            self.pump(session)
        elif isinstance(event, AckReceived):
            self.uas2xx.acknowledge(event.request)
            key = session_key(event.request)
            session = self.sessions.get(key) if key is not None else None
            if session is not None:
                session.receive_request(event.request, now)
                self.pump(session)
        elif isinstance(event, CancelReceived):
            invite_tx = event.invite_transaction
            session = self.by_invite_tx.get(invite_tx) if invite_tx is not None else None
            if session is None:
                self.send_response(event.transaction, make_response(event.cancel_request, 481))
                return
            session.receive_request(event.cancel_request, now, transaction=invite_tx)
            self.pump(session)
        elif isinstance(event, ResponseReceived):
            owner = self.owners.get(event.transaction)
            if owner is not None:
                owner.receive_response(event.response, now)
                self.pump(owner)
        elif isinstance(event, StrayResponse):
            key = session_key(event.response)
            session = self.sessions.get(key) if key is not None else None
            if session is not None:
                session.receive_response(event.response, now)
                self.pump(session)
        elif isinstance(event, TransactionTimeout | TransportFailure):
            txn = event.transaction
            owner = self.owners.get(txn) if isinstance(txn, ClientTransaction) else None
            if owner is not None:
                status = 408 if isinstance(event, TransactionTimeout) else 503
                owner.receive_response(make_response(txn.request, status), now)
                self.pump(owner)

    def next_deadline(self) -> float | None:
        deadlines = [self.txl.next_deadline(), self.uas2xx.next_deadline()]
        deadlines += [s.next_deadline() for s in self.sessions.values()]
        deadlines += [r.next_deadline() for r in self.registrations]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        self.txl.handle_timer(now)
        self.flush()
        resend, _given_up = self.uas2xx.handle_timer(now)
        for pending in resend:
            self.net.send(self.host, str(pending.peer), pending.response)
        for core in [*self.sessions.values(), *self.registrations]:
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
                self.pump(core)
        for key in [k for k, s in self.sessions.items() if s.closed]:
            del self.sessions[key]


class Proxy(Node):
    """A stateless proxy (RFC 3261 §16.11) that forks to every host of ``location[user]``
    and Record-Routes when asked (``strict=True``: an RFC 2543 strict router, no ``;lr``)."""

    def __init__(
        self,
        net: Network,
        host: str,
        location: dict[str, list[str]],
        *,
        record_route: bool = True,
        strict: bool = False,
    ) -> None:
        super().__init__(net, host)
        self.location = location
        self.record_route = record_route
        self.strict = strict
        self.seen: list[Request] = []

    def receive(self, message: Request | Response, src: str) -> None:
        if isinstance(message, Response):
            message.headers.pop_first("Via")
            self.net.send(self.host, message.top_via.host, message)
            return
        self.seen.append(message.copy())
        routes = message.route
        uri = message.uri
        assert isinstance(uri, SipURI)
        if routes and _host_of(routes[0].uri) == self.host:
            message.headers.pop_first("Route")  # loose routing: we were the next hop
        elif uri.host == self.host and routes and message.to.tag is not None:
            # Strict routing (RFC 2543): the Request-URI named us; the last Route is the
            # next Request-URI.
            last = str(message.headers.values("Route")[-1])
            values = message.route
            message.headers.remove("Route")
            for address in values[:-1]:
                message.headers.add("Route", str(address))
            message.uri = Address.parse(last).uri
        uri = message.uri
        assert isinstance(uri, SipURI)
        top_branch = message.top_via.branch or ""
        if uri.host == self.host and uri.user in self.location:
            targets = [(i, uri.replace(host=h)) for i, h in enumerate(self.location[uri.user])]
        else:
            targets = [(0, uri)]
        for index, target in targets:
            out = message.copy()
            out.uri = target
            digest = hashlib.sha256(f"{top_branch}|{index}".encode()).hexdigest()[:16]
            out.headers.insert_first("Via", f"SIP/2.0/UDP {self.host};branch=z9hG4bK{digest}")
            if self.record_route and message.method == "INVITE" and message.to.tag is None:
                rr = f"<sip:{self.host}>" if self.strict else f"<sip:{self.host};lr>"
                out.headers.insert_first("Record-Route", rr)
            mf = out.max_forwards
            out.headers.set("Max-Forwards", str((70 if mf is None else mf) - 1))
            hops = out.route
            dst = (
                _host_of(hops[0].uri)
                if hops and isinstance(hops[0].uri, SipURI) and hops[0].uri.lr
                else target.host
            )
            self.net.send(self.host, dst, out)

    def on_event(self, event: Any) -> None:  # pragma: no cover - stateless
        pass


class RegistrarNode(Node):
    """``process_register`` over a dict; optional challenges; ``fail_next`` statuses are
    answered (in order) before anything else."""

    def __init__(
        self,
        net: Network,
        host: str,
        *,
        policy: RegistrarPolicy | None = None,
        challenge: DigestServer | None = None,
        users: Iterable[str] = (),
    ) -> None:
        super().__init__(net, host)
        self.policy = policy or RegistrarPolicy()
        self.challenge = challenge
        self.ha1s = {u: ha1(u, "test", "secret", Algorithm.MD5) for u in users}
        self.bindings: dict[str, list[Any]] = {}
        self.fail_next: list[tuple[int, tuple[tuple[str, str], ...]]] = []
        self.requests: list[Request] = []

    def on_event(self, event: Any) -> None:
        if not isinstance(event, RequestReceived):
            return
        request, stx = event.request, event.transaction
        self.requests.append(request)
        now = self.net.now
        tag = self.random_token()
        if self.fail_next:
            status, headers = self.fail_next.pop(0)
            response = make_response(request, status, to_tag=tag)
            for name, value in headers:
                response.headers.add(name, value)
            self.txl.send_response(stx, response, now)
            return
        if self.challenge is not None:
            creds = self.challenge.select(request.headers.values("Authorization"))
            user = creds.username if creds is not None else None
            verdict = (
                self.challenge.verify(
                    creds, ha1=self.ha1s.get(user or ""), method="REGISTER", now=now
                )
                if creds is not None
                else None
            )
            if verdict is None or not verdict.ok:
                response = make_response(request, 401, to_tag=tag)
                stale = verdict is not None and verdict.stale
                for ch in self.challenge.challenges(now, stale=stale, algorithms=(Algorithm.MD5,)):
                    response.headers.add("WWW-Authenticate", str(ch))
                self.txl.send_response(stx, response, now)
                return
        aor = request.to.uri
        assert isinstance(aor, SipURI)
        key = aor.aor()
        outcome = process_register(
            request, self.bindings.get(key, []), aor=key, now=now, policy=self.policy
        )
        if outcome.bindings is not None:
            self.bindings[key] = outcome.bindings
        response = make_response(request, outcome.status, outcome.reason, to_tag=tag)
        for name, value in outcome.headers:
            response.headers.add(name, value)
        self.txl.send_response(stx, response, now)
