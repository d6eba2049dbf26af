"""The asyncio SIP endpoint: transports + the sans-IO transaction layer + RFC 3263.

:class:`Endpoint` is what servers and user agents are built on. It owns a
:class:`~sipwire.aio.transport.TransportLayer`, a sans-IO
:class:`~sipwire.core.transaction.TransactionLayer` and the UAS core's 2xx
retransmitter (:mod:`sipwire.core.uas2xx`), and drives all of them from ONE
``loop.call_at`` handle that is re-armed after every input (DESIGN: "time is an
argument"; the aioquic pattern).

Flow of an input: a message from the transport, a call from the application, or the
timer -> the core -> :meth:`Endpoint._pump` drains the core's queued messages (sent in
order per peer) and then its events (dispatched to handlers and client-transaction
handles) -> the timer is re-armed to the earliest core deadline.

Server side: ``ep.on("OPTIONS", handler)`` with ``handler(request, tx)``; requests
without a handler get 405 + Allow (known methods) or 501 (unknown methods, RFC 3261
§8.2.1); malformed requests get the parser's status hint and reason (§21.4.1).

Client side: ``await ep.request(req)`` returns the final response (a timeout is a
synthesized 408 and a transport failure a 503, §8.1.3.1); ``ep.send_request(req)``
returns a :class:`ClientTransaction` handle whose ``responses()`` yields provisional
and final responses. The next hop comes from RFC 3263 (``sipwire.aio.dns.locate``) on
the outbound proxy, the first Route or the Request-URI, with failover to the next target
on a transport error, a timeout or a 503 (RFC 3263 §4.3).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sipwire.aio._transport_common import Destination, Listener, Source, TransportConfig
from sipwire.aio.dns import Resolver, locate
from sipwire.aio.transport import (
    VIA_PLACEHOLDER_HOST,
    TransportError,
    TransportLayer,
    apply_received,
)
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core._parser import InvalidMessage
from sipwire.core.headervalues import Via
from sipwire.core.locate import LocationError
from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.transaction import (
    AckReceived,
    CancelReceived,
    InviteClientTransaction,
    MergedRequest,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    StrayResponse,
    TimerConfig,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from sipwire.core.transaction import ClientTransaction as CoreClientTransaction
from sipwire.core.transaction import ServerTransaction as CoreServerTransaction
from sipwire.core.uas2xx import TwoXXRetransmitter, ack_key
from sipwire.core.uri import SipURI, parse_uri

__all__ = [
    "ClientTransaction",
    "Endpoint",
    "ServerTransaction",
    "TraceRecord",
]

_log = logging.getLogger("sipwire.endpoint")
_trace_log = logging.getLogger("sipwire.trace")

#: Methods the endpoint knows: unhandled ones get 405 + Allow, others 501 (§8.2.1).
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)

# Statistics keys, made once; methods the endpoint does not know are counted together
# (".other") so that a peer inventing methods cannot grow the counters without bound.
_REQUESTS_IN = {m: f"requests_in.{m}" for m in KNOWN_METHODS}
_REQUESTS_OUT = {m: f"requests_out.{m}" for m in KNOWN_METHODS}
_RESPONSES_IN = {c: f"responses_in.{c}xx" for c in range(1, 7)}
_RESPONSES_OUT = {c: f"responses_out.{c}xx" for c in range(1, 7)}

Handler = Callable[["Request", "ServerTransaction"], Awaitable[None] | None]
AckHandler = Callable[[Request, Source], Awaitable[None] | None]
ResponseHandler = Callable[[Response, Source], Awaitable[None] | None]
StatelessHandler = Callable[[Request, Source], bool]
CancelHandler = Callable[[Request, "ServerTransaction"], Awaitable[None] | None]
TraceHook = Callable[["TraceRecord"], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRecord:
    """One message in or out, for the per-message trace hook."""

    direction: str  # "in" | "out"
    transport: str
    remote: tuple[str, int]
    first_line: str
    message: Request | Response


def _first_line(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} {message.uri_text} SIP/2.0"
    return f"SIP/2.0 {message.status} {message.reason}"


class ServerTransaction:
    """The application's handle on one server transaction (RFC 3261 §17.2).

    ``to_tag`` is chosen once, so every response of this transaction carries the same
    To tag (§8.2.6.2); it is left alone when the request already has one (in-dialog).
    """

    def __init__(self, endpoint: Endpoint, core: CoreServerTransaction, source: Source) -> None:
        self._ep = endpoint
        self.core = core
        self.request: Request = core.request
        self.source = source
        # An INVITE's tag is chosen now: the layer's 200 to a CANCEL must carry it too
        # (§9.2); other requests get one only if a response needs it.
        self._to_tag: str | None = None
        if core.is_invite:
            self._to_tag = core.to_tag = endpoint.new_tag()
        #: The final response sent, once there is one.
        self.final: Response | None = None
        # The two events are made on first use: most transactions never need them.
        self._cancelled: asyncio.Event | None = None
        self._acked: asyncio.Event | None = None
        self._was_cancelled = False
        self._was_acked = False

    @property
    def to_tag(self) -> str:
        """The To tag of this transaction's responses (one per transaction, §8.2.6.2)."""
        tag = self._to_tag
        if tag is None:
            tag = self._to_tag = self.core.to_tag = self._ep.new_tag()
        return tag

    @to_tag.setter
    def to_tag(self, tag: str) -> None:
        self._to_tag = self.core.to_tag = tag

    @property
    def cancelled(self) -> asyncio.Event:
        """Set when a CANCEL matched this INVITE (the endpoint answered the CANCEL 200)."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
            if self._was_cancelled:
                self._cancelled.set()
        return self._cancelled

    @property
    def acked(self) -> asyncio.Event:
        """For an INVITE answered 2xx: set when its ACK arrives (§13.3.1.4)."""
        if self._acked is None:
            self._acked = asyncio.Event()
            if self._was_acked:
                self._acked.set()
        return self._acked

    def _set_cancelled(self) -> None:
        self._was_cancelled = True
        if self._cancelled is not None:
            self._cancelled.set()

    def _set_acked(self) -> None:
        self._was_acked = True
        if self._acked is not None:
            self._acked.set()

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def is_final(self) -> bool:
        return self.final is not None

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """A response to this request with this transaction's To tag (none on 100), the
        endpoint's Server header (unless ``headers`` has one) and Content-Length."""
        request = self.request
        tag: str | None = None
        if status != 100 and (self._to_tag is not None or request.to.tag is None):
            tag = self.to_tag
        response = make_response(request, status, reason, to_tag=tag)
        add = response.headers.add
        server = self._ep.server_header
        for name, value in headers:
            add(name, value)
            if server and name.lower() == "server":
                server = None
        if server:
            add("Server", server)
        if body:
            response.body = body
        return response

    async def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Build and send a response; returns it."""
        return self.respond_nowait(status, reason, headers=headers, body=body)

    def respond_nowait(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """:meth:`respond` for synchronous handlers: the response is handed to the
        transaction (and so to the transport) before this returns; returns it."""
        response = self.make_response(status, reason, headers=headers, body=body)
        self._send(response, retransmit_2xx=True, prepared=True)
        return response

    async def send(self, response: Response, *, retransmit_2xx: bool = True) -> None:
        """Send ``response`` on this transaction.

        A 2xx to an INVITE is retransmitted by the endpoint until the ACK arrives
        (§13.3.1.4) unless ``retransmit_2xx=False`` (a proxy forwarding a 2xx: the
        downstream UAS retransmits, §16.7). A second final response is refused
        (LocalProtocolError), except further 2xx to an INVITE (forking proxies).
        """
        self.send_nowait(response, retransmit_2xx=retransmit_2xx)

    def send_nowait(self, response: Response, *, retransmit_2xx: bool = True) -> None:
        """:meth:`send` for synchronous handlers (same rules and errors)."""
        self._send(response, retransmit_2xx=retransmit_2xx, prepared=False)

    def _send(self, response: Response, *, retransmit_2xx: bool, prepared: bool) -> None:
        if self.final is not None and not (
            self.core.is_invite and 200 <= response.status < 300 and self.final.status < 300
        ):
            raise LocalProtocolError(f"{self.method} already answered {self.final.status}")
        if response.status >= 200:
            self.final = response
        self._ep._send_response(self, response, retransmit_2xx=retransmit_2xx, prepared=prepared)


class ClientTransaction:
    """The application's handle on a request it sent (one or more core transactions:
    RFC 3263 failover retries the next target with a new branch)."""

    def __init__(self, endpoint: Endpoint, request: Request) -> None:
        self._ep = endpoint
        self.request = request
        self._queue: asyncio.Queue[Response] = asyncio.Queue(maxsize=256)
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.core: CoreClientTransaction | None = None
        self.destination: Destination | None = None
        self._provisional_seen = False
        self._cancel_sent = False
        self._task: asyncio.Task[None] | None = None
        self._attempt_waiter: asyncio.Future[Response | None] | None = None
        #: Called synchronously with every response this handle receives, in order:
        #: provisionals, the final one (also a synthesized 408/503), and further 2xx
        #: while the INVITE is Accepted (retransmissions, forks; RFC 6026) -- which
        #: ``responses()`` no longer yields once it has returned. A proxy forwards
        #: 2xx retransmissions upstream with it (RFC 3261 §16.7 step 9).
        self.on_response: Callable[[Response], None] | None = None

    @property
    def done(self) -> bool:
        return self.final.done()

    def _deliver(self, response: Response) -> None:
        if self._queue.full():  # a flood of provisionals: keep the newest
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(response)
        if response.status < 200:
            self._provisional_seen = True
        elif not self.final.done():
            self.final.set_result(response)
        self._notify(response)

    def _fail(self, status: int, reason: str) -> None:
        if not self.final.done():
            response = make_response(self.request, status, reason)
            self._queue.put_nowait(response)
            self.final.set_result(response)
            self._notify(response)

    def _notify(self, response: Response) -> None:
        if self.on_response is not None:
            try:
                self.on_response(response)
            except Exception:
                _log.exception("on_response callback failed")

    async def responses(self) -> AsyncIterator[Response]:
        """Every response: provisionals, the final one, and (INVITE) further 2xx that
        arrive while the transaction is Accepted (forked answers, RFC 6026)."""
        while True:
            if self.final.done() and self._queue.empty():
                return
            getter = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait({getter, self.final}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                response = getter.result()
                yield response
                if response.status >= 200 and self._queue.empty():
                    return
            else:
                getter.cancel()

    async def wait_final(self, timeout: float | None = None) -> Response:
        return await asyncio.wait_for(asyncio.shield(self.final), timeout)

    async def cancel(self) -> None:
        """CANCEL the INVITE (§9.1): sent once a provisional has arrived (or at once if
        one already has); a no-op after the final response."""
        if self.request.method != "INVITE":
            raise LocalProtocolError("only an INVITE can be cancelled (§9.1)")
        # The core holds the CANCEL until a provisional arrives and drops it if a final
        # response comes first (§9.1).
        if not self._cancel_sent and not self.final.done():
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self.core is None or self.core.terminated:
            return
        self._cancel_sent = True
        self._ep._cancel(self.core)


class Endpoint:
    """A SIP endpoint on asyncio; see the module docstring and ``docs/design.md``."""

    def __init__(
        self,
        *,
        listen: Sequence[str] = ("udp:127.0.0.1:5060",),
        certfile: str | None = None,
        keyfile: str | None = None,
        timers: TimerConfig | None = None,
        transport_config: TransportConfig | None = None,
        user_agent: str | None = "sipwire",
        server_header: str | None = None,
        trace: TraceHook | None = None,
        resolver: Resolver | None = None,
        outbound_proxy: str | SipURI | None = None,
        detect_merged: bool = True,
        max_transactions: int = 100_000,
        random_token: Callable[[], str] | None = None,
        allow: Iterable[str] | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.listen_specs = list(listen)
        #: SO_REUSEPORT on every listener (``sipwire serve --workers N``).
        self.reuse_port = reuse_port
        self._certfile = certfile
        self._keyfile = keyfile
        self.timers = timers or TimerConfig()
        self.user_agent = user_agent
        self.server_header = server_header if server_header is not None else user_agent
        self.trace = trace
        self.resolver = resolver
        proxy = parse_uri(outbound_proxy) if isinstance(outbound_proxy, str) else outbound_proxy
        if proxy is not None and not isinstance(proxy, SipURI):
            raise LocalProtocolError("the outbound proxy must be a sip: or sips: URI")
        self.outbound_proxy: SipURI | None = proxy
        self._token = random_token or _TokenPool().token
        self._allow_override = list(allow) if allow is not None else None
        self.transport = TransportLayer(
            on_message=self._on_message,
            on_malformed=self._on_malformed,
            config=transport_config,
        )
        self.txl = TransactionLayer(
            self.timers,
            random_token=self._token,
            max_transactions=max_transactions,
            detect_merged=detect_merged,
        )
        self.uas2xx = TwoXXRetransmitter(t1=self.timers.t1, t2=self.timers.t2)
        self._handlers: dict[str, Handler] = {}
        self._default_handler: Handler | None = None
        self._ack_handler: AckHandler | None = None
        self._stray_handler: ResponseHandler | None = None
        self._cancel_handler: CancelHandler | None = None
        self._stateless_handler: StatelessHandler | None = None
        self._servers: dict[CoreServerTransaction, ServerTransaction] = {}
        self._clients: dict[CoreClientTransaction, ClientTransaction] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._send_chains: dict[Any, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._pumping = False
        self.stats: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Endpoint:
        self._loop = asyncio.get_running_loop()
        for spec in self.listen_specs:
            scheme = spec.split(":", 1)[0].lower()
            if scheme in ("tls", "wss"):
                await self.transport.listen(
                    spec, certfile=self._certfile, keyfile=self._keyfile, reuse_port=self.reuse_port
                )
            else:
                await self.transport.listen(spec, reuse_port=self.reuse_port)
        return self

    async def close(self, *, grace: float = 2.0) -> None:
        """Stop: let live transactions finish for up to ``grace`` seconds, then close."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while len(self.txl) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    async def __aenter__(self) -> Endpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close(grace=0.0)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self.transport.listeners

    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else asyncio.get_running_loop().time()

    def new_tag(self) -> str:
        return self._token()

    def new_call_id(self) -> str:
        return self._token() + self._token()

    def contact_uri(self, transport: str = "UDP", *, user: str | None = None) -> SipURI:
        """A SIP URI that reaches this endpoint over ``transport`` (its first listener)."""
        listener = self.transport.listener(transport)
        if listener is None:
            raise LocalProtocolError(f"no {transport} listener")
        host = listener.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        params: tuple[tuple[str, str | None], ...] = ()
        if listener.transport != "UDP":
            params = (("transport", listener.transport.lower()),)
        return SipURI(user=user, host=host, port=listener.advertised_port, params=params)

    def statistics(self) -> dict[str, int]:
        """Counters: messages in/out by method and status class, transactions, timeouts,
        malformed input, and per-transport totals (``udp.messages_in`` ...)."""
        out = dict(self.stats)
        out["transactions_live"] = len(self.txl)
        out["uas_2xx_pending"] = len(self.uas2xx)
        for name, st in self.transport.stats.items():
            for key, value in st.as_dict().items():
                if value:
                    out[f"{name.lower()}.{key}"] = value
        return out

    # ------------------------------------------------------------------ handlers

    def on(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    def on_request(self, handler: Handler) -> None:
        self._default_handler = handler

    def on_ack(self, handler: AckHandler) -> None:
        self._ack_handler = handler

    def on_stray_response(self, handler: ResponseHandler) -> None:
        self._stray_handler = handler

    def on_cancel(self, handler: CancelHandler) -> None:
        self._cancel_handler = handler

    def on_stateless_request(self, handler: StatelessHandler | None) -> None:
        """``handler(request, source) -> bool`` sees every inbound request (ACK and CANCEL
        too) before the transaction layer. Returning True takes it: no server transaction
        is made, nothing is answered or retransmitted for it (a stateless proxy, RFC 3261
        §16.11; the handler schedules its own work). False lets it through to the
        transaction layer and the usual handlers (e.g. a REGISTER for the registrar).
        Responses always go through the transaction layer (unmatched ones to
        ``on_stray_response``). ``None`` removes the handler."""
        self._stateless_handler = handler

    def allowed_methods(self) -> list[str]:
        if self._allow_override is not None:
            return self._allow_override
        if self._default_handler is not None:
            return sorted(KNOWN_METHODS)
        methods = set(self._handlers) | {"ACK", "CANCEL"}
        if "INVITE" in methods:
            methods.add("BYE")
        return sorted(methods)

    # ------------------------------------------------------------------ the core pump

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("endpoint task failed", exc_info=task.exception())

    def _pump(self) -> None:
        """Drain the core: its queued messages (sent in order per peer), then its events.

        Re-entrant calls (a synchronous handler answering from inside ``_dispatch``) only
        mark more work: the outermost call keeps draining until the core is empty, so
        messages still leave in the order the core queued them."""
        if self._pumping:
            return
        self._pumping = True
        txl = self.txl
        try:
            while True:
                for out in txl.outgoing():
                    self._queue_send(out.message, out.peer, out.key, out.transaction)
                events = txl.events()
                if not events:
                    break  # no handler ran: nothing new can have been queued
                for event in events:
                    try:
                        self._dispatch(event)
                    except Exception:
                        _log.exception("while handling %s", type(event).__name__)
        finally:
            self._pumping = False
        self._rearm()

    def _rearm(self) -> None:
        """Make the one timer handle fire no later than the earliest core deadline.

        A timer already armed for an earlier time is left alone (it fires, finds nothing
        due and re-arms): under load every input pushes deadlines later, so this avoids
        a cancel + ``call_at`` per message."""
        deadline = self.txl.next_deadline()
        other = self.uas2xx.next_deadline()
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        if deadline is None or self._loop is None:
            return
        if self._timer is not None:
            assert self._timer_at is not None
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(max(deadline, self._loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.now()
        self.txl.handle_timer(now)
        resend, given_up = self.uas2xx.handle_timer(now)
        for pending in resend:
            self.stats["2xx_retransmissions"] += 1
            self._queue_send(pending.response, pending.peer, None)
        for pending in given_up:
            self.stats["2xx_ack_timeouts"] += 1
            _log.info("no ACK for %s within 64*T1", _first_line(pending.response))
        self._pump()

    # ------------------------------------------------------------------ sending

    def _queue_send(
        self,
        message: Request | Response,
        peer: Any,
        key: Any,
        transaction: Transaction | None = None,
    ) -> None:
        """Send in order per peer.

        When nothing is in flight to ``peer`` and no connect or DNS lookup is needed (UDP
        to an IP address, an open connection), the message is written at once; otherwise
        it goes into a per-peer chain of tasks, each waiting for the previous one."""
        chains = self._send_chains
        if not chains or peer not in chains:
            try:
                if isinstance(peer, Source):
                    assert isinstance(message, Response)
                    flow = self.transport.send_response_nowait(
                        message, peer, via=_request_via(message, transaction)
                    )
                else:
                    flow = self.transport.send_nowait(message, peer)
            except (TransportError, OSError, RemoteProtocolError) as exc:
                # Report it from the loop, not from inside the pump that is sending.
                self._send_failed(message, peer, key, exc, deferred=True)
                return
            if flow is not None:
                self._count_out(message)
                if self._tracing():
                    self._emit_trace("out", flow.transport, flow.remote, message)
                return
        previous = self._send_chains.get(peer)
        task = asyncio.ensure_future(self._send_after(previous, message, peer, key))
        self._send_chains[peer] = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._send_chains.get(peer) is t:
                del self._send_chains[peer]

        task.add_done_callback(done)

    async def _send_after(
        self, previous: asyncio.Task[None] | None, message: Request | Response, peer: Any, key: Any
    ) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        try:
            if isinstance(peer, Source):
                assert isinstance(message, Response)
                flow = await self.transport.send_response(message, peer)
            else:
                flow = await self.transport.send(message, peer)
        except (TransportError, OSError, RemoteProtocolError) as exc:
            self._send_failed(message, peer, key, exc, deferred=False)
            return
        self._count_out(message)
        self._emit_trace("out", flow.transport, flow.remote, message)

    def _send_failed(
        self,
        message: Request | Response,
        peer: Any,
        key: Any,
        exc: BaseException,
        *,
        deferred: bool,
    ) -> None:
        self.stats["send_errors"] += 1
        _log.info("send %s to %s failed: %s", _first_line(message), peer, exc)
        if key is None:
            return
        if deferred and self._loop is not None:
            self._loop.call_soon(self._transport_error, key)
        else:
            self._transport_error(key)

    def _transport_error(self, key: Any) -> None:
        self.txl.transport_error(key, self.now())
        self._pump()

    def _count_out(self, message: Request | Response) -> None:
        if isinstance(message, Request):
            self.stats[_REQUESTS_OUT.get(message.method, "requests_out.other")] += 1
        else:
            self.stats[_RESPONSES_OUT[message.status // 100]] += 1

    def _tracing(self) -> bool:
        return self.trace is not None or _trace_log.isEnabledFor(logging.DEBUG)

    def _emit_trace(
        self, direction: str, transport: str, remote: tuple[str, int], message: Request | Response
    ) -> None:
        if not self._tracing():
            return
        first = _first_line(message)
        if _trace_log.isEnabledFor(logging.DEBUG):
            _trace_log.debug(
                "%s %s %s:%s\n%s",
                direction,
                transport,
                remote[0],
                remote[1],
                message.to_bytes().decode("utf-8", "replace"),
            )
        if self.trace is not None:
            try:
                self.trace(
                    TraceRecord(
                        direction=direction,
                        transport=transport,
                        remote=remote,
                        first_line=first,
                        message=message,
                    )
                )
            except Exception:
                _log.exception("trace hook failed")

    def _send_response(
        self, tx: ServerTransaction, response: Response, *, retransmit_2xx: bool, prepared: bool
    ) -> None:
        """``prepared``: made by ``tx.make_response``, which added Server/Content-Length."""
        if not prepared:
            headers = response.headers
            if self.server_header and "Server" not in headers:
                headers.add("Server", self.server_header)
            if "Content-Length" not in headers:
                headers.add("Content-Length", str(len(response.body)))
        now = self.now()
        core = tx.core
        if core.terminated:
            # RFC 6026: further 2xx of a forking proxy after the INVITE server transaction
            # ended are forwarded statelessly.
            self._queue_send(response, tx.source, None)
        else:
            self.txl.send_response(core, response, now)
        if retransmit_2xx and core.is_invite and 200 <= response.status < 300:
            self.uas2xx.start(
                response,
                peer=tx.source,
                reliable=tx.source.reliable,
                now=now,
                owner=tx,
                key=ack_key(tx.request),
            )
        self._pump()

    def _cancel(self, core: CoreClientTransaction) -> None:
        if isinstance(core, InviteClientTransaction):
            self.txl.cancel(core, now=self.now())
        self._pump()

    def _prepare_request(
        self, request: Request, destination: Destination, *, add_via: bool
    ) -> None:
        if add_via:
            branch = self.txl.new_branch()
            request.headers.insert_first(
                "Via",
                f"SIP/2.0/{destination.transport} {VIA_PLACEHOLDER_HOST};branch={branch};rport",
            )
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        if self.user_agent and "User-Agent" not in request.headers and add_via:
            if "Via" in request.headers and len(request.via) == 1:  # we originate it
                request.headers.add("User-Agent", self.user_agent)
        if "Content-Length" not in request.headers:
            request.headers.add("Content-Length", str(len(request.body)))

    async def resolve(self, request: Request) -> list[Destination]:
        """The ordered next-hop destinations of ``request`` (RFC 3263 §4): the outbound
        proxy, else the first Route (a loose router), else the Request-URI."""
        target: Any = self.outbound_proxy
        if target is None:
            routes = request.route
            target = routes[0].uri if routes else request.uri
        if not isinstance(target, SipURI):
            raise LocationError(f"cannot route to a {target.scheme}: URI")
        targets = await locate(
            target, resolver=self.resolver, supported_transports=self._transports_available()
        )
        return [
            Destination(transport=t.transport, host=t.address, port=t.port, server_name=t.host)
            for t in targets
        ]

    def _transports_available(self) -> tuple[str, ...]:
        names = {listener.transport for listener in self.listeners}
        out = [t for t in ("UDP", "TCP", "TLS", "WS", "WSS") if t in names]
        # We can open TCP/TLS connections without a listener of that kind.
        for t in ("TCP", "TLS"):
            if t not in out:
                out.append(t)
        return tuple(out)

    def send_request(
        self, request: Request, *, destination: Destination | None = None, add_via: bool = True
    ) -> ClientTransaction:
        """Start a client transaction for ``request``; returns its handle at once."""
        handle = ClientTransaction(self, request)
        handle._task = asyncio.ensure_future(self._run_client(handle, destination, add_via))
        self._tasks.add(handle._task)
        handle._task.add_done_callback(self._task_done)
        return handle

    async def request(
        self,
        request: Request,
        *,
        destination: Destination | None = None,
        add_via: bool = True,
        timeout: float | None = None,
    ) -> Response:
        """Send ``request`` and return its final response."""
        return await self.send_request(
            request, destination=destination, add_via=add_via
        ).wait_final(timeout)

    async def _run_client(
        self, handle: ClientTransaction, destination: Destination | None, add_via: bool
    ) -> None:
        request = handle.request
        if destination is not None:
            destinations = [destination]
        else:
            try:
                destinations = await self.resolve(request)
            except (LocationError, RemoteProtocolError) as exc:
                handle._fail(
                    503 if not getattr(exc, "timed_out", False) else 408,
                    f"Cannot locate the next hop: {exc}",
                )
                return
        original = request.copy()
        for index, dest in enumerate(destinations):
            attempt = request if index == 0 else original.copy()
            if index:
                handle.request = attempt
            self._prepare_request(attempt, dest, add_via=add_via)
            handle.destination = dest
            try:
                core = self.txl.send_request(
                    attempt, peer=dest, reliable=dest.transport != "UDP", now=self.now()
                )
            except LocalProtocolError as exc:
                handle._fail(503, str(exc))
                return
            handle.core = core
            self._clients[core] = handle
            self._pump()
            response = (
                await asyncio.shield(handle.final)
                if index == len(destinations) - 1
                else await self._wait_attempt(handle, core)
            )
            if response is None:
                continue  # failed over
            return

    async def _wait_attempt(
        self, handle: ClientTransaction, core: CoreClientTransaction
    ) -> Response | None:
        """Wait for the attempt's outcome; None means "try the next target" (RFC 3263 §4.3:
        transport error, timeout before any response, or a 503)."""
        waiter: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        handle._attempt_waiter = waiter
        try:
            return await waiter
        finally:
            handle._attempt_waiter = None

    async def send(
        self,
        message: Request | Response,
        destination: Destination | Source | None = None,
        *,
        add_via: bool = False,
    ) -> None:
        """Send a message statelessly (a 2xx ACK, a stateless proxy's forward)."""
        if isinstance(message, Request):
            if destination is None:
                destination = (await self.resolve(message))[0]
            assert isinstance(destination, Destination)
            self._prepare_request(message, destination, add_via=add_via)
            flow = await self.transport.send(message, destination)
        elif isinstance(destination, Source):
            flow = await self.transport.send_response(message, destination)
        elif isinstance(destination, Destination):
            flow = await self.transport.send(message, destination)
        else:
            raise LocalProtocolError("a response needs a destination")
        self._count_out(message)
        self._emit_trace("out", flow.transport, flow.remote, message)

    # ------------------------------------------------------------------ receiving

    def _on_message(self, message: Request | Response, source: Source) -> None:
        request: Request | None = None
        method = ""
        if isinstance(message, Request):
            request = message
            method = request.method
            self.stats[_REQUESTS_IN.get(method, "requests_in.other")] += 1
            if self._closing and method not in ("ACK", "CANCEL", "BYE"):
                self.stats["rejected_closing"] += 1
                with contextlib.suppress(Exception):
                    resp = make_response(request, 503, "Shutting down")
                    resp.headers.add("Retry-After", "5")
                    self._queue_send(resp, source, None)
                return
        else:
            self.stats[_RESPONSES_IN[message.status // 100]] += 1
            # §18.1.2: a response whose top Via sent-by is not ours is discarded.
        if self._tracing():
            self._emit_trace("in", source.transport, source.remote, message)
        if request is not None:
            if self._stateless_handler is not None:
                try:
                    taken = self._stateless_handler(request, source)
                except Exception:
                    _log.exception("stateless request handler failed")
                    taken = True
                if taken:
                    return
            if method == "ACK":
                pending = self.uas2xx.acknowledge_pending(request)
                if pending is not None and isinstance(pending.owner, ServerTransaction):
                    pending.owner._set_acked()
        try:
            self.txl.receive(message, peer=source, reliable=source.reliable, now=self.now())
        except RemoteProtocolError as exc:
            self._on_malformed(message.to_bytes(), source, exc)
            return
        self._pump()

    def _on_malformed(self, data: bytes, source: Source, error: RemoteProtocolError) -> None:
        self.stats["malformed_in"] += 1
        _log.info(
            "malformed message from %s %s:%s: %s", source.transport, *source.remote, error.reason
        )
        message = getattr(error, "message", None)
        if message is None and isinstance(error, InvalidMessage):
            message = error.message
        if message is None:
            with contextlib.suppress(RemoteProtocolError):
                message = parse_message(data, validate=False)
        if not isinstance(message, Request) or message.method == "ACK":
            return  # bad responses and ACKs are dropped (§18.1.2, §17.2.1)
        try:
            apply_received(message, source.remote)  # §18.2.1 / RFC 3581 for the reply
            status = error.status_hint if 300 <= error.status_hint <= 699 else 400
            response = make_response(message, status, _reason(status, error.reason))
            if status == 400:
                response.headers.add("Warning", f'399 sipwire "{_quote(error.reason)}"')
            if self.server_header:
                response.headers.add("Server", self.server_header)
            response.headers.add("Content-Length", "0")
            self._queue_send(response, source, None)
        except (RemoteProtocolError, LocalProtocolError):
            return  # not even the Via is usable: nowhere to answer

    # ------------------------------------------------------------------ events

    def _dispatch(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event.request, event.transaction)
        elif isinstance(event, ResponseReceived):
            handle = self._clients.get(event.transaction)
            if handle is None:
                return
            waiter = handle._attempt_waiter
            if (
                event.response.status == 503
                and waiter is not None
                and not waiter.done()
                and not handle._provisional_seen
            ):
                waiter.set_result(None)  # RFC 3263 §4.3: try the next target
                return
            handle._deliver(event.response)
            if waiter is not None and not waiter.done() and event.response.status >= 200:
                waiter.set_result(event.response)
        elif isinstance(event, AckReceived):
            source = event.peer if isinstance(event.peer, Source) else None
            if self._ack_handler is not None and source is not None:
                self._call(self._ack_handler, event.request, source)
        elif isinstance(event, CancelReceived):
            self._on_cancel(event)
        elif isinstance(event, MergedRequest):
            tx = self._wrap_server(event.transaction)
            tx.respond_nowait(482, "Loop Detected")
        elif isinstance(event, StrayResponse):
            if self._stray_handler is not None and isinstance(event.peer, Source):
                self._call(self._stray_handler, event.response, event.peer)
        elif isinstance(event, TransactionTimeout | TransportFailure):
            txn = event.transaction
            if isinstance(txn, CoreClientTransaction):
                handle = self._clients.get(txn)
                if handle is not None:
                    waiter = handle._attempt_waiter
                    if waiter is not None and not waiter.done() and not handle._provisional_seen:
                        waiter.set_result(None)
                    elif isinstance(event, TransactionTimeout):
                        self.stats["client_timeouts"] += 1
                        handle._fail(408, "Request Timeout")
                    else:
                        handle._fail(503, "Service Unavailable (transport failure)")
            else:
                self.stats["server_timeouts"] += 1
        elif isinstance(event, TransactionTerminated):
            txn = event.transaction
            if isinstance(txn, CoreClientTransaction):
                self._clients.pop(txn, None)
            else:
                assert isinstance(txn, CoreServerTransaction)
                self._servers.pop(txn, None)
        elif isinstance(event, RequestRejected):
            self.stats["rejected_overload"] += 1

    def _wrap_server(self, core: CoreServerTransaction) -> ServerTransaction:
        tx = self._servers.get(core)
        if tx is None:
            peer = core.peer
            assert isinstance(peer, Source)
            tx = self._servers[core] = ServerTransaction(self, core, peer)
        return tx

    def _on_request(self, request: Request, core: CoreServerTransaction) -> None:
        tx = self._wrap_server(core)
        handler = self._handlers.get(request.method) or self._default_handler
        if handler is None:
            if request.method in KNOWN_METHODS:
                tx.respond_nowait(405, headers=[("Allow", ", ".join(self.allowed_methods()))])
            else:
                tx.respond_nowait(501, headers=[("Allow", ", ".join(self.allowed_methods()))])
            return
        self._call(handler, request, tx, tx=tx)

    def _on_cancel(self, event: CancelReceived) -> None:
        cancel_tx = self._wrap_server(event.transaction)
        if event.invite_transaction is None:
            # No INVITE to cancel here: a proxy forwards it (§16.10), a UAS answers 481.
            handler = self._handlers.get("CANCEL") or self._default_handler
            if handler is not None:
                self._call(handler, event.cancel_request, cancel_tx, tx=cancel_tx)
            else:
                cancel_tx.respond_nowait(481)
            return
        invite_tx = self._wrap_server(event.invite_transaction)
        invite_tx._set_cancelled()
        if self._cancel_handler is not None:
            self._call(self._cancel_handler, event.cancel_request, invite_tx)
        elif invite_tx.final is None:
            invite_tx.respond_nowait(487)

    def _call(
        self, handler: Callable[..., Any], *args: Any, tx: ServerTransaction | None = None
    ) -> None:
        try:
            result = handler(*args)
        except Exception:
            _log.exception("handler %r failed", handler)
            if tx is not None and tx.final is None:
                tx.respond_nowait(500)
            return
        if result is not None and inspect.isawaitable(result):
            self._spawn(self._await_handler(result, tx))

    async def _await_handler(self, awaitable: Awaitable[Any], tx: ServerTransaction | None) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("handler failed")
            if tx is not None and tx.final is None:
                await tx.respond(500)


class _TokenPool:
    """Random tokens (tags, branches, Call-IDs) from ``os.urandom`` read 4 KiB at a time:
    as unpredictable as ``secrets.token_hex(8)`` (RFC 3261 §19.3 asks for cryptographic
    randomness), without a system call per token."""

    SIZE = 4096
    TOKEN_BYTES = 8

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def token(self) -> str:
        pos = self._pos
        end = pos + self.TOKEN_BYTES
        if end > len(self._pool):
            self._pool = secrets.token_bytes(self.SIZE)
            pos, end = 0, self.TOKEN_BYTES
        self._pos = end
        return self._pool[pos:end].hex()


def _request_via(response: Response, transaction: Transaction | None) -> Via | None:
    """The parsed top Via of the request ``response`` answers, when the response carries
    it unchanged (made by make_response): no need to parse it again to route the response."""
    if transaction is None:
        return None
    request = transaction.request
    if response.headers.get("Via") != request.headers.get("Via"):
        return None
    try:
        return request.top_via
    except RemoteProtocolError:
        return None


def _reason(status: int, detail: str) -> str:
    from sipwire.core.message import reason_phrase

    base = reason_phrase(status)
    text = f"{base} ({detail})" if detail else base
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:200]


def _quote(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned.replace("\\", "\\\\").replace('"', '\\"')[:200]
