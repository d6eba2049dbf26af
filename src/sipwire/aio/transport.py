"""The SIP transport layer in the asyncio shell (RFC 3261 §18, RFC 3581, RFC 7118, RFC 5626).

:class:`TransportLayer` owns every socket of a SIP element: UDP endpoints, TCP/TLS and
WebSocket (WS/WSS) listeners and the connections of either direction.  The Endpoint
(transactions, dialogs) sits above it and talks to it through four calls::

    layer = TransportLayer(on_message=handle, on_malformed=bad)
    await layer.listen("udp:127.0.0.1:5060")
    await layer.listen("tls:[::1]:5061", certfile="cert.pem", keyfile="key.pem")
    flow = await layer.send(request, Destination(transport="TCP", host="192.0.2.1", port=5060))
    await layer.send_response(response, source_of_request)

Inbound (server transport, §18.2.1)
    Every datagram is one message (§18.3); streams are framed by Content-Length
    (:class:`~sipwire.core.message.StreamParser`), WebSocket messages carry one SIP message
    each (RFC 7118 §5).  Before a *request* is delivered its top Via gets ``received=`` when
    the sent-by host is a name or differs from the packet's source IP, and a bare ``rport``
    is filled with the source port (RFC 3581 §4; ``received`` is then always added).
    ``on_message(message, source)`` gets it with the :class:`Source` flow.  Unparseable
    input calls ``on_malformed(data, source, error)`` (the endpoint answers 400 to a request
    it can still recognise, RFC 3261 §18.3 / §21.4.1); a stream framing error then closes
    the connection.  §18.1.2 (discard responses whose sent-by is not ours) and transaction
    matching are the endpoint's job.

Outbound (client transport, §18.1.1)
    :meth:`TransportLayer.send` reuses an open connection to the same transport, IP and
    port -- including connections the peer opened to us (RFC 3261 §18 connection reuse) --
    or connects (bounded by ``connect_timeout``).  A UDP request larger than
    ``udp_max_request_size`` (1300) goes over TCP and its top Via says so; if that TCP
    connect is refused it falls back to UDP.  The top Via's transport and sent-by are
    filled from the listener actually used when asked (``fill_via=True``) or when the
    caller left the placeholder host :data:`VIA_PLACEHOLDER_HOST`.  The returned
    :class:`Source` says which flow (and so which transport) was used.

Responses (server transport, §18.2.2, RFC 3581 §4)
    :meth:`TransportLayer.send_response` sends over the request's connection while it is
    open, else connects to ``received`` (or the sent-by host) at the sent-by port.  Over
    UDP it goes to ``maddr``, else ``received``:``rport``, else ``received``:sent-by port,
    else the sent-by address, from the socket the request arrived on.

Connections are bounded (per IP and in total), time out when idle, when a started message
does not complete (slowloris) and when a handshake stalls; see
:class:`TransportConfig` for the defaults.  :attr:`TransportLayer.stats` counts messages,
bytes, malformed input and connections per transport.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import importlib.util
import itertools
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sipwire.aio._stream import CLOSE_GRACE, StreamConnection
from sipwire.aio._tls import client_ssl_context, server_ssl_context
from sipwire.aio._transport_common import (
    DEFAULT_PORTS,
    RELIABLE_TRANSPORTS,
    SECURE_TRANSPORTS,
    TRANSPORTS,
    Destination,
    Listener,
    Source,
    TransportConfig,
    TransportError,
    TransportStats,
    format_host,
    is_ip,
    normalize_ip,
    parse_hostport,
    parse_transport,
)
from sipwire.aio._udp import UdpEndpoint
from sipwire.aio._ws import WebSocketConnection
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.headervalues import Via
from sipwire.core.message import Limits, Request, Response, parse_message

__all__ = [
    "RELIABLE_TRANSPORTS",
    "VIA_PLACEHOLDER_HOST",
    "Destination",
    "Listener",
    "MalformedCallback",
    "MessageCallback",
    "Source",
    "TransportConfig",
    "TransportError",
    "TransportLayer",
    "TransportStats",
    "client_ssl_context",
    "install_event_loop_policy",
    "new_event_loop",
    "run",
    "server_ssl_context",
    "tune_gc",
    "uvloop_available",
]

_log = logging.getLogger("sipwire.transport")

T = TypeVar("T")

MessageCallback = Callable[[Request | Response, Source], None]
MalformedCallback = Callable[[bytes, Source, RemoteProtocolError], None]
ClosedCallback = Callable[[Source, str], None]

#: A top Via whose sent-by host is this (RFC 6761 reserves ``.invalid``) is filled in by
#: :meth:`TransportLayer.send` with the transport and address of the flow actually used.
VIA_PLACEHOLDER_HOST = "sipwire.invalid"

_STUN_MAGIC = b"\x21\x12\xa4\x42"
_ROUTE_CACHE_SIZE = 256
_WILDCARDS = frozenset({"0.0.0.0", "::"})


class _ConnectRefused(TransportError):
    """The peer answered the TCP connect with a reset (§18.1.1 UDP fallback)."""


# ===================================================================== event loops


def uvloop_available() -> bool:
    """True if the optional ``uvloop`` package is installed."""
    return importlib.util.find_spec("uvloop") is not None


def new_event_loop(*, use_uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop when installed (or when ``use_uvloop=True``), else asyncio's.

    ``use_uvloop=True`` without uvloop installed raises ``ImportError``.
    """
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if use_uvloop:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def install_event_loop_policy(*, use_uvloop: bool | None = None) -> bool:
    """Make ``asyncio.run`` & co. use uvloop when it is installed; returns whether it does."""
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return True
    asyncio.set_event_loop_policy(None)
    return False


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool | None = None) -> T:
    """``asyncio.run(main)`` on :func:`new_event_loop` (uvloop when installed)."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(use_uvloop=use_uvloop)) as runner:
        return runner.run(main)


#: :func:`tune_gc` defaults: CPython's cyclic GC thresholds for a busy SIP element.
GC_THRESHOLDS: tuple[int, int, int] = (5_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS, *, freeze: bool = True) -> None:
    """Process-wide settings of CPython's cyclic garbage collector for a busy server.

    A SIP element keeps every transaction for 64*T1 = 32 s after its final response
    (Timers J and L), so at a few thousand calls per second millions of objects are
    alive.  With CPython's defaults ``(700, 10, 10)`` a full collection walking all of
    them runs every few seconds and stops the loop for hundreds of milliseconds (peers
    then retransmit, which costs more); measured with ``sipwire uas`` at 700 calls/s,
    a quarter of the CPU went to the collector.  Messages and transactions form no
    reference cycles (reference counting frees them), so the collector finds next to
    nothing: collecting less often only postpones the little it would find.

    ``freeze=True`` also moves everything alive now (modules, configuration, the bound
    listeners) out of the collector's sight (``gc.freeze()``).  Call it once, after
    start-up; CLI entry points do, a library never should on its own.
    """
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*thresholds)


# ===================================================================== Via helpers


def apply_received(request: Request, remote: tuple[str, int]) -> bool:
    """RFC 3261 §18.2.1 + RFC 3581 §4 on the top Via of an inbound request.

    Adds ``received=<source IP>`` when the sent-by host is a domain name or a different
    IP, and fills a bare ``rport`` with the source port (``received`` is then added even
    if the address matches).  IPv6 ``received`` values carry no brackets (RFC 5118 §4.5).
    Returns True if the Via changed.  Raises RemoteProtocolError without a usable Via.
    """
    via = request.top_via
    source_ip, source_port = remote
    fill_rport = via.has_rport and via.rport is None
    host_differs = not is_ip(via.host) or normalize_ip(via.host) != source_ip
    if not (host_differs or fill_rport):
        return False
    new = via.with_param("received", source_ip)
    if fill_rport:
        new = new.with_param("rport", str(source_port))
    request.headers.replace_first("Via", str(new))
    return True


def _rewrite_top_via(
    request: Request, *, transport: str, host: str | None = None, port: int | None = None
) -> None:
    """Set the top Via's transport (and sent-by, when ``host`` is given)."""
    via = request.top_via
    if host is None:
        new = via.replace(transport=transport)
    else:
        new = via.replace(transport=transport, host=format_host(host), port=port)
    request.headers.replace_first("Via", str(new))


# ===================================================================== the layer


class TransportLayer:
    """All SIP transports of one element (see the module docstring).

    Callbacks run synchronously on the event loop, in arrival order; exceptions they raise
    are logged and swallowed so one bad handler cannot take a socket down.

    * ``on_message(message, source)`` -- a parsed request (Via already fixed up) or
      response.
    * ``on_malformed(data, source, error)`` -- unparseable input.  For a stream the
      connection closes right after the callback returns (anything it sent is flushed).
    * ``on_closed(source, reason)`` -- a connection went away (idle, keep-alive failure,
      peer close, framing error...).  RFC 5626 flow failure detection hooks here.

    ``limits`` bound every message (and so the stream buffers); ``client_ssl`` replaces
    the verifying TLS client context built from ``config.tls_verify``/``tls_ca_file``.
    """

    def __init__(
        self,
        *,
        on_message: MessageCallback,
        on_malformed: MalformedCallback | None = None,
        on_closed: ClosedCallback | None = None,
        config: TransportConfig | None = None,
        limits: Limits | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_malformed = on_malformed
        self._on_closed = on_closed
        self.config = config or TransportConfig()
        self.limits = limits or Limits()
        self._client_ssl = client_ssl
        self.stats: dict[str, TransportStats] = {name: TransportStats() for name in TRANSPORTS}
        self._listeners: list[Listener] = []
        self._udp: list[tuple[Listener, UdpEndpoint]] = []
        self._servers: list[tuple[Listener, asyncio.Server]] = []
        self._ids = itertools.count(1)
        self._connections: dict[int, StreamConnection] = {}
        self._by_peer: dict[tuple[str, str, int], StreamConnection] = {}
        self._connecting: dict[tuple[str, str, int], asyncio.Future[StreamConnection]] = {}
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._route_cache: dict[str, str] = {}
        self._closed = False

    # ----------------------------------------------------------------- introspection

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Every bound listener, with the real port when port 0 was asked for."""
        return tuple(self._listeners)

    def listener(self, transport: str, *, family: int | None = None) -> Listener | None:
        """The first listener of ``transport`` (and address family, if given)."""
        name = parse_transport(transport)
        for item in self._listeners:
            if item.transport == name and (family is None or _family(item.host) == family):
                return item
        return None

    @property
    def connections(self) -> tuple[Source, ...]:
        """The flows of every open connection."""
        return tuple(c.source for c in self._connections.values() if c.is_open)

    def close_connection(self, connection_id: int, reason: str = "closed by the user") -> bool:
        """Close one connection (queued data is flushed first); False if it is not open.

        For example, an RFC 5626 edge proxy ending a flow, or a registrar dropping a
        connection whose binding expired.
        """
        conn = self._connections.get(connection_id)
        if conn is None or not conn.is_open:
            return False
        conn.close(reason)
        return True

    # ----------------------------------------------------------------- listening

    async def listen(
        self,
        spec: str,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        advertise: str | None = None,
        reuse_port: bool = False,
    ) -> Listener:
        """Bind ``"udp:127.0.0.1:5060"``, ``"tcp:[::1]:0"``, ``"tls:..."``, ``"ws:..."``,
        ``"wss:..."`` (port 0: a free port; no port: the transport's default).

        TLS and WSS need ``certfile`` (+ ``keyfile``) or a server ``ssl_context``.
        ``advertise="host[:port]"`` is what Via sent-by says for this listener (an FQDN or
        a NAT's public address); by default the bound address. ``reuse_port`` sets
        SO_REUSEPORT so several worker processes share the port (the kernel spreads UDP
        flows and TCP connections over them).
        """
        if self._closed:
            raise LocalProtocolError("the transport layer is closed")
        name, _, rest = spec.partition(":")
        transport = parse_transport(name)
        host, port = parse_hostport(rest)
        if not is_ip(host):
            raise LocalProtocolError(f"listen on an IP address, not {host!r}")
        host = normalize_ip(host)
        if port is None:
            port = DEFAULT_PORTS[transport]
        context: ssl.SSLContext | None = None
        if transport in SECURE_TRANSPORTS:
            if ssl_context is not None:
                context = ssl_context
            elif certfile is not None:
                context = server_ssl_context(certfile, keyfile)
            else:
                raise LocalProtocolError(f"{transport} listener needs certfile or ssl_context")
        loop = asyncio.get_running_loop()
        if transport == "UDP":
            datagram_transport, endpoint = await loop.create_datagram_endpoint(
                lambda: UdpEndpoint(self), local_addr=(host, port), reuse_port=reuse_port or None
            )
            sockname = datagram_transport.get_extra_info("sockname")
            endpoint.local = (normalize_ip(str(sockname[0])), int(sockname[1]))
            listener = self._make_listener(transport, endpoint.local, advertise)
            self._udp.append((listener, endpoint))
        else:
            server = await loop.create_server(
                lambda: self._new_connection(transport, outbound=False, ssl_context=context),
                host,
                port,
                reuse_address=True,
                reuse_port=reuse_port or None,
            )
            sockname = server.sockets[0].getsockname()
            local = (normalize_ip(str(sockname[0])), int(sockname[1]))
            listener = self._make_listener(transport, local, advertise)
            self._servers.append((listener, server))
        self._listeners.append(listener)
        _log.info("listening on %s", listener)
        return listener

    async def listen_udp_tcp(self, host: str, port: int = 0) -> tuple[Listener, Listener]:
        """UDP and TCP on the same address and port, as RFC 3261 §18.2.1 requires of a
        server (a request too large for UDP arrives over TCP).  With ``port=0`` a port free
        for both is picked."""
        last: OSError | None = None
        for _ in range(20 if port == 0 else 1):
            udp = await self.listen(f"udp:{format_host(host)}:{port}")
            try:
                tcp = await self.listen(f"tcp:{format_host(host)}:{udp.port}")
            except OSError as exc:  # the TCP port is taken: try another pair
                last = exc
                await self._unlisten(udp)
                continue
            return udp, tcp
        assert last is not None
        raise last

    async def _unlisten(self, listener: Listener) -> None:
        for item in list(self._udp):
            if item[0] is listener:
                item[1].close()
                self._udp.remove(item)
                await item[1].closed
        self._listeners.remove(listener)

    def _make_listener(
        self, transport: str, local: tuple[str, int], advertise: str | None
    ) -> Listener:
        host, port = local
        adv_host, adv_port = host, port
        if advertise:
            adv_host, maybe_port = parse_hostport(advertise)
            adv_port = maybe_port or port
        return Listener(
            transport=transport,
            host=host,
            port=port,
            advertised_host=adv_host,
            advertised_port=adv_port,
        )

    # ----------------------------------------------------------------- closing

    async def close(self) -> None:
        """Stop listening, close every connection (bounded wait) and every UDP socket."""
        if self._closed:
            return
        self._closed = True
        for _, server in self._servers:
            server.close()
        for conn in list(self._connections.values()):
            conn.close("transport layer closed")
        waits: list[asyncio.Future[Any]] = [c.closed for c in self._connections.values()]
        for _, endpoint in self._udp:
            endpoint.close()
            waits.append(endpoint.closed)
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_GRACE + 1.0)
        for _, server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        self._udp.clear()

    async def __aenter__(self) -> TransportLayer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- inbound

    def datagram_received(
        self, endpoint: UdpEndpoint, data: bytes, remote: tuple[str, int]
    ) -> None:
        stats = self.stats["UDP"]
        stats.bytes_in += len(data)
        if not data.strip(b"\r\n\t "):  # CRLF keep-alive over UDP: nothing to answer
            stats.keepalives_in += 1
            return
        if len(data) >= 20 and data[0] < 2 and data[4:8] == _STUN_MAGIC:
            stats.keepalives_in += 1  # a STUN keep-alive (RFC 5626 §3.5.2): ignored
            return
        source = endpoint.source_for(remote)
        try:
            message = parse_message(data, limits=self.limits, validate=self.config.validate)
        except RemoteProtocolError as error:
            stats.malformed += 1
            self._report_malformed(data, source, error)
            return
        self._deliver(message, source, data)

    def _deliver(self, message: Request | Response, source: Source, data: bytes | None) -> None:
        stats = self.stats[source.transport]
        if isinstance(message, Request):
            try:
                apply_received(message, source.remote)
            except RemoteProtocolError as error:
                stats.malformed += 1
                self._report_malformed(
                    data if data is not None else message.to_bytes(), source, error
                )
                return
        stats.messages_in += 1
        try:
            self._on_message(message, source)
        except Exception:
            _log.exception("on_message raised for a message from %s", source)

    def _report_malformed(self, data: bytes, source: Source, error: RemoteProtocolError) -> None:
        _log.debug("malformed input from %s: %s", source, error.reason)
        if self._on_malformed is None:
            return
        try:
            self._on_malformed(data, source, error)
        except Exception:
            _log.exception("on_malformed raised for input from %s", source)

    # ConnectionOwner -------------------------------------------------------------------

    def _new_connection(
        self,
        transport: str,
        *,
        outbound: bool,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None = None,
        ws_host: str | None = None,
        ws_port: int | None = None,
    ) -> StreamConnection:
        common: dict[str, Any] = {
            "connection_id": next(self._ids),
            "transport_name": transport,
            "outbound": outbound,
            "config": self.config,
            "limits": self.limits,
            "stats": self.stats[transport],
            "ssl_context": ssl_context,
            "server_hostname": server_hostname,
        }
        if transport in ("WS", "WSS"):
            return WebSocketConnection(self, ws_host=ws_host, ws_port=ws_port, **common)
        return StreamConnection(self, **common)

    def connection_admit(self, conn: StreamConnection) -> bool:
        stats = self.stats[conn.transport_name]
        cfg = self.config
        ip = conn.remote[0]
        if (
            self._closed
            or len(self._connections) >= cfg.max_connections
            or self._per_ip[ip] >= cfg.max_connections_per_ip
        ):
            stats.connections_refused += 1
            _log.warning(
                "refusing %s connection from %s: connection limit", conn.transport_name, conn.remote
            )
            return False
        self._connections[conn.connection_id] = conn
        self._per_ip[ip] += 1
        stats.connections_opened += 1
        return True

    def connection_open(self, conn: StreamConnection) -> None:
        self._by_peer[(conn.transport_name, *conn.remote)] = conn

    def connection_message(self, conn: StreamConnection, message: Request | Response) -> None:
        self._deliver(message, conn.source, None)

    def connection_malformed(
        self, conn: StreamConnection, data: bytes, error: RemoteProtocolError
    ) -> None:
        self._report_malformed(data, conn.source, error)

    def connection_lost(self, conn: StreamConnection, reason: str) -> None:
        if self._connections.pop(conn.connection_id, None) is None:
            return
        key = (conn.transport_name, *conn.remote)
        if self._by_peer.get(key) is conn:
            del self._by_peer[key]
        ip = conn.remote[0]
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]
        self.stats[conn.transport_name].connections_closed += 1
        _log.debug("%r closed: %s", conn, reason)
        if self._on_closed is not None:
            try:
                self._on_closed(conn.source, reason)
            except Exception:
                _log.exception("on_closed raised for %s", conn.source)

    # ----------------------------------------------------------------- outbound

    def _wants_fill(self, message: Request | Response, fill_via: bool | None) -> bool:
        if not isinstance(message, Request):
            return False
        if fill_via is not None:
            return fill_via
        return message.top_via.host == VIA_PLACEHOLDER_HOST

    def send_nowait(
        self,
        message: Request | Response,
        destination: Destination,
        *,
        fill_via: bool | None = None,
    ) -> Source | None:
        """Send at once if that needs neither a DNS lookup nor a new connection: UDP to an
        IP address (and small enough to stay on UDP), or a connection to the destination
        that is already open.  Returns the flow, or None when sending would have to wait --
        then ``await send(...)``.  Same Via rules and errors as :meth:`send`; meant for
        callbacks that drain a sans-IO core's output without creating a task per message.
        """
        if self._closed:
            raise TransportError("the transport layer is closed")
        if not is_ip(destination.host):
            return None
        transport = destination.transport
        ip = normalize_ip(destination.host)
        fill = self._wants_fill(message, fill_via)
        try:
            if transport == "UDP":
                if isinstance(message, Request):
                    if fill:
                        self._fill_via_for(message, "UDP", ip, None)
                    if len(message.to_bytes()) > self.config.udp_max_request_size:
                        return None  # §18.1.1: needs a TCP connection
                return self._send_udp(message.to_bytes(), (ip, destination.port), None)
            conn = self._by_peer.get((transport, ip, destination.port))
            if conn is None or not conn.is_open:
                return None
            if isinstance(message, Request) and fill:
                self._fill_via_for(message, transport, ip, conn)
            return self._send_on(conn, message.to_bytes())
        except TransportError:
            self.stats[transport].send_errors += 1
            raise

    async def send(
        self,
        message: Request | Response,
        destination: Destination,
        *,
        fill_via: bool | None = None,
    ) -> Source:
        """Send ``message`` to ``destination``; returns the flow used.

        An open connection to the destination's transport, IP and port is reused (also
        one the peer opened to us); else one is opened within ``connect_timeout``.  A host
        name is resolved with the system resolver (RFC 3263 is the caller's job).

        For a request, ``fill_via=True`` (or a top Via host of :data:`VIA_PLACEHOLDER_HOST`)
        writes the flow's transport and our sent-by into the top Via before serialising.
        A UDP request above ``config.udp_max_request_size`` goes over TCP (RFC 3261
        §18.1.1): the top Via's transport is changed to TCP and the returned flow is
        reliable; if the TCP connect is refused it goes over UDP after all.
        Raises :class:`TransportError` when it cannot be sent (§18.4).
        """
        fill = self._wants_fill(message, fill_via)
        flow = self.send_nowait(message, destination, fill_via=fill)
        if flow is not None:
            return flow
        transport = destination.transport
        try:
            ip = await self._resolve(destination.host, destination.port, transport)
            if transport == "UDP":
                if isinstance(message, Request):
                    if fill:
                        self._fill_via_for(message, "UDP", ip, None)
                    if len(message.to_bytes()) > self.config.udp_max_request_size:
                        flow = await self._send_large_udp_request(message, destination, ip, fill)
                        if flow is not None:
                            return flow
                return self._send_udp(message.to_bytes(), (ip, destination.port), None)
            conn = await self._connection_to(destination, ip)
            if isinstance(message, Request) and fill:
                self._fill_via_for(message, transport, ip, conn)
            return self._send_on(conn, message.to_bytes())
        except TransportError:
            self.stats[transport].send_errors += 1
            raise

    async def _send_large_udp_request(
        self, request: Request, destination: Destination, ip: str, fill: bool
    ) -> Source | None:
        """§18.1.1: move a large request to TCP; None means "send it over UDP after all"."""
        tcp = dataclasses.replace(destination, transport="TCP")
        try:
            conn = await self._connection_to(tcp, ip)
        except _ConnectRefused:
            if not self.config.udp_fallback_on_refused:
                raise
            _log.info("TCP refused by %s for a large request; falling back to UDP", ip)
            return None
        if fill:
            self._fill_via_for(request, "TCP", ip, conn)
        else:
            _rewrite_top_via(request, transport="TCP")
        return self._send_on(conn, request.to_bytes())

    def _send_udp(
        self, data: bytes, remote: tuple[str, int], local: tuple[str, int] | None
    ) -> Source:
        endpoint, address = self._udp_route(remote, local)
        endpoint.sendto(data, address)
        stats = self.stats["UDP"]
        stats.messages_out += 1
        stats.bytes_out += len(data)
        return endpoint.source_for(remote)

    def _send_on(self, conn: StreamConnection, data: bytes) -> Source:
        conn.send_message(data)
        self.stats[conn.transport_name].messages_out += 1
        return conn.source

    def _udp_route(
        self, remote: tuple[str, int], local: tuple[str, int] | None
    ) -> tuple[UdpEndpoint, tuple[str, int]]:
        """The UDP socket to send from (``local`` if given and open, RFC 3581 §4), and the
        address to use: an IPv4 peer reached through an IPv6 wildcard (dual-stack) socket
        is addressed as ``::ffff:a.b.c.d``."""
        if local is not None:  # the hot path: a response from the request's socket
            for _, endpoint in self._udp:
                if endpoint.local == local and endpoint.is_open:
                    if (":" in local[0]) == (":" in remote[0]):  # same address family
                        return endpoint, remote
                    break
        family = _family(remote[0])
        usable: list[UdpEndpoint] = [e for _, e in self._udp if e.is_open]
        preferred = [e for e in usable if e.local == local] if local is not None else []
        for endpoint in [*preferred, *usable]:
            endpoint_family = _family(endpoint.local[0])
            if endpoint_family == family:
                return endpoint, remote
            if family == socket.AF_INET and endpoint.local[0] == "::":
                return endpoint, (f"::ffff:{remote[0]}", remote[1])
        fam = "IPv6" if family == socket.AF_INET6 else "IPv4"
        raise TransportError(f"no UDP listener for {fam} destination {remote[0]}")

    async def _resolve(self, host: str, port: int, transport: str) -> str:
        if is_ip(host):
            return normalize_ip(host)
        kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                infos = await loop.getaddrinfo(host, port, type=kind)
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot resolve {host!r}: {exc}") from exc
        if not infos:
            raise TransportError(f"cannot resolve {host!r}")
        return normalize_ip(str(infos[0][4][0]))

    async def _connection_to(self, destination: Destination, ip: str) -> StreamConnection:
        """An open connection to (transport, ip, port): reused, or opened now."""
        key = (destination.transport, ip, destination.port)
        conn = self._by_peer.get(key)
        if conn is not None and conn.is_open:
            return conn
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[StreamConnection] = asyncio.get_running_loop().create_future()
        self._connecting[key] = future
        try:
            conn = await self._connect(destination, ip)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else TransportError("cancelled"))
            future.exception()  # retrieved: other waiters re-raise it themselves
            raise
        else:
            future.set_result(conn)
            return conn
        finally:
            del self._connecting[key]

    async def _connect(self, destination: Destination, ip: str) -> StreamConnection:
        transport = destination.transport
        cfg = self.config
        stats = self.stats[transport]
        if (
            len(self._connections) >= cfg.max_connections
            or self._per_ip[ip] >= cfg.max_connections_per_ip
        ):
            stats.connections_refused += 1
            raise TransportError(f"connection limit reached; not connecting to {ip}")
        context: ssl.SSLContext | None = None
        server_hostname = destination.server_name or destination.host
        if transport in SECURE_TRANSPORTS:
            context = self._client_context()
        loop = asyncio.get_running_loop()
        conn: StreamConnection | None = None
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: self._new_connection(
                        transport,
                        outbound=True,
                        ssl_context=context,
                        server_hostname=server_hostname,
                        ws_host=server_hostname,
                        ws_port=destination.port,
                    ),
                    ip,
                    destination.port,
                )
                assert isinstance(protocol, StreamConnection)
                conn = protocol
                await asyncio.shield(conn.ready)
        except ConnectionRefusedError as exc:
            raise _ConnectRefused(
                f"{transport} connect to {ip}:{destination.port} refused"
            ) from exc
        except TimeoutError as exc:
            if conn is not None:
                conn.abort("connect timed out")
            raise TransportError(
                f"{transport} connect to {ip}:{destination.port} timed out"
            ) from exc
        except OSError as exc:
            if conn is not None:
                conn.abort(f"connect failed: {exc}")
            raise TransportError(
                f"{transport} connect to {ip}:{destination.port} failed: {exc}"
            ) from exc
        except BaseException:
            if conn is not None:
                conn.abort("connect cancelled")
            raise
        return conn

    def _client_context(self) -> ssl.SSLContext:
        if self._client_ssl is None:
            self._client_ssl = client_ssl_context(
                cafile=self.config.tls_ca_file, verify=self.config.tls_verify
            )
        return self._client_ssl

    # ----------------------------------------------------------------- Via sent-by

    def fill_via(self, request: Request, transport: str, *, remote_ip: str | None = None) -> None:
        """Write ``transport`` and the sent-by of its listener into the top Via.

        The listener is the first of ``transport`` (of ``remote_ip``'s address family when
        given).  :meth:`send` does this itself for the flow it picks; this helper is for
        callers that need the Via before sending (e.g. to compute a signature).
        Raises LocalProtocolError if there is no such listener.
        """
        name = parse_transport(transport)
        family = _family(remote_ip) if remote_ip else None
        listener = self.listener(name, family=family)
        if listener is None:
            raise LocalProtocolError(f"no {name} listener to fill the Via sent-by from")
        host = listener.advertised_host
        if host in _WILDCARDS:
            host = self._route_ip(remote_ip) if remote_ip else host
        _rewrite_top_via(request, transport=name, host=host, port=listener.advertised_port)

    def _fill_via_for(
        self, request: Request, transport: str, remote_ip: str, conn: StreamConnection | None
    ) -> None:
        family = _family(remote_ip)
        listener = self.listener(transport, family=family)
        if listener is not None:
            host, port = listener.advertised_host, listener.advertised_port
            if host in _WILDCARDS:
                host = conn.local[0] if conn is not None else self._route_ip(remote_ip)
        elif conn is not None:  # a client-only transport: the connection's own address
            host, port = conn.local
        else:
            raise TransportError(f"no {transport} listener to fill the Via sent-by from")
        _rewrite_top_via(request, transport=transport, host=host, port=port)

    def _route_ip(self, remote_ip: str) -> str:
        """The local IP the kernel would use towards ``remote_ip`` (no packet is sent)."""
        cached = self._route_cache.get(remote_ip)
        if cached is not None:
            return cached
        family = _family(remote_ip)
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((remote_ip, 9))
                local = normalize_ip(str(probe.getsockname()[0]))
        except OSError:
            local = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if len(self._route_cache) >= _ROUTE_CACHE_SIZE:
            self._route_cache.clear()
        self._route_cache[remote_ip] = local
        return local

    # ----------------------------------------------------------------- responses

    def send_response_nowait(
        self, response: Response, source: Source, *, via: Via | None = None
    ) -> Source | None:
        """:meth:`send_response` without waiting when no connect or DNS lookup is needed
        (the request's connection is open, or UDP to an IP address); None otherwise.

        ``via`` is the response's top Via when the caller already has it parsed (the
        request's, which the response copies); it must be equal to it."""
        if self._closed:
            raise TransportError("the transport layer is closed")
        try:
            if source.reliable:
                conn = self._connections.get(source.connection_id or 0)
                if conn is not None and conn.is_open:
                    return self._send_on(conn, response.to_bytes())
                if source.transport in ("WS", "WSS"):
                    raise TransportError(
                        f"{source.transport} connection to {source.remote} is gone"
                    )
                return None
            host, port = _udp_response_target(via if via is not None else response.top_via)
            if not is_ip(host):
                return None
            return self._send_udp(response.to_bytes(), (normalize_ip(host), port), source.local)
        except TransportError:
            self.stats[source.transport].send_errors += 1
            raise

    async def send_response(
        self, response: Response, source: Source, *, via: Via | None = None
    ) -> Source:
        """Send a response to the request that arrived on ``source`` (RFC 3261 §18.2.2).

        Reliable: the request's connection while it is open; else a new connection to
        ``received`` (or the sent-by host) at the sent-by port (not for WS/WSS, whose
        clients cannot accept connections: TransportError).  UDP: ``maddr`` at the sent-by
        port; else ``received`` at ``rport`` (RFC 3581 §4) or at the sent-by port; else the
        sent-by address -- always from the socket the request arrived on.  (Multicast TTL
        is not set: responses to multicast requests are not supported.)  ``via``: as for
        :meth:`send_response_nowait`.
        """
        flow = self.send_response_nowait(response, source, via=via)
        if flow is not None:
            return flow
        if via is None:
            via = response.top_via
        try:
            if source.reliable:
                host = via.received or via.host
                port = via.port or DEFAULT_PORTS[source.transport]
                return await self.send(
                    response, Destination(transport=source.transport, host=host, port=port)
                )
            host, port = _udp_response_target(via)
            ip = await self._resolve(host, port, "UDP")
            return self._send_udp(response.to_bytes(), (ip, port), source.local)
        except TransportError:
            if not source.reliable:  # send() counted its own failures
                self.stats[source.transport].send_errors += 1
            raise


def _udp_response_target(via: Via) -> tuple[str, int]:
    """§18.2.2 bullets 2-4 with RFC 3581 §4 between 2 and 3, from the top Via."""
    default_port = DEFAULT_PORTS["UDP"]
    if via.maddr:
        return via.maddr, via.port or default_port
    received = via.received
    if received:
        rport = via.rport
        return received, rport if rport else (via.port or default_port)
    return via.host.strip("[]"), via.port or default_port


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
