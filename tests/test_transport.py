"""The SIP transport layer over real loopback sockets: UDP, TCP and TLS.

RFC 3261 §18 (sending requests, receiving requests, sending responses, framing, error
handling), RFC 3581 (rport) and RFC 5626 §3.5.1 (CRLF keep-alive).  WebSocket transports
are in test_transport_ws.py, real peers in test_transport_peer.py.

Every test runs on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from sipwire.aio.transport import (
    VIA_PLACEHOLDER_HOST,
    Destination,
    Source,
    TransportConfig,
    TransportError,
)
from sipwire.core._parser import InvalidMessage
from sipwire.core.message import Request, Response, make_response, parse_message
from test_transport_support import (
    LOOPS,
    Certs,
    Inbox,
    RawUdp,
    make_certs,
    options,
    options_request,
    read_message,
    read_until_closed,
    run_async,
)

pytestmark = pytest.mark.parametrize("loop", LOOPS)

LOCAL = "127.0.0.1"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


# ============================================================================ UDP, §18.2


def test_udp_response_follows_rport_to_the_source_port(loop: str) -> None:
    """RFC 3581 §4: a bare rport is filled with the source port and the response goes to
    received:rport -- the port the request came from, not the sent-by port."""

    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen(f"udp:{LOCAL}:0")
        client, client_port = await RawUdp.bind()
        decoy, decoy_port = await RawUdp.bind()  # the sent-by port: must NOT get the answer
        try:
            client.send(options(f"UDP {LOCAL}:{decoy_port};rport"), (LOCAL, listener.port))
            got = await server.get()
            assert got.source == Source(
                transport="UDP", remote=(LOCAL, client_port), local=(LOCAL, listener.port)
            )
            via = got.message.top_via
            assert (via.received, via.rport, via.port) == (LOCAL, client_port, decoy_port)

            data, sender = await client.recv()
            assert sender == (LOCAL, listener.port)  # from the socket it arrived on
            response = parse_message(data)
            assert isinstance(response, Response)
            assert response.status == 200
            assert response.top_via.rport == client_port
            assert decoy.queue.empty()
            stats = layer.stats["UDP"]
            assert (stats.messages_in, stats.messages_out) == (1, 1)
        finally:
            client.close()
            decoy.close()
            await layer.close()

    run_async(loop, body)


def test_udp_response_without_rport_goes_to_received_and_sent_by_port(loop: str) -> None:
    """§18.2.1 adds received= for a sent-by that is a name; §18.2.2 sends the response to
    received at the sent-by port."""

    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen(f"udp:{LOCAL}:0")
        client, _ = await RawUdp.bind()
        sent_by, sent_by_port = await RawUdp.bind()
        try:
            client.send(options(f"UDP client.invalid:{sent_by_port}"), (LOCAL, listener.port))
            got = await server.get()
            assert got.message.top_via.received == LOCAL
            assert not got.message.top_via.has_rport
            data, _ = await sent_by.recv()
            assert data.startswith(b"SIP/2.0 200 ")
            assert client.queue.empty()
        finally:
            client.close()
            sent_by.close()
            await layer.close()

    run_async(loop, body)


def test_udp_response_goes_to_maddr(loop: str) -> None:
    """§18.2.2 bullet 2: maddr wins over received/rport, at the sent-by port."""

    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen(f"udp:{LOCAL}:0")
        client, _ = await RawUdp.bind()
        target, target_port = await RawUdp.bind("127.0.0.2")
        try:
            via = f"UDP client.invalid:{target_port};maddr=127.0.0.2;rport"
            client.send(options(via), (LOCAL, listener.port))
            await server.get()
            data, _ = await target.recv()
            assert data.startswith(b"SIP/2.0 200 ")
            assert client.queue.empty()
        finally:
            client.close()
            target.close()
            await layer.close()

    run_async(loop, body)


def test_udp_between_two_layers_fills_the_placeholder_via(loop: str) -> None:
    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        s_listener = await s_layer.listen(f"udp:{LOCAL}:0")
        c_listener = await c_layer.listen(f"udp:{LOCAL}:0")
        try:
            request = options_request(f"UDP {VIA_PLACEHOLDER_HOST};rport")
            flow = await c_layer.send(
                request, Destination(transport="UDP", host=LOCAL, port=s_listener.port)
            )
            assert flow == Source(
                transport="UDP", remote=(LOCAL, s_listener.port), local=(LOCAL, c_listener.port)
            )
            assert request.top_via.sent_by == f"{LOCAL}:{c_listener.port}"
            got = await server.get()
            assert got.message.top_via.sent_by == f"{LOCAL}:{c_listener.port}"
            answer = await client.get()
            assert isinstance(answer.message, Response)
            assert answer.message.status == 200
            assert answer.source.remote == (LOCAL, s_listener.port)
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_malformed_datagram_is_reported_and_can_be_answered(loop: str) -> None:
    """Garbage goes to on_malformed; a framed request that fails validation carries the
    message, so the endpoint can answer 400 (§18.3, §21.4.1)."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"udp:{LOCAL}:0")
        client, client_port = await RawUdp.bind()
        try:
            client.send(b"\x16\x03\x01 not SIP at all\r\n\r\n", (LOCAL, listener.port))
            data, source, error = await server.get_malformed()
            assert data.startswith(b"\x16\x03\x01")
            assert source.remote == (LOCAL, client_port)
            assert source.transport == "UDP"
            assert error.status_hint == 400

            no_call_id = options(f"UDP {LOCAL}:{client_port}").replace(
                b"Call-ID: call-1@test\r\n", b""
            )
            client.send(no_call_id, (LOCAL, listener.port))
            _, source, error = await server.get_malformed()
            assert isinstance(error, InvalidMessage)
            assert isinstance(error.message, Request)
            await layer.send_response(make_response(error.message, error.status_hint), source)
            answer, _ = await client.recv()
            assert answer.startswith(b"SIP/2.0 400 ")
            assert layer.stats["UDP"].malformed == 2
            assert server.messages.empty()
        finally:
            client.close()
            await layer.close()

    run_async(loop, body)


def test_crlf_datagrams_are_ignored(loop: str) -> None:
    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"udp:{LOCAL}:0")
        client, client_port = await RawUdp.bind()
        try:
            client.send(b"\r\n\r\n", (LOCAL, listener.port))
            client.send(options(f"UDP {LOCAL}:{client_port}"), (LOCAL, listener.port))
            await server.get()  # the datagram after the keep-alive arrives ...
            assert server.malformed.empty()  # ... and the keep-alive was not "malformed"
            assert layer.stats["UDP"].keepalives_in == 1
        finally:
            client.close()
            await layer.close()

    run_async(loop, body)


# ============================================================================ §18.1.1 size


def test_large_udp_request_goes_over_tcp(loop: str) -> None:
    """§18.1.1: > 1300 octets and the path MTU unknown -> TCP, and the top Via says TCP."""

    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        udp, tcp = await s_layer.listen_udp_tcp(LOCAL)
        assert udp.port == tcp.port
        await c_layer.listen(f"udp:{LOCAL}:0")
        c_tcp = await c_layer.listen(f"tcp:{LOCAL}:0")
        try:
            request = options_request(f"UDP {VIA_PLACEHOLDER_HOST}", body=b"x" * 1400)
            flow = await c_layer.send(
                request, Destination(transport="UDP", host=LOCAL, port=udp.port)
            )
            assert flow.transport == "TCP"
            assert flow.reliable
            assert request.top_via.transport == "TCP"
            assert request.top_via.sent_by == f"{LOCAL}:{c_tcp.port}"
            got = await server.get()
            assert got.source.transport == "TCP"
            assert got.message.top_via.transport == "TCP"
            assert got.message.body == b"x" * 1400
            answer = await client.get()
            assert answer.source.connection_id == flow.connection_id
            assert s_layer.stats["UDP"].messages_in == 0

            small = options_request(f"UDP {VIA_PLACEHOLDER_HOST}", branch="z9hG4bK-2")
            flow = await c_layer.send(
                small, Destination(transport="UDP", host=LOCAL, port=udp.port)
            )
            assert flow.transport == "UDP"
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_large_udp_request_falls_back_to_udp_when_tcp_is_refused(loop: str) -> None:
    """§18.1.1: a TCP reset on that connect -> retry over UDP (and the Via says UDP)."""

    async def body() -> None:
        server, client = Inbox(), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        # Hold the TCP port closed: bind it without listening, so a connect gets RST.
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind((LOCAL, 0))
        port = blocker.getsockname()[1]
        try:
            await s_layer.listen(f"udp:{LOCAL}:{port}")
            await c_layer.listen(f"udp:{LOCAL}:0")
            request = options_request(f"UDP {VIA_PLACEHOLDER_HOST}", body=b"y" * 1400)
            flow = await c_layer.send(request, Destination(transport="UDP", host=LOCAL, port=port))
            assert flow.transport == "UDP"
            got = await server.get()
            assert got.source.transport == "UDP"
            assert got.message.top_via.transport == "UDP"
            assert got.message.body == b"y" * 1400
        finally:
            blocker.close()
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


# ============================================================================ TCP


def test_tcp_round_trip_and_connection_reuse(loop: str) -> None:
    """A request, its response on the same connection (§18.2.2), a second request over the
    same connection, and a request from the server back over the *inbound* connection
    (connection reuse keyed by transport + remote address)."""

    async def body() -> None:
        server, client = Inbox(answer=True), Inbox(answer=True)
        s_layer, c_layer = server.make_layer(), client.make_layer()
        s_tcp = await s_layer.listen(f"tcp:{LOCAL}:0")
        c_tcp = await c_layer.listen(f"tcp:{LOCAL}:0")
        dest = Destination(transport="TCP", host=LOCAL, port=s_tcp.port)
        try:
            flow = await c_layer.send(options_request(f"TCP {VIA_PLACEHOLDER_HOST}"), dest)
            assert flow.reliable
            assert flow.transport == "TCP"
            assert flow.remote == (LOCAL, s_tcp.port)
            got = await server.get()
            assert got.message.top_via.sent_by == f"{LOCAL}:{c_tcp.port}"
            assert got.message.top_via.received is None  # same IP, no rport
            assert got.source.remote == flow.local
            answer = await client.get()
            assert isinstance(answer.message, Response)
            assert answer.source.connection_id == flow.connection_id

            again = await c_layer.send(options_request(f"TCP {VIA_PLACEHOLDER_HOST}"), dest)
            assert again.connection_id == flow.connection_id
            await server.get()
            await client.get()

            # The server reaches the client over the connection the client opened.
            back = await s_layer.send(
                options_request(f"TCP {VIA_PLACEHOLDER_HOST}", branch="z9hG4bK-back"),
                Destination(transport="TCP", host=LOCAL, port=flow.local[1]),
            )
            assert back.connection_id == got.source.connection_id
            request_at_client = await client.get()
            assert isinstance(request_at_client.message, Request)
            assert request_at_client.source.connection_id == flow.connection_id
            response_at_server = await server.get()
            assert isinstance(response_at_server.message, Response)

            assert s_layer.stats["TCP"].connections_opened == 1
            assert c_layer.stats["TCP"].connections_opened == 1
            assert len(c_layer.connections) == 1
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_tcp_input_split_byte_by_byte_and_pipelined(loop: str) -> None:
    """§18.3: framing by Content-Length whatever the segmentation."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            first = options(f"TCP {LOCAL}:5060", body=b"v=0\r\n", call_id="byte-by-byte")
            for i in range(len(first)):
                writer.write(first[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)  # let each byte go out on its own
            got = await server.get()
            assert got.message.call_id == "byte-by-byte"
            assert got.message.body == b"v=0\r\n"
            assert got.message.to_bytes().endswith(b"v=0\r\n")

            two = options(f"TCP {LOCAL}:5060", call_id="p1") + options(
                f"TCP {LOCAL}:5060", call_id="p2"
            )
            writer.write(two + b"\r\n\r\n")
            await writer.drain()
            assert (await server.get()).message.call_id == "p1"
            assert (await server.get()).message.call_id == "p2"
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # PONG
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_crlf_ping_is_answered_with_pong(loop: str) -> None:
    """RFC 5626 §3.5.1: CRLFCRLF -> CRLF, and the connection stays usable."""

    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        try:
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
            writer.write(options(f"TCP {LOCAL}:5060"))
            response = await read_message(reader)
            assert isinstance(response, Response)
            assert response.status == 200
            assert layer.stats["TCP"].keepalives_in == 1
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_client_keepalive_detects_a_dead_flow(loop: str) -> None:
    """Client-side RFC 5626 keep-alive: pings every interval; a missing pong fails the
    flow (on_closed) and the connection is dropped."""

    async def body() -> None:
        pings: asyncio.Queue[bytes] = asyncio.Queue()
        peer_done = asyncio.Event()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await read_message(reader)
                assert await reader.readexactly(4) == b"\r\n\r\n"
                pings.put_nowait(b"1")
                writer.write(b"\r\n")  # pong the first ping only
                assert await reader.readexactly(4) == b"\r\n\r\n"
                pings.put_nowait(b"2")
                assert await read_until_closed(reader) == b""
            finally:
                writer.close()
                peer_done.set()

        srv = await asyncio.start_server(peer, LOCAL, 0)
        port = srv.sockets[0].getsockname()[1]
        client = Inbox()
        config = TransportConfig(keepalive_interval=0.2, keepalive_timeout=0.4)
        layer = client.make_layer(config=config)
        try:
            flow = await layer.send(
                options_request(f"TCP {LOCAL}:5060"),
                Destination(transport="TCP", host=LOCAL, port=port),
            )
            source, reason = await client.get_closed()
            assert source.connection_id == flow.connection_id
            assert "keep-alive" in reason
            assert pings.qsize() == 2
            await asyncio.wait_for(peer_done.wait(), 5)
            assert layer.stats["TCP"].keepalives_out == 2
            assert layer.connections == ()
        finally:
            srv.close()
            await layer.close()

    run_async(loop, body)


def test_idle_connection_is_closed(loop: str) -> None:
    async def body() -> None:
        server = Inbox()
        layer = server.make_layer(config=TransportConfig(idle_timeout=0.3))
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        try:
            source, reason = await server.get_closed()
            assert reason == "idle timeout"
            assert source.local == (LOCAL, listener.port)
            assert await read_until_closed(reader) == b""
            assert layer.stats["TCP"].connections_closed == 1
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_connection_limit_per_ip_refuses_the_extra_connection(loop: str) -> None:
    async def body() -> None:
        server = Inbox(answer=True)
        layer = server.make_layer(config=TransportConfig(max_connections_per_ip=2))
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        streams = []
        try:
            for i in range(2):
                reader, writer = await asyncio.open_connection(LOCAL, listener.port)
                streams.append(writer)
                writer.write(options(f"TCP {LOCAL}:5060", call_id=f"ok{i}"))
                assert isinstance(await read_message(reader), Response)
            reader, writer = await asyncio.open_connection(LOCAL, listener.port)
            streams.append(writer)
            writer.write(options(f"TCP {LOCAL}:5060", call_id="refused"))
            assert await read_until_closed(reader) == b""
            assert layer.stats["TCP"].connections_refused == 1
            assert len(layer.connections) == 2

            streams[0].close()  # a slot frees up ...
            await server.get_closed()
            reader, writer = await asyncio.open_connection(LOCAL, listener.port)
            streams.append(writer)
            writer.write(options(f"TCP {LOCAL}:5060", call_id="later"))
            assert isinstance(await read_message(reader), Response)  # ... and is usable
        finally:
            for writer in streams:
                writer.close()
            await layer.close()

    run_async(loop, body)


def test_total_connection_limit_refuses_outbound_connects(loop: str) -> None:
    async def body() -> None:
        a, b = Inbox(), Inbox()
        a_layer, b_layer = a.make_layer(), b.make_layer()
        a_tcp = await a_layer.listen(f"tcp:{LOCAL}:0")
        b_tcp = await b_layer.listen(f"tcp:{LOCAL}:0")
        client = Inbox()
        layer = client.make_layer(config=TransportConfig(max_connections=1))
        try:
            await layer.send(
                options_request(f"TCP {LOCAL}:5060"),
                Destination(transport="TCP", host=LOCAL, port=a_tcp.port),
            )
            with pytest.raises(TransportError, match="connection limit"):
                await layer.send(
                    options_request(f"TCP {LOCAL}:5060"),
                    Destination(transport="TCP", host=LOCAL, port=b_tcp.port),
                )
            assert layer.stats["TCP"].connections_refused == 1
            assert layer.stats["TCP"].send_errors == 1
        finally:
            await layer.close()
            await a_layer.close()
            await b_layer.close()

    run_async(loop, body)


def test_slowloris_partial_message_is_cut_off(loop: str) -> None:
    """A started message must complete within message_timeout, however slowly the peer
    keeps trickling bytes."""

    async def body() -> None:
        server = Inbox()
        config = TransportConfig(message_timeout=0.3, idle_timeout=60)
        layer = server.make_layer(config=config)
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        message = options(f"TCP {LOCAL}:5060", body=b"z" * 4000)
        closed = asyncio.ensure_future(server.get_closed())
        try:
            for i in range(len(message)):  # one byte every 20 ms: ~80 s for all of it
                if closed.done():
                    break
                try:
                    writer.write(message[i : i + 1])
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.02)
            _, reason = await closed
            assert reason == "incomplete message timed out"
            assert server.messages.empty()
            assert await read_until_closed(reader) == b""
        finally:
            closed.cancel()
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_stream_framing_error_closes_the_connection(loop: str) -> None:
    """§18.3: Content-Length is mandatory on a stream; without it the stream cannot be
    framed and the connection is closed after reporting."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        try:
            writer.write(options(f"TCP {LOCAL}:5060").replace(b"Content-Length: 0\r\n", b""))
            _, source, error = await server.get_malformed()
            assert source.transport == "TCP"
            assert "Content-Length" in error.reason
            _, reason = await server.get_closed()
            assert reason.startswith("framing error")
            assert await read_until_closed(reader) == b""
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_invalid_but_framed_stream_message_keeps_the_connection(loop: str) -> None:
    """A framed request that fails validation is reported (answerable with 400); the stream
    is still in sync, so the next message on it is delivered."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        try:
            bad = options(f"TCP {LOCAL}:5060").replace(b"Call-ID: call-1@test\r\n", b"")
            writer.write(bad + options(f"TCP {LOCAL}:5060", call_id="good"))
            _, source, error = await server.get_malformed()
            assert isinstance(error, InvalidMessage)
            await layer.send_response(make_response(error.message, 400), source)  # type: ignore[arg-type]
            assert (await server.get()).message.call_id == "good"
            response = await read_message(reader)
            assert isinstance(response, Response)
            assert response.status == 400
            assert server.closed.empty()
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


def test_response_opens_a_new_connection_when_the_original_is_gone(loop: str) -> None:
    """§18.2.2: reliable transport, connection closed -> connect to received (or sent-by
    host) at the sent-by port."""

    async def body() -> None:
        arrived: asyncio.Queue[Request | Response] = asyncio.Queue()

        async def callback_server(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            arrived.put_nowait(await read_message(reader))
            w.close()

        srv = await asyncio.start_server(callback_server, LOCAL, 0)
        sent_by_port = srv.sockets[0].getsockname()[1]
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        try:
            _, writer = await asyncio.open_connection(LOCAL, listener.port)
            writer.write(options(f"TCP client.invalid:{sent_by_port}"))
            got = await server.get()
            assert got.message.top_via.received == LOCAL
            writer.close()
            await server.get_closed()
            assert isinstance(got.message, Request)
            flow = await layer.send_response(make_response(got.message, 200), got.source)
            assert flow.remote == (LOCAL, sent_by_port)
            assert flow.connection_id != got.source.connection_id
            response = await asyncio.wait_for(arrived.get(), 5)
            assert isinstance(response, Response)
            assert response.status == 200
        finally:
            srv.close()
            await layer.close()

    run_async(loop, body)


def test_connect_refused_raises_transport_error(loop: str) -> None:
    """§18.4: a connection failure is reported to the transport user."""

    async def body() -> None:
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind((LOCAL, 0))
        port = blocker.getsockname()[1]
        client = Inbox()
        layer = client.make_layer()
        try:
            with pytest.raises(TransportError, match="refused"):
                await layer.send(
                    options_request(f"TCP {LOCAL}:5060"),
                    Destination(transport="TCP", host=LOCAL, port=port),
                )
        finally:
            blocker.close()
            await layer.close()

    run_async(loop, body)


def test_peer_that_does_not_read_cannot_pin_memory(loop: str) -> None:
    """Bounded write buffer: once the kernel buffers are full, queuing more than
    max_write_buffer fails the send and drops the connection."""

    async def body() -> None:
        stalled = asyncio.Event()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await stalled.wait()  # never reads
            writer.close()

        srv = await asyncio.start_server(sink, LOCAL, 0)
        port = srv.sockets[0].getsockname()[1]
        client = Inbox()
        layer = client.make_layer(config=TransportConfig(max_write_buffer=256 * 1024))
        dest = Destination(transport="TCP", host=LOCAL, port=port)
        try:
            with pytest.raises(TransportError, match="write buffer"):
                for i in range(2000):  # ~120 MB at most; fails long before
                    await layer.send(
                        options_request(f"TCP {LOCAL}:5060", body=b"b" * 60000, call_id=f"c{i}"),
                        dest,
                    )
            _, reason = await client.get_closed()
            assert "write buffer" in reason
        finally:
            stalled.set()
            srv.close()
            await layer.close()

    run_async(loop, body)


# ============================================================================ TLS


def test_tls_round_trip_with_verified_certificate(loop: str, certs: Certs) -> None:
    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer = server.make_layer()
        c_layer = client.make_layer(config=TransportConfig(tls_ca_file=certs.ca))
        listener = await s_layer.listen(f"tls:{LOCAL}:0", certfile=certs.cert, keyfile=certs.key)
        try:
            for name in (None, "localhost"):  # the IP SAN, then the DNS SAN via server_name
                flow = await c_layer.send(
                    options_request(f"TLS {VIA_PLACEHOLDER_HOST}", call_id=f"tls-{name}"),
                    Destination(transport="TLS", host=LOCAL, port=listener.port, server_name=name),
                )
                assert flow.transport == "TLS"
                got = await server.get()
                assert got.source.transport == "TLS"
                assert got.message.top_via.transport == "TLS"
                answer = await client.get()
                assert isinstance(answer.message, Response)
                assert answer.message.status == 200
                assert answer.source.connection_id == flow.connection_id
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_tls_client_rejects_an_unverifiable_server(loop: str, certs: Certs) -> None:
    """Verification is on by default: the system CAs do not know our test CA, and a
    certificate for the wrong name fails too."""

    async def body() -> None:
        server = Inbox()
        s_layer = server.make_layer()
        listener = await s_layer.listen(f"tls:{LOCAL}:0", certfile=certs.cert, keyfile=certs.key)
        default_client = Inbox().make_layer()
        ca_client = Inbox().make_layer(config=TransportConfig(tls_ca_file=certs.ca))
        try:
            with pytest.raises(TransportError, match="TLS handshake failed"):
                await default_client.send(
                    options_request(f"TLS {LOCAL}:5061"),
                    Destination(transport="TLS", host=LOCAL, port=listener.port),
                )
            with pytest.raises(TransportError, match="TLS handshake failed"):
                await ca_client.send(
                    options_request(f"TLS {LOCAL}:5061"),
                    Destination(
                        transport="TLS", host=LOCAL, port=listener.port, server_name="evil.test"
                    ),
                )
            assert server.messages.empty()
        finally:
            await default_client.close()
            await ca_client.close()
            await s_layer.close()

    run_async(loop, body)


def test_tls_handshake_that_never_starts_times_out(loop: str, certs: Certs) -> None:
    """A TCP connection to a TLS port that never sends a ClientHello is admitted, counted
    and dropped after handshake_timeout."""

    async def body() -> None:
        server = Inbox()
        layer = server.make_layer(config=TransportConfig(handshake_timeout=0.3))
        listener = await layer.listen(f"tls:{LOCAL}:0", certfile=certs.cert, keyfile=certs.key)
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        try:
            _, reason = await server.get_closed()
            assert "TLS handshake" in reason or "handshake timed out" in reason
            assert await read_until_closed(reader) == b""
        finally:
            writer.close()
            await layer.close()

    run_async(loop, body)


# ============================================================================ IPv6


def test_ipv6_udp_and_tcp_round_trip(loop: str) -> None:
    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        s_udp, s_tcp = await s_layer.listen_udp_tcp("::1")
        c_udp = await c_layer.listen("udp:[::1]:0")
        try:
            for transport, port in (("UDP", s_udp.port), ("TCP", s_tcp.port)):
                request = options_request(f"{transport} {VIA_PLACEHOLDER_HOST};rport")
                flow = await c_layer.send(
                    request, Destination(transport=transport, host="[::1]", port=port)
                )
                assert flow.remote == ("::1", port)
                got = await server.get()
                assert got.source.remote[0] == "::1"
                via = got.message.top_via
                assert via.host == "[::1]"
                assert via.received == "::1"
                assert via.rport == flow.local[1]
                if transport == "UDP":
                    assert via.port == c_udp.port
                answer = await client.get()
                assert isinstance(answer.message, Response)
                assert answer.source.remote == ("::1", port)
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_close_is_bounded_and_final(loop: str) -> None:
    async def body() -> None:
        server = Inbox()
        layer = server.make_layer()
        listener = await layer.listen(f"tcp:{LOCAL}:0")
        await layer.listen(f"udp:{LOCAL}:0")
        reader, writer = await asyncio.open_connection(LOCAL, listener.port)
        writer.write(options(f"TCP {LOCAL}:5060"))
        await server.get()
        await layer.close()
        assert await read_until_closed(reader) == b""
        _, reason = await server.get_closed()
        assert reason == "transport layer closed"
        with pytest.raises(TransportError):
            await layer.send(
                options_request(f"UDP {LOCAL}:5060"),
                Destination(transport="UDP", host=LOCAL, port=listener.port),
            )
        writer.close()

    run_async(loop, body)


def test_send_nowait_only_sends_when_nothing_must_be_awaited(loop: str) -> None:
    """The synchronous fast path: UDP to an IP and open connections go out at once; a new
    connection, a host name or a §18.1.1 switch to TCP need ``await send()``."""

    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        s_udp, s_tcp = await s_layer.listen_udp_tcp(LOCAL)
        await c_layer.listen(f"udp:{LOCAL}:0")
        tcp = Destination(transport="TCP", host=LOCAL, port=s_tcp.port)
        udp = Destination(transport="UDP", host=LOCAL, port=s_udp.port)
        try:
            assert c_layer.send_nowait(options_request(f"TCP {LOCAL}:5060"), tcp) is None
            assert (
                c_layer.send_nowait(
                    options_request(f"UDP {LOCAL}:5060"),
                    Destination(transport="UDP", host="localhost", port=s_udp.port),
                )
                is None
            )
            big = options_request(f"UDP {LOCAL}:5060", body=b"q" * 2000)
            assert c_layer.send_nowait(big, udp) is None
            assert big.top_via.transport == "UDP"  # nothing was changed or sent
            assert server.messages.empty()

            flow = c_layer.send_nowait(options_request(f"UDP {VIA_PLACEHOLDER_HOST}"), udp)
            assert flow is not None
            assert flow.transport == "UDP"
            await server.get()
            await client.get()

            opened = await c_layer.send(options_request(f"TCP {LOCAL}:5060", call_id="t1"), tcp)
            got = await server.get()
            await client.get()
            again = c_layer.send_nowait(options_request(f"TCP {LOCAL}:5060", call_id="t2"), tcp)
            assert again is not None
            assert again.connection_id == opened.connection_id
            assert (await server.get()).message.call_id == "t2"
            assert isinstance(got.message, Request)
            answered = s_layer.send_response_nowait(make_response(got.message, 202), got.source)
            assert answered == got.source
            statuses = set()
            for _ in range(2):  # the auto-answer to t2 and our 202, in either order
                late = await client.get()
                assert isinstance(late.message, Response)
                statuses.add((late.message.call_id, late.message.status))
            assert statuses == {("t2", 200), ("t1", 202)}
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_tls_over_ipv6(loop: str, certs: Certs) -> None:
    async def body() -> None:
        server, client = Inbox(answer=True), Inbox()
        s_layer = server.make_layer()
        c_layer = client.make_layer(config=TransportConfig(tls_ca_file=certs.ca))
        listener = await s_layer.listen("tls:[::1]:0", certfile=certs.cert, keyfile=certs.key)
        try:
            flow = await c_layer.send(
                options_request(f"TLS {VIA_PLACEHOLDER_HOST}"),
                Destination(transport="TLS", host="::1", port=listener.port),
            )
            assert flow.remote == ("::1", listener.port)
            got = await server.get()
            assert got.message.top_via.host == "[::1]"
            answer = await client.get()
            assert isinstance(answer.message, Response)
            assert answer.source.connection_id == flow.connection_id
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_advertised_sent_by_and_closing_a_connection_by_id(loop: str) -> None:
    """``advertise=`` is what the Via sent-by says (a NAT's public address or an FQDN);
    ``close_connection`` ends one flow and reports it like any other close."""

    async def body() -> None:
        server, client = Inbox(), Inbox()
        s_layer, c_layer = server.make_layer(), client.make_layer()
        s_tcp = await s_layer.listen(f"tcp:{LOCAL}:0")
        await c_layer.listen(f"tcp:{LOCAL}:0", advertise="sip.example.com:5080")
        try:
            flow = await c_layer.send(
                options_request(f"TCP {VIA_PLACEHOLDER_HOST}"),
                Destination(transport="TCP", host=LOCAL, port=s_tcp.port),
            )
            got = await server.get()
            assert got.message.top_via.sent_by == "sip.example.com:5080"
            assert got.message.top_via.received == LOCAL  # a name: received is added
            assert got.source.connection_id is not None
            assert s_layer.close_connection(got.source.connection_id, "flow ended")
            assert not s_layer.close_connection(got.source.connection_id)
            source, reason = await server.get_closed()
            assert (source, reason) == (got.source, "flow ended")
            source, _ = await client.get_closed()
            assert source.connection_id == flow.connection_id
        finally:
            await c_layer.close()
            await s_layer.close()

    run_async(loop, body)


def test_garbage_never_takes_a_listener_down(loop: str, caplog: pytest.LogCaptureFixture) -> None:
    """Random datagrams and random stream bytes are reported or dropped; afterwards the
    same listeners still answer a valid request."""

    async def body() -> None:
        import random

        rng = random.Random(5060)
        server = Inbox(answer=True)
        layer = server.make_layer()
        udp, tcp = await layer.listen_udp_tcp(LOCAL)
        ws = await layer.listen(f"ws:{LOCAL}:0")
        client, client_port = await RawUdp.bind()
        template = options(f"UDP {LOCAL}:{client_port};rport")
        upgrade = (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: sip\r\n\r\n"
        )
        try:
            for _ in range(200):
                blob = bytearray(template)
                for _ in range(rng.randint(1, 8)):  # mutate a few octets
                    blob[rng.randrange(len(blob))] = rng.randrange(256)
                client.send(bytes(blob[: rng.randint(1, len(blob))]), (LOCAL, udp.port))
            for i in range(60):
                port = tcp.port if i % 2 else ws.port
                _, writer = await asyncio.open_connection(LOCAL, port)
                if port == ws.port and i % 3:
                    writer.write(upgrade)  # a valid WebSocket handshake, then junk frames
                writer.write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))))
                writer.close()
            client.send(
                options(f"UDP {LOCAL}:{client_port};rport", call_id="after"), (LOCAL, udp.port)
            )
            while True:  # answers to mutated-but-valid requests may come first
                data, _ = await client.recv()
                if b"Call-ID: after" in data:
                    break
            assert data.startswith(b"SIP/2.0 200 ")
        finally:
            client.close()
            await layer.close()

    with caplog.at_level(logging.ERROR, logger="sipwire.transport"):
        run_async(loop, body)
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # no internal errors
