"""The transport layer against a real SIP peer: sipsak's OPTIONS ping over UDP, TCP and TLS.

A tiny responder built on :class:`~sipwire.aio.transport.TransportLayer` answers every
request with ``make_response(request, 200)`` through ``send_response`` (§18.2.2 routing);
sipsak exits 0 only when it gets the 200.  The responder runs its event loop (asyncio's or
uvloop) in a thread, because the peer harness waits for sipsak synchronously.

sipsak sends from one port and names another in its Via (see tests/peers/sipsak.py), so
the UDP case proves the rport/received handling against a real client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from peers import sipsak
from peers.procs import Procs
from sipwire.aio.transport import (
    Listener,
    Source,
    TransportLayer,
    new_event_loop,
    server_ssl_context,
)
from sipwire.core.message import Request, Response, make_response
from test_transport_support import LOOPS, Certs, make_certs

pytestmark = [pytest.mark.peer, pytest.mark.parametrize("loop", LOOPS)]


class Responder:
    """A TransportLayer on its own event loop thread answering 200 to every request."""

    def __init__(self, use_uvloop: bool, certs: Certs) -> None:
        self._use_uvloop = use_uvloop
        self._certs = certs
        self.seen: list[tuple[str, Source, str]] = []  # (method, source, top Via after fix-up)
        self.listeners: dict[str, Listener] = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="responder", daemon=True)

    def _run(self) -> None:
        loop = new_event_loop(use_uvloop=self._use_uvloop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by __enter__/__exit__
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[Source]] = set()

        def on_message(message: Request | Response, source: Source) -> None:
            if not isinstance(message, Request):
                return
            self.seen.append((message.method, source, str(message.top_via)))
            task = asyncio.get_running_loop().create_task(
                layer.send_response(make_response(message, 200), source)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        layer = TransportLayer(on_message=on_message)
        udp, tcp = await layer.listen_udp_tcp("127.0.0.1")
        # sipsak 0.9.8.1 treats a TLS 1.3 NewSessionTicket as a read error ("nothing
        # received, select returned error"; a stock asyncio TLS server fails the same
        # way), so this server context sends no session tickets.
        context = server_ssl_context(self._certs.cert, self._certs.key)
        context.num_tickets = 0
        tls = await layer.listen("tls:127.0.0.1:0", ssl_context=context)
        self.listeners = {"UDP": udp, "TCP": tcp, "TLS": tls}
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await layer.close()

    def __enter__(self) -> Responder:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("responder did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "responder thread did not stop"
        if self._error is not None:
            raise self._error


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def responder(loop: str, certs: Certs) -> Iterator[Responder]:
    with Responder(loop == "uvloop", certs) as r:
        yield r


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
def test_sipsak_options_gets_200(
    responder: Responder, procs: Procs, certs: Certs, transport: str
) -> None:
    port = responder.listeners[transport].port
    extra = [f"--tls-ca-cert={certs.ca}"] if transport == "TLS" else []
    result = sipsak.options(
        procs,
        f"sip:127.0.0.1:{port}",
        transport=transport.lower(),
        extra=extra,
        timeout=30,
    )
    assert result.ok, result.output
    assert result.status == 200
    assert len(responder.seen) == 1
    method, source, via = responder.seen[0]
    assert method == "OPTIONS"
    assert source.transport == transport
    assert source.local == ("127.0.0.1", port)
    # sipsak asks for rport: it is filled with the port the request really came from
    assert f"rport={source.remote[1]}" in via
    assert "received=127.0.0.1" in via
