"""SIP over WebSocket, ``WS`` and ``WSS`` (RFC 7118), on the ``websockets`` sans-I/O layer.

:class:`WebSocketConnection` reuses everything :class:`~sipwire.aio._stream.StreamConnection`
does for a connection (admission, TLS via ``start_tls``, deadlines, write bound) and
replaces the SIP stream framing with WebSocket framing from ``websockets.ServerProtocol``
/ ``websockets.ClientProtocol``:

* the opening handshake negotiates the ``sip`` subprotocol (RFC 7118 §4.1): the server
  refuses a client that does not offer it, the client refuses a server that does not
  select it;
* each WebSocket message carries exactly one SIP message (§5), text or binary frames
  are both accepted (§4.2); we send text when the message is valid UTF-8, binary else;
* a WebSocket message consisting of CRLFCRLF is a keep-alive ping answered by a CRLF
  pong (RFC 7118 §6 allows RFC 5626 §3.5.1 over WS); our own client-side keep-alives
  use WebSocket Ping frames, which every RFC 6455 peer must answer;
* a malformed SIP message does not break WebSocket framing, so it is reported (the
  endpoint may answer 400) and the connection stays open; a WebSocket protocol error or
  an oversized message (``max_size`` = the SIP message size limit) closes it.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from sipwire.aio._stream import PING, PONG, ConnectionState, StreamConnection
from sipwire.aio._transport_common import TransportError, format_host
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import parse_message

if TYPE_CHECKING:
    from sipwire.aio._stream import ConnectionOwner
    from sipwire.aio._transport_common import TransportConfig, TransportStats
    from sipwire.core.message import Limits

__all__ = ["SUBPROTOCOL", "WebSocketConnection"]

#: The WebSocket subprotocol of RFC 7118 §4.1 / §10.1.
SUBPROTOCOL = Subprotocol("sip")


class WebSocketConnection(StreamConnection):
    """One WS or WSS connection carrying SIP (see the module docstring)."""

    websocket = True

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
        ws_host: str | None = None,
        ws_port: int | None = None,
    ) -> None:
        super().__init__(
            owner,
            connection_id=connection_id,
            transport_name=transport_name,
            outbound=outbound,
            config=config,
            limits=limits,
            stats=stats,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
        )
        self._ws: ServerProtocol | ClientProtocol | None = None
        self._ws_host = ws_host
        self._ws_port = ws_port
        self._fragments: list[bytes] = []

    # ---------------------------------------------------------------- handshake

    def _start_protocol(self) -> None:
        max_size = self._limits.max_message_size
        if self.outbound:
            scheme = "wss" if self._ssl_context is not None else "ws"
            host = self._ws_host or self._server_hostname or self.remote[0]
            port = self._ws_port or self.remote[1]
            uri = parse_uri(f"{scheme}://{format_host(host)}:{port}{self._config.ws_path}")
            client = ClientProtocol(uri, subprotocols=[SUBPROTOCOL], max_size=max_size)
            self._ws = client
            client.send_request(client.connect())
            self._flush()
        else:
            origins: Any = self._config.ws_origins
            self._ws = ServerProtocol(
                subprotocols=[SUBPROTOCOL],
                origins=None if origins is None else [Origin(o) if o else None for o in origins],
                max_size=max_size,
            )

    # ---------------------------------------------------------------- input

    def _handle_data(self, data: bytes) -> None:
        ws = self._ws
        if ws is None:
            return
        ws.receive_data(data)
        progressed = False
        for event in ws.events_received():
            if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
                break
            if isinstance(event, Frame):
                progressed |= self._handle_frame(event)
            elif isinstance(event, HttpRequest):
                self._handle_upgrade_request(event)
            elif isinstance(event, HttpResponse):
                self._handle_upgrade_response()
        self._after_ws_input()
        reader = getattr(ws, "reader", None)
        buffered = len(getattr(reader, "buffer", b""))
        self._track_partial(progressed, bool(self._fragments) or buffered > 0)

    def _handle_upgrade_request(self, request: HttpRequest) -> None:
        assert isinstance(self._ws, ServerProtocol)
        response = self._ws.accept(request)
        if response.status_code != 101:
            self.close_reason = f"WebSocket handshake rejected ({response.status_code})"
        self._ws.send_response(response)
        self._flush()
        if response.status_code == 101:
            self._set_open()
        else:
            self.close(self.close_reason or "WebSocket handshake rejected")

    def _handle_upgrade_response(self) -> None:
        ws = self._ws
        assert isinstance(ws, ClientProtocol)
        if ws.state is State.OPEN and ws.subprotocol == SUBPROTOCOL:
            self._set_open()
            return
        reason = str(ws.handshake_exc) if ws.handshake_exc else "server did not select 'sip'"
        self._fail_ready(TransportError(f"WebSocket handshake failed: {reason}"))
        self.close(f"WebSocket handshake failed: {reason}")

    def _handle_frame(self, frame: Frame) -> bool:
        """Returns True when a complete WebSocket message arrived."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                return False
            self._ws_message(bytes(frame.data))
            return True
        if opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return False
            data, self._fragments = b"".join(self._fragments), []
            self._ws_message(data)
            return True
        if opcode is Opcode.PONG:
            self._stats.keepalives_in += 1
            self._pong_received()
        elif opcode is Opcode.PING:
            self._stats.keepalives_in += 1  # websockets queued the Pong already
        return False

    def _ws_message(self, data: bytes) -> None:
        """One WebSocket message = one SIP message (RFC 7118 §5)."""
        if data == PING:
            self._stats.keepalives_in += 1
            self.send_message(PONG)
            return
        if data == PONG:
            self._stats.keepalives_in += 1
            self._pong_received()
            return
        try:
            message = parse_message(data, limits=self._limits, validate=self._config.validate)
        except RemoteProtocolError as error:
            self._stats.malformed += 1
            self._owner.connection_malformed(self, data, error)
            return
        self._owner.connection_message(self, message)

    def _after_ws_input(self) -> None:
        self._flush()
        ws = self._ws
        if ws is not None and (ws.state is State.CLOSED or ws.close_expected()):
            if self.state is ConnectionState.HANDSHAKE and self.outbound:
                self._fail_ready(TransportError("WebSocket handshake failed"))
            self.close("WebSocket closed")

    def _on_eof(self) -> None:
        if self._ws is not None:
            self._ws.receive_eof()
            self._flush()

    # ---------------------------------------------------------------- output

    def send_message(self, data: bytes) -> None:
        """Send one SIP message as one WebSocket message (text if UTF-8, RFC 7118 §4.2)."""
        ws = self._ws
        if self.state is not ConnectionState.OPEN or ws is None or ws.state is not State.OPEN:
            raise TransportError(f"connection #{self.connection_id} is {self.state.value}")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            ws.send_binary(data)
        else:
            ws.send_text(data)
        self._flush()

    def _send_ping(self) -> None:
        if self._ws is not None and self._ws.state is State.OPEN:
            self._ws.send_ping(b"sipwire")
            self._flush()

    def _close_frames(self) -> None:
        if self._ws is not None and self._ws.state is State.OPEN:
            self._ws.send_close(1001 if not self.outbound else 1000)
            self._flush()

    def _flush(self) -> None:
        ws = self._ws
        transport = self._transport
        if ws is None or transport is None:
            return
        for chunk in ws.data_to_send():
            if transport.is_closing():
                return
            if chunk:
                self._write(chunk)
                continue
            # SEND_EOF: websockets is done with the connection.  Close it (after flushing)
            # rather than half-close it: nothing may be written after a write_eof().
            self.close(self.close_reason or "WebSocket closed")
            return
