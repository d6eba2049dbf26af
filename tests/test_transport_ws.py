"""SIP over WebSocket (RFC 7118): WS and WSS, between two transport layers and against the
``websockets`` library's own client and server.  Both event loops."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import InvalidStatus

from sipwire.aio.transport import (
    VIA_PLACEHOLDER_HOST,
    Destination,
    TransportConfig,
    TransportError,
)
from sipwire.core.message import Request, Response, make_response, parse_message
from test_transport_support import (
    LOOPS,
    WAIT,
    Certs,
    Inbox,
    make_certs,
    options,
    options_request,
    run_async,
)

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize(
    ("transport", "host"), [("WS", "127.0.0.1"), ("WS", "::1"), ("WSS", "127.0.0.1")]
)
def test_ws_round_trip_between_layers(loop: str, transport: str, host: str, certs: Certs) -> None:
    async def body() -> None:
        server, client = Inbox(answer=True), Inbox(answer=True)
        s_layer = server.make_layer()
        c_layer = client.make_layer(config=TransportConfig(tls_ca_file=certs.ca))
        bracketed = f"[{host}]" if ":" in host else host
        listener = await s_layer.listen(
            f"{transport.lower()}:{bracketed}:0", certfile=certs.cert, keyfile=certs.key
        )
        dest = Destination(transport=transport, host=host, port=listener.port)
        try:
            flow = await c_layer.send(options_request(f"{transport} {VIA_PLACEHOLDER_HOST}"), dest)
            assert flow.transport == transport
            assert flow.reliable
            got = await server.get()
            assert got.source.transport == transport
            assert got.source.remote == flow.local
            assert got.message.top_via.transport == transport
            answer = await client.get()
            assert isinstance(answer.message, Response)
            assert answer.message.status == 200
            assert answer.source.connection_id == flow.connection_id

            # the server reuses the client's WebSocket connection for its own request
            back = await s_layer.send(
                options_request(f"{transport} {VIA_PLACEHOLDER_HOST}", branch="z9hG4bK-b"),
                Destination(transport=transport, host=host, port=flow.local[1]),
            )
            assert back.connection_id == got.source.connection_id
            assert isinstance((await client.get()).message, Request)
            assert isinstance((await server.get()).message, Response)
            assert s_layer.stats[transport].connections_opened == 1
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_ws_server_with_a_plain_websockets_client(loop: str) -> None:
    """Text and binary frames, a fragmented message, CRLF keep-alive and a malformed
    message that does not break the connection (RFC 7118 §4.2, §5, §6)."""

    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen("ws:127.0.0.1:0")
        uri = f"ws://127.0.0.1:{listener.port}/"
        try:
            async with ws_connect(uri, subprotocols=["sip"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "sip"
                await ws.send(options("WS df7jal23ls0d.invalid;rport").decode())
                reply = await asyncio.wait_for(ws.recv(), WAIT)
                assert isinstance(reply, str)  # UTF-8 SIP goes out as a text frame
                response = parse_message(reply.encode())
                assert isinstance(response, Response)
                assert response.status == 200
                assert response.top_via.received == "127.0.0.1"  # a name in sent-by
                assert (await server.get()).message.call_id == "call-1@test"

                await ws.send(options("WS df7jal23ls0d.invalid", call_id="binary"))
                assert (await server.get()).message.call_id == "binary"
                await asyncio.wait_for(ws.recv(), WAIT)

                text = options("WS df7jal23ls0d.invalid", call_id="fragmented").decode()
                await ws.send([text[:50], text[50:120], text[120:]])
                assert (await server.get()).message.call_id == "fragmented"
                await asyncio.wait_for(ws.recv(), WAIT)

                await ws.send("\r\n\r\n")
                assert await asyncio.wait_for(ws.recv(), WAIT) == "\r\n"

                await ws.send("this is not SIP\r\n\r\n")
                data, source, _ = await server.get_malformed()
                assert data == b"this is not SIP\r\n\r\n"
                assert source.transport == "WS"
                await ws.send(options("WS df7jal23ls0d.invalid", call_id="after").decode())
                assert (await server.get()).message.call_id == "after"
                assert server.closed.empty()
        finally:
            await layer.close()

    run_async(loop, body)


def test_ws_client_without_the_sip_subprotocol_is_refused(loop: str) -> None:
    """RFC 7118 §4.1: the client MUST offer "sip"."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen("ws:127.0.0.1:0")
        try:
            with pytest.raises(InvalidStatus) as info:
                async with ws_connect(f"ws://127.0.0.1:{listener.port}/"):
                    pass
            assert info.value.response.status_code == 400
            _, reason = await server.get_closed()
            assert "handshake rejected" in reason
        finally:
            await layer.close()

    run_async(loop, body)


def test_ws_client_refuses_a_server_that_does_not_speak_sip(loop: str) -> None:
    """RFC 7118 §4.1: the 101 MUST carry "sip"; without it, no SIP goes over it."""

    async def body() -> None:
        async def handler(conn: ServerConnection) -> None:
            await conn.wait_closed()

        async with ws_serve(handler, "127.0.0.1", 0) as srv:
            port = next(iter(srv.sockets)).getsockname()[1]
            client = Inbox()
            layer = client.make_layer()
            try:
                with pytest.raises(TransportError, match="handshake"):
                    await layer.send(
                        options_request("WS df7jal23ls0d.invalid"),
                        Destination(transport="WS", host="127.0.0.1", port=port),
                    )
            finally:
                await layer.close()

    run_async(loop, body)


def test_wss_with_a_plain_websockets_client(loop: str, certs: Certs) -> None:
    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen("wss:127.0.0.1:0", certfile=certs.cert, keyfile=certs.key)
        context = ssl.create_default_context(cafile=certs.ca)
        try:
            async with ws_connect(
                f"wss://localhost:{listener.port}/",
                subprotocols=["sip"],  # type: ignore[list-item]
                ssl=context,
            ) as ws:
                await ws.send(options("WSS df7jal23ls0d.invalid").decode())
                response = parse_message(str(await asyncio.wait_for(ws.recv(), WAIT)).encode())
                assert isinstance(response, Response)
                assert response.status == 200
                got = await server.get()
                assert got.source.transport == "WSS"
        finally:
            await layer.close()

    run_async(loop, body)


def test_ws_response_needs_the_original_connection(loop: str) -> None:
    """A WebSocket client cannot accept connections: once its connection is gone, the
    response cannot be delivered (§18.2.2 fallback does not apply)."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen("ws:127.0.0.1:0")
        try:
            async with ws_connect(
                f"ws://127.0.0.1:{listener.port}/",
                subprotocols=["sip"],  # type: ignore[list-item]
            ) as ws:
                await ws.send(options("WS df7jal23ls0d.invalid").decode())
                got = await server.get()
            await server.get_closed()
            assert isinstance(got.message, Request)
            with pytest.raises(TransportError, match="gone"):
                await layer.send_response(make_response(got.message, 200), got.source)
            assert layer.stats["WS"].send_errors == 1
        finally:
            await layer.close()

    run_async(loop, body)


def test_ws_client_keepalive_pings_keep_the_flow(loop: str) -> None:
    """Client-side keep-alive over WS uses Ping frames; the server's Pongs keep it up."""

    async def body() -> None:
        server, client = Inbox(), Inbox()
        s_layer = server.make_layer()
        c_layer = client.make_layer(
            config=TransportConfig(keepalive_interval=0.05, keepalive_timeout=2.0)
        )
        listener = await s_layer.listen("ws:127.0.0.1:0")
        try:
            await c_layer.send(
                options_request(f"WS {VIA_PLACEHOLDER_HOST}"),
                Destination(transport="WS", host="127.0.0.1", port=listener.port),
            )
            await server.get()
            async with asyncio.timeout(WAIT):
                while c_layer.stats["WS"].keepalives_in < 3:  # three pongs came back
                    await asyncio.sleep(0.01)
            assert c_layer.stats["WS"].keepalives_out >= 3
            assert client.closed.empty()
            assert len(c_layer.connections) == 1
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)
