"""Connection-oriented SIP transports: TCP and TLS (RFC 3261 §18, §18.3 framing).

A :class:`StreamConnection` is an ``asyncio.Protocol`` for one connection, inbound or
outbound.  It owns the bounded per-connection state and every deadline of the flow:

* **framing** -- a :class:`~sipwire.core.message.StreamParser` splits the byte stream by
  Content-Length; its limits bound the buffer.  A framing error closes the connection
  (after reporting it, so a 400 written in the report callback is still flushed).
* **CRLF keep-alive** (RFC 5626 §3.5.1) -- a "ping" (CRLFCRLF) is answered with a "pong"
  (CRLF); on connections we opened, pings can be sent every ``keepalive_interval`` and a
  missing pong within ``keepalive_timeout`` fails the flow.
* **deadlines** -- opening handshake (TLS / WebSocket), idle time with no traffic in
  either direction, a started message that does not complete (slowloris), keep-alive, and
  a grace period for a close that cannot flush.  One ``loop.call_at`` handle per
  connection, re-armed lazily: deadlines that move later (idle) are re-checked when the
  timer fires instead of being re-armed on every byte.
* **write bound** -- a peer that stops reading cannot make us queue more than
  ``max_write_buffer`` bytes: the connection is aborted instead.

TLS runs inside the connection over memory BIOs (:class:`~sipwire.aio._tls.TlsSession`)
rather than ``loop.start_tls``: every connection is admitted (counted against the
connection limits) before any handshake work, the handshake is under the connection's own
deadline, and asyncio's loop and uvloop behave the same.  :mod:`sipwire.aio._ws`
subclasses this for RFC 7118 WebSocket framing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from typing import TYPE_CHECKING, Protocol, cast

from sipwire.aio._tls import TlsSession
from sipwire.aio._transport_common import (
    Source,
    TransportConfig,
    TransportError,
    TransportStats,
    normalize_ip,
)
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import InvalidMessage, KeepAlive, Limits, StreamParser

if TYPE_CHECKING:
    from sipwire.core.message import Request, Response

__all__ = ["CLOSE_GRACE", "ConnectionOwner", "ConnectionState", "StreamConnection"]

_log = logging.getLogger("sipwire.transport")

#: Seconds a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 5.0

PING = b"\r\n\r\n"
PONG = b"\r\n"


class ConnectionState(enum.Enum):
    HANDSHAKE = "handshake"  # TCP up, TLS and/or WebSocket opening handshake running
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ConnectionOwner(Protocol):
    """What a connection needs from the transport layer."""

    def connection_admit(self, conn: StreamConnection) -> bool:
        """Count a new connection against the limits; False refuses it."""

    def connection_open(self, conn: StreamConnection) -> None:
        """The connection finished its handshakes and can carry SIP."""

    def connection_message(self, conn: StreamConnection, message: Request | Response) -> None:
        """A complete SIP message arrived."""

    def connection_malformed(
        self, conn: StreamConnection, data: bytes, error: RemoteProtocolError
    ) -> None:
        """Unparseable input arrived (the connection may be closed right after)."""

    def connection_lost(self, conn: StreamConnection, reason: str) -> None:
        """The connection is gone (called once, only for admitted connections)."""


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection carrying SIP (see the module docstring)."""

    #: Set by subclasses: does this connection carry WebSocket frames?
    websocket = False

    def __init__(
        self,
        owner: ConnectionOwner,
        *,
        connection_id: int,
        transport_name: str,
        outbound: bool,
        config: TransportConfig,
        limits: Limits,
        stats: TransportStats,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self.connection_id = connection_id
        self.transport_name = transport_name
        self.outbound = outbound
        self._config = config
        self._limits = limits
        self._stats = stats
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._transport: asyncio.Transport | None = None
        self._tls: TlsSession | None = None
        self.state = ConnectionState.HANDSHAKE
        self.admitted = False
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.close_reason: str | None = None
        #: Resolved when the connection is OPEN; fails if it closes before that.
        self.ready: asyncio.Future[None] = self._loop.create_future()
        #: Resolved (with the close reason) once the connection is gone.
        self.closed: asyncio.Future[str] = self._loop.create_future()
        now = self._loop.time()
        self._opened_at = now
        self._last_activity = now
        self._partial_since: float | None = None
        self._next_ping: float | None = None
        self._pong_deadline: float | None = None
        self._close_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._parser: StreamParser | None = None
        self._source: Source | None = None

    # ---------------------------------------------------------------- properties

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    @property
    def source(self) -> Source:
        if self._source is None:
            self._source = Source(
                transport=self.transport_name,
                remote=self.remote,
                local=self.local,
                connection_id=self.connection_id,
                reliable=True,
            )
        return self._source

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} #{self.connection_id} {self.transport_name} "
            f"{self.local}->{self.remote} {self.state.value}>"
        )

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's ABCs: no isinstance check.
        transport = cast("asyncio.Transport", transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if peer:
            self.remote = (normalize_ip(str(peer[0])), int(peer[1]))
        if sock:
            self.local = (normalize_ip(str(sock[0])), int(sock[1]))
        if not self._owner.connection_admit(self):
            self.state = ConnectionState.CLOSED
            self.close_reason = "refused: connection limit"
            transport.abort()
            self._fail_ready(TransportError("connection refused: connection limit"))
            self.closed.set_result(self.close_reason)
            return
        self.admitted = True
        # The opening handshake (TLS, WebSocket) must finish in time.
        self._arm(self._opened_at + self._handshake_timeout())
        if self._ssl_context is None:
            self._start_protocol()
            return
        self._tls = TlsSession(
            self._ssl_context,
            server_side=not self.outbound,
            server_hostname=self._server_hostname,
        )
        self._tls.start()
        self._flush_tls()

    def data_received(self, data: bytes) -> None:
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        self._last_activity = self._loop.time()
        self._stats.bytes_in += len(data)
        try:
            if self._tls is not None:
                data = self._tls_received(data)
                if not data:
                    return
            self._handle_data(data)
        except TransportError:
            pass  # the connection failed while answering (e.g. a pong): already dropped
        except Exception:  # a bug in our own code must not leak the connection
            _log.exception("%r: error while handling input", self)
            self.abort("internal error")

    def eof_received(self) -> bool:
        self._on_eof()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.close_reason or (f"connection lost: {exc}" if exc else "closed by peer")
        self._finalize(reason)

    def pause_writing(self) -> None:  # flow control: enforced by max_write_buffer
        pass

    def resume_writing(self) -> None:
        pass

    # ---------------------------------------------------------------- TLS

    def _handshake_timeout(self) -> float:
        cfg = self._config
        return cfg.connect_timeout if self.outbound else cfg.handshake_timeout

    def _tls_received(self, data: bytes) -> bytes:
        """Decrypt; start the SIP/WebSocket protocol once the TLS handshake completes."""
        tls = self._tls
        assert tls is not None
        was_established = tls.established
        try:
            plaintext = tls.receive(data)
        except ssl.SSLError as exc:
            self._flush_tls()  # the alert, if any
            what = "TLS error" if was_established else "TLS handshake failed"
            self._fail_ready(TransportError(f"{what}: {exc}"))
            self.abort(f"{what}: {exc}")
            return b""
        self._flush_tls()
        if tls.established and not was_established:
            self._start_protocol()
        if tls.closed:
            self.close("TLS close_notify received")
            return b""
        return plaintext

    def _flush_tls(self) -> None:
        assert self._tls is not None
        out = self._tls.data_to_send()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)
            self._stats.bytes_out += len(out)

    # ---------------------------------------------------------------- framing hooks

    def _start_protocol(self) -> None:
        """The byte stream is ready (after TLS if any): start SIP framing."""
        self._parser = StreamParser(self._limits, validate=self._config.validate)
        self._set_open()

    def _set_open(self) -> None:
        if self.state is not ConnectionState.HANDSHAKE:
            return
        self.state = ConnectionState.OPEN
        now = self._loop.time()
        self._last_activity = now
        self._arm(now + self._config.idle_timeout)
        if self.outbound and self._config.keepalive_interval is not None:
            self._next_ping = now + self._config.keepalive_interval
            self._arm(self._next_ping)
        self._owner.connection_open(self)
        if not self.ready.done():
            self.ready.set_result(None)

    def _handle_data(self, data: bytes) -> None:
        """Feed SIP stream bytes to the parser and dispatch what it framed (§18.3)."""
        parser = self._parser
        if parser is None:  # data during the handshake cannot happen (reading is paused)
            return
        chunk: bytes = data
        progressed = False
        while True:
            try:
                items = parser.feed(chunk)
            except InvalidMessage as error:
                # Framed but unacceptable: report it (the endpoint may answer 400) and go
                # on -- the stream is still in sync.  Messages framed before it in this
                # read come out of the next feed().
                self._stats.malformed += 1
                self._owner.connection_malformed(self, error.message.to_bytes(), error)
                if self.state is not ConnectionState.OPEN:
                    return
                chunk, progressed = b"", True
                continue
            except RemoteProtocolError as error:
                # A framing error: the stream cannot be resynchronised (§18.3).
                self._stats.malformed += 1
                self._owner.connection_malformed(self, data, error)
                self.close(f"framing error: {error.reason}")
                return
            break
        for item in items:
            if self.state is not ConnectionState.OPEN:
                return
            if isinstance(item, KeepAlive):
                self._stats.keepalives_in += 1
                if item is KeepAlive.PING:
                    self._write(PONG)
                else:
                    self._pong_received()
            else:
                progressed = True
                self._owner.connection_message(self, item)
        self._track_partial(progressed, parser.buffered > 0)

    def _pong_received(self) -> None:
        if self._pong_deadline is not None:
            self._pong_deadline = None
            if self._next_ping is not None:
                self._arm(self._next_ping)

    def _track_partial(self, progressed: bool, pending: bool) -> None:
        """Start or stop the incomplete-message clock (slowloris guard)."""
        if not pending:
            self._partial_since = None
        elif progressed or self._partial_since is None:
            self._partial_since = self._loop.time()
            self._arm(self._partial_since + self._config.message_timeout)

    def _frame(self, data: bytes) -> bytes:
        """Wrap one serialized SIP message for the wire (identity for TCP/TLS)."""
        return data

    def _send_ping(self) -> None:
        self._write(PING)

    def _on_eof(self) -> None:
        """The peer half-closed: nothing more will arrive."""

    def _close_frames(self) -> None:
        """Queue whatever a graceful close sends first (WebSocket Close frame)."""

    # ---------------------------------------------------------------- sending

    def send_message(self, data: bytes) -> None:
        """Send one serialized SIP message; raises TransportError if the flow is gone."""
        if self.state is not ConnectionState.OPEN:
            raise TransportError(f"connection #{self.connection_id} is {self.state.value}")
        self._write(self._frame(data))

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise TransportError(f"connection #{self.connection_id} is closing")
        if self._tls is not None:
            try:
                self._tls.send(data)
            except ssl.SSLError as exc:  # e.g. after the peer's close_notify
                self.abort(f"TLS error: {exc}")
                raise TransportError(f"connection #{self.connection_id}: {exc}") from exc
            data = self._tls.data_to_send()
        transport.write(data)
        self._stats.bytes_out += len(data)
        self._last_activity = self._loop.time()
        if transport.get_write_buffer_size() > self._config.max_write_buffer:
            self.abort("peer is not reading (write buffer full)")
            raise TransportError(f"connection #{self.connection_id}: write buffer full")

    # ---------------------------------------------------------------- closing

    def close(self, reason: str = "closed") -> None:
        """Flush what is queued, then close; aborted if it cannot flush in CLOSE_GRACE."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        was_open = self.state is ConnectionState.OPEN
        self.state = ConnectionState.CLOSING
        self.close_reason = reason
        if was_open:
            try:
                self._close_frames()
            except TransportError:
                return
        if self._tls is not None and self._tls.established:
            self._tls.close()
            self._flush_tls()
        if self._transport is not None:
            self._transport.close()
        self._close_deadline = self._loop.time() + CLOSE_GRACE
        self._arm(self._close_deadline)

    def abort(self, reason: str) -> None:
        """Drop the connection now, discarding unsent data."""
        if self.state is ConnectionState.CLOSED:
            return
        if self.close_reason is None or self.state is not ConnectionState.CLOSING:
            self.close_reason = reason
        self.state = ConnectionState.CLOSING
        if self._transport is not None:
            self._transport.abort()

    def _fail_ready(self, exc: BaseException) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # mark retrieved: nobody may be waiting

    def _finalize(self, reason: str) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        if self.close_reason is None:
            self.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail_ready(TransportError(f"connection closed: {self.close_reason}"))
        if not self.closed.done():
            self.closed.set_result(self.close_reason)
        if self.admitted:
            self._owner.connection_lost(self, self.close_reason)

    # ---------------------------------------------------------------- deadlines

    def _arm(self, when: float) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        if self._timer is not None:
            if self._timer_when <= when:
                return  # fires earlier anyway and re-arms for the rest
            self._timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.state is ConnectionState.CLOSED:
            return
        now = self._loop.time()
        cfg = self._config
        pending: list[float] = []

        def due(deadline: float | None) -> bool:
            if deadline is None:
                return False
            if now >= deadline:
                return True
            pending.append(deadline)
            return False

        if self.state is ConnectionState.CLOSING:
            if due(self._close_deadline):
                self.abort(self.close_reason or "close timed out")
                return
        elif self.state is ConnectionState.HANDSHAKE:
            if due(self._opened_at + self._handshake_timeout()):
                self.abort("opening handshake timed out")
                return
        else:
            if due(self._last_activity + cfg.idle_timeout):
                self.close("idle timeout")
                return
            if due(
                None if self._partial_since is None else self._partial_since + cfg.message_timeout
            ):
                self.abort("incomplete message timed out")
                return
            if due(self._pong_deadline):
                self.abort("keep-alive pong timed out")
                return
            if self._next_ping is not None and cfg.keepalive_interval is not None:
                if self._pong_deadline is not None:
                    pass  # one ping outstanding at a time; the pong re-arms the next one
                elif due(self._next_ping):
                    try:
                        self._send_ping()
                    except TransportError:
                        return
                    self._stats.keepalives_out += 1
                    self._pong_deadline = now + cfg.keepalive_timeout
                    self._next_ping = now + cfg.keepalive_interval
                    pending.append(self._pong_deadline)
        if pending:
            self._arm(min(pending))
