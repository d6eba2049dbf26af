"""A SIP user agent on asyncio: register, call, answer, move audio (``docs/useragent.md``).

::

    async with sipwire.UserAgent("sip:alice@example.test", password="pw",
                                 server="127.0.0.1:5060") as ua:        # registers
        call = await ua.call("sip:bob@example.test")
        await call.wait_answered()                # CallFailed(status) on 4xx-6xx
        await call.play("hello.wav")
        await call.hangup()

        async for incoming in ua.incoming():
            await incoming.answer()

:class:`UserAgent` is the asyncio shell around the sans-IO user-agent cores: one
:class:`~sipwire.core.registration.Registration` (RFC 3261 §10.2) and one
:class:`~sipwire.core.invite.InviteSession` per call (§13-15), on one
:class:`~sipwire.aio.endpoint.Endpoint`.  After every input (a message, a call from
the application, the timer) it drains the core's queued messages -- sent through the
endpoint's transactions (:class:`~sipwire.core.dialog.SendRequest`), statelessly (the
ACK of a 2xx), as a CANCEL or on a server transaction -- then its events, and re-arms
ONE ``loop.call_at`` timer at the earliest core deadline.

Routing (§8.1.2, §12.2): with ``server=`` every out-of-dialog request (REGISTER,
INVITE) carries a pre-loaded ``Route: <sip:SERVER;lr>`` (the server is our outbound
proxy, a loose router); requests inside a dialog follow the dialog's route set and
remote target.  Without ``server=`` calls go straight to the Request-URI.  Inbound
messages are routed to their call by ``(Call-ID, our tag)``
(:func:`~sipwire.core.dialog.session_key`); unknown in-dialog requests get 481.

Timeouts and unreachable next hops: the endpoint reports them as a 408/503 it made up
(no To tag; a server's response always has one, §8.2.6.2), which this module turns into
:class:`NoResponseError` ("no response from 127.0.0.1:5060 (udp) within 32 s").
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from sipwire.aio._transport_common import Source, TransportConfig, format_host, parse_hostport
from sipwire.aio.endpoint import ClientTransaction, Endpoint, ServerTransaction, TraceHook
from sipwire.apps._ua_call import Call, CallEnd, CallState
from sipwire.apps._ua_errors import (
    AuthenticationError,
    CallFailed,
    NoResponseError,
    RegistrationError,
    UserAgentError,
)
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.dialog import (
    Output,
    SendAck,
    SendCancel,
    SendRequest,
    SendResponse,
    reject_out_of_dialog,
    session_key,
)
from sipwire.core.digest import DigestClient
from sipwire.core.invite import InviteSession, SessionConfig
from sipwire.core.message import Request, Response
from sipwire.core.offeranswer import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    MediaCapability,
    MediaSession,
)
from sipwire.core.registration import (
    Registered,
    Registration,
    RegistrationFailed,
    Unregistered,
)
from sipwire.core.transaction import TimerConfig
from sipwire.core.uri import SipURI, parse_uri
from sipwire.media.stream import MediaStream, PortRange

__all__ = [
    "AuthenticationError",
    "Call",
    "CallEnd",
    "CallFailed",
    "CallState",
    "NoResponseError",
    "RegistrationError",
    "UserAgent",
    "UserAgentError",
]

_log = logging.getLogger("sipwire.useragent")

IncomingHandler = Callable[[Call], Awaitable[object] | None]

#: Methods we answer (the Allow header).
ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "NOTIFY", "MESSAGE")
_CODECS: dict[str, Codec] = {"PCMU": PCMU, "PCMA": PCMA}


@dataclass(frozen=True, slots=True)
class _Server:
    host: str
    port: int
    transport: str  # "udp" | "tcp" | "tls"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port} ({self.transport})"

    def route(self) -> Address:
        host = f"[{self.host}]" if ":" in self.host else self.host
        params: list[tuple[str, str | None]] = []
        if self.transport != "udp":
            params.append(("transport", self.transport))
        params.append(("lr", None))
        return Address(SipURI(host=host, port=self.port, params=tuple(params)))


def _parse_sip_uri(text: str) -> SipURI | None:
    try:
        uri = parse_uri(text.strip())
    except RemoteProtocolError:
        return None
    return uri if isinstance(uri, SipURI) else None


def _parse_server(server: str, transport: str) -> _Server:
    text = server.strip()
    if text.lower().startswith(("sip:", "sips:")):
        uri = _parse_sip_uri(text)
        if uri is None:
            raise LocalProtocolError(f"bad server {server!r}")
        chosen = (uri.transport or transport).lower()
        default = 5061 if chosen == "tls" else 5060
        return _Server(uri.host.strip("[]"), uri.port or default, chosen)
    try:
        host, port = parse_hostport(text)
    except (ValueError, LocalProtocolError, RemoteProtocolError) as exc:
        raise LocalProtocolError(f"bad server {server!r}: expected HOST[:PORT]") from exc
    default = 5061 if transport == "tls" else 5060
    return _Server(host.strip("[]"), port or default, transport)


def _synthesized(response: Response) -> bool:
    """A 408/503 the endpoint made up (timeout, transport failure): it has no To tag."""
    return response.status in (408, 503) and response.to.tag is None


class UserAgent:
    """A SIP phone for programs; see the module docstring and ``docs/useragent.md``.

    * ``aor``: our address-of-record, ``sip:alice@example.test``.
    * ``password`` (and ``username``, default the AOR's user): Digest credentials for
      401/407 challenges (REGISTER, INVITE, BYE...).
    * ``server``: ``HOST[:PORT]`` or a SIP URI of the registrar/proxy every
      out-of-dialog request goes through; ``transport`` to reach it: ``udp`` (default),
      ``tcp`` or ``tls`` (our TLS listener needs ``certfile``/``keyfile``).
    * ``listen``: ``HOST:PORT`` of our SIP listener (port 0: any free one).  By default
      the local address that routes to the server (``127.0.0.1`` without a server),
      any port.
    * ``register``: REGISTER on start (default: when ``server`` is given), for
      ``expires`` seconds (default 3600; refreshed before expiry), un-REGISTER on close.
    * ``media_address``: the address for RTP (default: the listener's), ``rtp_ports``
      the range RTP ports are taken from (default 16384-32767), ``codecs`` in
      preference order (``PCMU``, ``PCMA``; RFC 4733 telephone-event is always offered).
    * ``ring``: answer incoming INVITEs with 180 Ringing at once (default True).
    * ``max_calls``: calls at once (default 32); more incoming ones get 486 Busy Here.
    * ``timers``: RFC 3261 T1/T2/T4 (tests shorten them); ``trace``: a hook called with
      every SIP message in and out.
    """

    def __init__(
        self,
        aor: str,
        *,
        password: str | None = None,
        username: str | None = None,
        server: str | None = None,
        transport: Literal["udp", "tcp", "tls"] = "udp",
        listen: str | None = None,
        register: bool | None = None,
        expires: int = 3600,
        display_name: str | None = None,
        media_address: str | None = None,
        rtp_ports: tuple[int, int] = (16384, 32767),
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        ring: bool = True,
        max_calls: int = 32,
        timers: TimerConfig | None = None,
        user_agent: str = "sipwire",
        certfile: str | None = None,
        keyfile: str | None = None,
        tls_verify: bool = True,
        tls_ca_file: str | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        uri = _parse_sip_uri(aor)
        if uri is None or not uri.user:
            raise LocalProtocolError(f"the address-of-record must be sip:USER@DOMAIN, not {aor!r}")
        transport_name = transport.lower()
        if transport_name not in ("udp", "tcp", "tls"):
            raise LocalProtocolError(f"transport must be udp, tcp or tls, not {transport!r}")
        if transport_name == "tls" and not (certfile and keyfile):
            raise LocalProtocolError("transport tls needs certfile= and keyfile= for our listener")
        unknown = [c for c in codecs if c.upper() not in _CODECS]
        if unknown or not codecs:
            raise LocalProtocolError(f"codecs must be PCMU and/or PCMA, not {list(codecs)}")
        if max_calls < 1:
            raise LocalProtocolError("max_calls must be at least 1")
        self.aor = uri.replace(params=(), headers=())
        self.username = username or uri.user_unescaped or uri.user
        self.address = Address(self.aor, display_name=display_name)
        self.transport = transport_name
        self.server = _parse_server(server, transport_name) if server else None
        self.register_on_start = self.server is not None if register is None else register
        if self.register_on_start and self.server is None:
            raise LocalProtocolError("register=True needs a server=")
        self.expires = expires
        self.listen = listen
        self.media_address = media_address
        self.port_range = PortRange(*rtp_ports)
        self.codecs = (*(_CODECS[c.upper()] for c in codecs), TELEPHONE_EVENT)
        self.ring = ring
        self.max_calls = max_calls
        self.timers = timers or TimerConfig()
        self.auth = DigestClient(self.username, password) if password is not None else None
        self._password_given = password is not None
        self._certfile, self._keyfile = certfile, keyfile
        self._transport_config = TransportConfig(tls_verify=tls_verify, tls_ca_file=tls_ca_file)
        self._user_agent = user_agent
        self._trace = trace
        self._endpoint: Endpoint | None = None
        self.contact: Address | None = None
        self.registration: Registration | None = None
        #: The last registration outcome (Registered / RegistrationFailed / Unregistered).
        self.registration_event: Registered | RegistrationFailed | Unregistered | None = None
        self._reg_waiter: asyncio.Future[None] | None = None
        self._reg_no_response: str | None = None
        self._calls: dict[tuple[str, str], Call] = {}
        self._incoming: asyncio.Queue[Call | None] = asyncio.Queue(max_calls + 1)
        self._incoming_handler: IncomingHandler | None = None
        self._client_handles: dict[int, tuple[Request, ClientTransaction]] = {}
        self._outstanding: set[ClientTransaction] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<UserAgent {self.aor} {'registered' if self.registered else 'not registered'}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> UserAgent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> UserAgent:
        """Open the SIP listener and, with ``register``, register (raises
        :class:`AuthenticationError`, :class:`RegistrationError` or
        :class:`NoResponseError`, after releasing everything)."""
        if self._started:
            raise LocalProtocolError("the user agent is already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        if self.listen is None:
            self.listen = f"{format_host(await self._local_host())}:0"
        ep = self._endpoint = Endpoint(
            listen=[f"{self.transport}:{self.listen}"],
            certfile=self._certfile,
            keyfile=self._keyfile,
            timers=self.timers,
            transport_config=self._transport_config,
            user_agent=self._user_agent,
            trace=self._trace,
            allow=ALLOW,
        )
        try:
            await ep.start()
        except OSError as exc:
            self._closed = True
            await ep.close(grace=0.0)
            raise UserAgentError(f"cannot listen on {self.transport}:{self.listen}: {exc}") from exc
        for method in ("INVITE", "BYE", "INFO", "UPDATE", "NOTIFY", "MESSAGE", "OPTIONS", "PRACK"):
            ep.on(method, self._on_request)
        ep.on_request(self._on_other_request)
        ep.on_ack(self._on_ack)
        ep.on_cancel(self._on_cancel)
        ep.on_stray_response(self._on_stray_response)
        user = self.aor.user
        self.contact = Address(ep.contact_uri(self.transport.upper(), user=user))
        if self.register_on_start:
            try:
                await self.register()
            except BaseException:
                await self.close()
                raise
        return self

    async def _local_host(self) -> str:
        """The local address the OS would use to reach the server (no packet is sent)."""
        if self.server is None:
            return "127.0.0.1"
        loop = self._running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.server.host, self.server.port, type=socket.SOCK_DGRAM
            )
            family, _, _, _, address = infos[0]
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except OSError as exc:
            raise UserAgentError(f"cannot reach the server {self.server}: {exc}") from exc

    @property
    def endpoint(self) -> Endpoint:
        """The SIP endpoint (after :meth:`start`)."""
        if self._endpoint is None:
            raise LocalProtocolError("the user agent is not started")
        return self._endpoint

    @property
    def local_address(self) -> tuple[str, int]:
        """``(host, port)`` of our SIP listener."""
        listener = self.endpoint.listeners[0]
        return (listener.host, listener.port)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def registered(self) -> bool:
        return self.registration is not None and self.registration.registered

    async def register(self) -> Registered:
        """REGISTER now (the first time, or an early refresh) and wait for the outcome."""
        if self.server is None or self.contact is None:
            raise LocalProtocolError("register() needs server= and a started user agent")
        if self.registration is None:
            self.registration = Registration(
                registrar=self.aor.replace(user=None, password=None),
                aor=Address(self.aor),
                contact=self.contact,
                expires=self.expires,
                route=[self.server.route()],
                auth=self.auth,
            )
        waiter: asyncio.Future[None] = self._running_loop().create_future()
        self._reg_waiter = waiter
        self._reg_no_response = None
        self.registration.register(self._now())
        self._drain_registration()
        await waiter
        event = self.registration_event
        if isinstance(event, Registered):
            return event
        raise self._registration_error(event)

    async def unregister(self, timeout: float | None = None) -> None:
        """Remove our binding (REGISTER ``Expires: 0``) and wait for the answer."""
        reg = self.registration
        if reg is None or not reg.registered:
            return
        waiter: asyncio.Future[None] = self._running_loop().create_future()
        self._reg_waiter = waiter
        reg.unregister(self._now())
        self._drain_registration()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Hang up every call, un-REGISTER, then release the ports, tasks and media.
        Waits at most ``timeout`` seconds for the peers' answers."""
        if self._closed:
            return
        self._closing = True
        loop = self._running_loop()
        deadline = loop.time() + timeout
        live = [c for c in self._calls.values() if not c.ended]
        for call in live:
            with contextlib.suppress(LocalProtocolError):
                await call.hangup()
        if live:
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_ended()) for c in live],
                timeout=max(0.0, deadline - loop.time()),
            )
        with contextlib.suppress(UserAgentError, LocalProtocolError):
            await self.unregister(timeout=max(0.1, deadline - loop.time()))
        # BYEs (and the like) still waiting for their final response.
        finals = [h.final for h in self._outstanding if not h.final.done()]
        if finals:
            await asyncio.wait(finals, timeout=max(0.0, deadline - loop.time()))
        self._closed = True
        for call in list(self._calls.values()):
            await call._shutdown()
        self._calls.clear()
        while self._incoming.full():
            self._incoming.get_nowait()
        self._incoming.put_nowait(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._client_handles.clear()
        if self._reg_waiter is not None and not self._reg_waiter.done():
            self._reg_waiter.cancel()
        if self._endpoint is not None:
            await self._endpoint.close(grace=0.0)

    # ------------------------------------------------------------------ calls

    def _live_calls(self) -> int:
        return sum(not c.ended for c in self._calls.values())

    @property
    def calls(self) -> list[Call]:
        """The calls not yet forgotten (ended ones linger 64*T1 to absorb retransmissions)."""
        return list(self._calls.values())

    def _target(self, target: str) -> SipURI:
        text = target.strip()
        if not text.lower().startswith(("sip:", "sips:")):
            text = f"sip:{text}" if "@" in text else f"sip:{text}@{self.aor.host_port}"
        uri = _parse_sip_uri(text)
        if uri is None:
            raise LocalProtocolError(f"cannot call {target!r}: not a SIP URI")
        return uri

    async def _open_media(self) -> tuple[MediaStream, MediaSession]:
        host = self.media_address or self.endpoint.listeners[0].advertised_host.strip("[]")
        stream = await MediaStream.open(host, port_range=self.port_range)
        session = MediaSession(
            streams=[MediaCapability(port=stream.local_port, codecs=self.codecs)],
            address=host,
            username=self.aor.user or "-",
        )
        return stream, session

    def _session_config(self) -> SessionConfig:
        return SessionConfig(t1=self.timers.t1, allow=ALLOW)

    async def call(self, target: str, *, headers: Sequence[tuple[str, str]] = ()) -> Call:
        """Call ``target`` (``sip:bob@example.test``, ``bob@host`` or just ``bob`` in our
        domain) and return the :class:`Call` at once; :meth:`Call.wait_answered` waits
        for the answer."""
        self._check_running()
        if self._live_calls() >= self.max_calls:
            raise UserAgentError(f"already {self._live_calls()} calls (max_calls)")
        uri = self._target(target)
        assert self.contact is not None
        stream, media = await self._open_media()
        try:
            session = InviteSession.uac(
                target=uri,
                from_=self.address,
                contact=self.contact,
                media=media,
                route=[self.server.route()] if self.server is not None else (),
                headers=headers,
                auth=self.auth,
                config=self._session_config(),
            )
        except BaseException:
            await stream.close()
            raise
        call = Call(self, session, stream, direction="outgoing", remote=str(uri))
        self._calls[session.key] = call
        session.invite(self._now())
        self._drain(call)
        return call

    async def incoming(self) -> AsyncIterator[Call]:
        """Incoming calls (ringing, not answered yet) until the user agent closes."""
        while True:
            call = await self._incoming.get()
            if call is None:
                self._incoming.put_nowait(None)
                return
            if not call.ended:
                yield call

    def on_incoming(self, handler: IncomingHandler | None) -> None:
        """Call ``handler(call)`` (a function or coroutine function) for every incoming
        call instead of queueing it for :meth:`incoming`; ``None`` removes it."""
        self._incoming_handler = handler

    # ------------------------------------------------------------------ plumbing

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    def _now(self) -> float:
        return self._running_loop().time()

    def _check_running(self) -> None:
        if not self._started or self._closing:
            raise LocalProtocolError("the user agent is not running (use 'async with')")

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("user agent task failed", exc_info=task.exception())

    def _describe_hop(self, handle: ClientTransaction) -> str:
        dest = handle.destination
        if dest is not None:
            host = f"[{dest.host}]" if ":" in dest.host else dest.host
            return f"{host}:{dest.port} ({dest.transport.lower()})"
        if self.server is not None:
            return str(self.server)
        return str(handle.request.uri)

    def _failure_text(self, handle: ClientTransaction, response: Response) -> str:
        hop = self._describe_hop(handle)
        if response.status == 408:
            return f"no response from {hop} within {64 * self.timers.t1:g} s"
        return f"cannot reach {hop}: {response.reason}"

    # -- the INVITE sessions -------------------------------------------------------------

    def _drain(self, call: Call) -> None:
        """Send what ``call``'s session queued, then hand its events to the call."""
        session = call.session
        for out in session.outgoing():
            self._perform(call, out)
        for event in session.events():
            call._on_event(event)
        if session.closed:
            self._forget(call)
        self._rearm()

    def _forget(self, call: Call) -> None:
        if self._calls.get(call.session.key) is call:
            del self._calls[call.session.key]
        for key, (request, _) in list(self._client_handles.items()):
            if request.call_id == call.call_id:
                del self._client_handles[key]

    def _perform(self, call: Call, out: Output) -> None:
        if isinstance(out, SendRequest):
            request = out.request
            handle = self._send_request(request)
            handle.on_response = lambda r, c=call, h=handle: self._on_call_response(c, h, r)
            if request.method == "INVITE":
                self._client_handles[id(request)] = (request, handle)
        elif isinstance(out, SendAck):
            self._spawn(self._send_stateless(out.request))
        elif isinstance(out, SendCancel):
            entry = self._client_handles.get(id(out.invite))
            if entry is not None:
                self._spawn(entry[1].cancel())
        elif isinstance(out, SendResponse):
            tx = out.transaction
            if isinstance(tx, ServerTransaction):
                self._spawn(self._respond(tx, out.response))

    def _send_request(self, request: Request) -> ClientTransaction:
        """Start a client transaction; :meth:`close` waits for the outstanding ones."""
        handle = self.endpoint.send_request(request)
        self._outstanding.add(handle)

        def done(_: asyncio.Future[Response]) -> None:
            self._outstanding.discard(handle)

        handle.final.add_done_callback(done)
        return handle

    async def _send_stateless(self, request: Request) -> None:
        try:
            await self.endpoint.send(request, add_via=True)
        except (OSError, RemoteProtocolError, LocalProtocolError) as exc:
            _log.info("could not send %s: %s", request.method, exc)
        except Exception as exc:  # LocationError, TransportError
            _log.info("could not send %s: %s", request.method, exc)

    async def _respond(self, tx: ServerTransaction, response: Response) -> None:
        try:
            await tx.send(response)
        except LocalProtocolError as exc:
            _log.debug("response %s not sent: %s", response.status, exc)

    def _on_call_response(self, call: Call, handle: ClientTransaction, response: Response) -> None:
        if self._closed:
            return
        if response.cseq.method == "INVITE" and _synthesized(response) and not call.answered:
            call._no_response = self._failure_text(handle, response)
        try:
            call.session.receive_response(response, self._now())
        except RemoteProtocolError as exc:
            _log.info("bad response in call %s: %s", call.call_id, exc.reason)
        self._drain(call)

    # -- the registration ----------------------------------------------------------------

    def _drain_registration(self) -> None:
        reg = self.registration
        if reg is None:
            return
        for out in reg.outgoing():
            handle = self._send_request(out.request)
            handle.on_response = lambda r, h=handle: self._on_register_response(h, r)
        for event in reg.events():
            self.registration_event = event
            if isinstance(event, Registered):
                _log.info("registered %s for %d s", self.aor, event.expires)
            elif isinstance(event, RegistrationFailed):
                _log.warning(
                    "registration of %s failed: %s %s (retry in %.0f s)",
                    self.aor,
                    event.status,
                    event.response.reason,
                    event.retry_in,
                )
            if self._reg_waiter is not None and not self._reg_waiter.done():
                self._reg_waiter.set_result(None)
        self._rearm()

    def _on_register_response(self, handle: ClientTransaction, response: Response) -> None:
        if self._closed or self.registration is None or response.status < 200:
            return
        self._reg_no_response = (
            self._failure_text(handle, response) if _synthesized(response) else None
        )
        self.registration.receive_response(response, self._now())
        self._drain_registration()

    def _registration_error(
        self, event: Registered | RegistrationFailed | Unregistered | None
    ) -> UserAgentError:
        if not isinstance(event, RegistrationFailed):
            return RegistrationError(f"registration of {self.aor} did not complete")
        status, reason = event.status, event.response.reason
        who = f"{self.username}@{self.aor.host}"
        if self._reg_no_response is not None:
            return NoResponseError(
                self._reg_no_response, method="REGISTER", server=str(self.server)
            )
        if status in (401, 407, 403):
            if not self._password_given and status != 403:
                message = f"{self.server} requires a password for {who} ({status} {reason})"
            else:
                message = f"wrong password for {who} ({status} {reason})"
            return AuthenticationError(message, status=status, reason=reason)
        return RegistrationError(
            f"registration of {self.aor} refused: {status} {reason}", status=status, reason=reason
        )

    # -- the timer -----------------------------------------------------------------------

    def _rearm(self) -> None:
        if self._closed or self._loop is None:
            return
        deadlines = [c.session.next_deadline() for c in self._calls.values()]
        if self.registration is not None:
            deadlines.append(self.registration.next_deadline())
        deadline = min((d for d in deadlines if d is not None), default=None)
        if deadline == self._timer_at and (self._timer is not None or deadline is None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._now()
        reg = self.registration
        if reg is not None:
            due = reg.next_deadline()
            if due is not None and due <= now:
                reg.handle_timer(now)
                self._drain_registration()
        for call in list(self._calls.values()):
            due = call.session.next_deadline()
            if due is not None and due <= now:
                call.session.handle_timer(now)
                self._drain(call)
        self._rearm()

    # -- inbound requests ----------------------------------------------------------------

    def _call_for(self, message: Request | Response) -> Call | None:
        try:
            key = session_key(message)
        except RemoteProtocolError:
            return None
        return None if key is None else self._calls.get(key)

    async def _on_request(self, request: Request, tx: ServerTransaction) -> None:
        if request.to.tag is not None:
            call = self._call_for(request)
            if call is None:
                await tx.send(reject_out_of_dialog(request))
                return
            try:
                call.session.receive_request(request, self._now(), transaction=tx)
            except RemoteProtocolError as exc:
                if tx.final is None:
                    await tx.respond(exc.status_hint if exc.status_hint >= 400 else 400)
                return
            self._drain(call)
            return
        if request.method == "INVITE":
            await self._on_invite(request, tx)
        elif request.method == "OPTIONS":
            await tx.respond(
                200,
                headers=[("Allow", ", ".join(ALLOW)), ("Accept", "application/sdp")],
            )
        elif request.method == "BYE":
            await tx.send(reject_out_of_dialog(request))
        else:
            await tx.respond(405, headers=[("Allow", ", ".join(ALLOW))])

    async def _on_other_request(self, request: Request, tx: ServerTransaction) -> None:
        if request.method == "CANCEL":
            await tx.respond(481)  # matched no INVITE of ours
        elif request.to.tag is not None and self._call_for(request) is not None:
            await self._on_request(request, tx)
        else:
            await tx.respond(405, headers=[("Allow", ", ".join(ALLOW))])

    async def _on_invite(self, request: Request, tx: ServerTransaction) -> None:
        if self._closing:
            await tx.respond(503, headers=[("Retry-After", "5")])
            return
        if self._live_calls() >= self.max_calls:
            await tx.respond(486)
            return
        assert self.contact is not None
        try:
            stream, media = await self._open_media()
        except OSError as exc:
            _log.warning("no RTP port for an incoming call: %s", exc)
            await tx.respond(503, "No Media Port")
            return
        if tx.cancelled.is_set() or self._closing:
            await stream.close()
            if tx.final is None:
                await tx.respond(487)
            return
        try:
            session = InviteSession.uas(
                request,
                transaction=tx,
                contact=self.contact,
                now=self._now(),
                media=media,
                local_tag=tx.to_tag,
                secure=tx.source.transport == "TLS" and request.uri.scheme == "sips",
                auth=self.auth,
                config=self._session_config(),
            )
        except RemoteProtocolError as exc:
            await stream.close()
            status = exc.status_hint if 400 <= exc.status_hint < 700 else 400
            await tx.respond(status)
            return
        remote = str(request.from_.uri)
        call = Call(self, session, stream, direction="incoming", remote=remote)
        self._calls[session.key] = call
        self._drain(call)
        if call.ended:
            return
        if self.ring:
            session.ring(self._now())
            self._drain(call)
        self._deliver(call)

    def _deliver(self, call: Call) -> None:
        handler = self._incoming_handler
        if handler is not None:
            self._spawn(self._run_handler(handler, call))
            return
        if self._incoming.full():
            _log.info("incoming call queue full: 486 to %s", call.remote)
            self._spawn(call.reject(486))
            return
        self._incoming.put_nowait(call)

    async def _run_handler(self, handler: IncomingHandler, call: Call) -> None:
        try:
            result = handler(call)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except CallFailed as exc:
            _log.info("incoming call from %s: %s", call.remote, exc)
        except Exception:
            _log.exception("incoming call handler failed")
            if not call.answered and not call.ended:
                with contextlib.suppress(LocalProtocolError):
                    await call.reject(500)

    def _on_ack(self, ack: Request, source: Source) -> None:
        call = self._call_for(ack)
        if call is not None:
            call.session.receive_request(ack, self._now())
            self._drain(call)

    def _on_cancel(self, cancel: Request, invite_tx: ServerTransaction) -> None:
        call = self._calls.get((cancel.call_id, invite_tx.to_tag))
        if call is None:
            if invite_tx.final is None:
                self._spawn(invite_tx.respond(487))
            return
        call.session.receive_request(cancel, self._now(), transaction=invite_tx)
        self._drain(call)

    def _on_stray_response(self, response: Response, source: Source) -> None:
        call = self._call_for(response)
        if call is not None:
            with contextlib.suppress(RemoteProtocolError):
                call.session.receive_response(response, self._now())
            self._drain(call)
