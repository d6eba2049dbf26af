"""Helpers shared by the transport tests (imported by tests/test_transport*.py), plus the
tests of the pure helpers of :mod:`sipwire.aio.transport` (event loops, addresses, Via).

Every network test runs on both event loops (asyncio's and uvloop) through
:func:`run_async`, bounded by an overall timeout; waits are on queues/events with bounded
timeouts, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import pathlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sipwire.aio.transport import (
    Destination,
    Source,
    TransportConfig,
    TransportLayer,
    install_event_loop_policy,
    new_event_loop,
    run,
    uvloop_available,
)
from sipwire.aio.transport import apply_received as _apply_received
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.message import Request, Response, make_response, parse_message

T = TypeVar("T")

LOOPS = ["asyncio", "uvloop"]
#: Upper bound for one whole test body.
TEST_TIMEOUT = 30.0
#: Upper bound for one wait inside a test.
WAIT = 5.0


def run_async(loop: str, body: Callable[[], Awaitable[T]], timeout: float = TEST_TIMEOUT) -> T:
    """Run ``body()`` on a fresh event loop of kind ``loop`` ("asyncio" or "uvloop")."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await body()

    return run(main(), use_uvloop=(loop == "uvloop"))


def options(
    via: str,
    *,
    branch: str = "z9hG4bK-1",
    body: bytes = b"",
    call_id: str = "call-1@test",
    uri: str = "sip:bob@127.0.0.1",
) -> bytes:
    """An OPTIONS request whose top Via is ``SIP/2.0/<via>`` plus ``;branch=...``."""
    head = (
        f"OPTIONS {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{via};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@test.invalid>;tag=a1\r\n"
        "To: <sip:bob@test.invalid>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def options_request(via: str, **kw: Any) -> Request:
    msg = parse_message(options(via, **kw))
    assert isinstance(msg, Request)
    return msg


@dataclass
class Received:
    message: Request | Response
    source: Source


class Inbox:
    """Collects what a TransportLayer delivers; optionally answers requests with 200."""

    def __init__(self, *, answer: bool = False) -> None:
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self.malformed: asyncio.Queue[tuple[bytes, Source, RemoteProtocolError]] = asyncio.Queue()
        self.closed: asyncio.Queue[tuple[Source, str]] = asyncio.Queue()
        self.answer = answer
        self.layer: TransportLayer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def make_layer(self, **kw: Any) -> TransportLayer:
        self.layer = TransportLayer(
            on_message=self.on_message,
            on_malformed=self.on_malformed,
            on_closed=self.on_closed,
            **kw,
        )
        return self.layer

    def on_message(self, message: Request | Response, source: Source) -> None:
        self.messages.put_nowait(Received(message, source))
        if self.answer and isinstance(message, Request) and self.layer is not None:
            task = asyncio.get_running_loop().create_task(
                self.layer.send_response(make_response(message, 200), source)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def on_malformed(self, data: bytes, source: Source, error: RemoteProtocolError) -> None:
        self.malformed.put_nowait((data, source, error))

    def on_closed(self, source: Source, reason: str) -> None:
        self.closed.put_nowait((source, reason))

    async def get(self) -> Received:
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def get_malformed(self) -> tuple[bytes, Source, RemoteProtocolError]:
        return await asyncio.wait_for(self.malformed.get(), WAIT)

    async def get_closed(self) -> tuple[Source, str]:
        return await asyncio.wait_for(self.closed.get(), WAIT)


class RawUdp(asyncio.DatagramProtocol):
    """A bare UDP socket for playing a peer by hand."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    @classmethod
    async def bind(cls, host: str = "127.0.0.1") -> tuple[RawUdp, int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return proto, int(transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded by WAIT)."""
    chunks: list[bytes] = []
    async with asyncio.timeout(WAIT):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def read_message(reader: asyncio.StreamReader) -> Request | Response:
    """One Content-Length framed SIP message from a raw stream."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value)
        body = await reader.readexactly(length)
    return parse_message(head + body, validate=False)


# ---------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certs:
    ca: str
    cert: str
    key: str


def make_certs(directory: pathlib.Path) -> Certs:
    """A throw-away CA and a server certificate for localhost, 127.0.0.1 and ::1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sipwire test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certs(
        ca=str(directory / "ca.pem"),
        cert=str(directory / "cert.pem"),
        key=str(directory / "key.pem"),
    )
    pathlib.Path(paths.ca).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pathlib.Path(paths.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pathlib.Path(paths.key).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# ---------------------------------------------------------------------------- tests of helpers


@pytest.mark.parametrize("loop", LOOPS)
def test_new_event_loop_kind(loop: str) -> None:
    import uvloop

    ev = new_event_loop(use_uvloop=(loop == "uvloop"))
    try:
        assert isinstance(ev, uvloop.Loop) == (loop == "uvloop")
    finally:
        ev.close()


def test_uvloop_is_the_default_when_installed() -> None:
    import uvloop

    assert uvloop_available()
    ev = new_event_loop()
    try:
        assert isinstance(ev, uvloop.Loop)
    finally:
        ev.close()


def test_install_event_loop_policy_round_trip() -> None:
    import uvloop

    try:
        assert install_event_loop_policy(use_uvloop=True) is True
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        assert install_event_loop_policy(use_uvloop=False) is False
        assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    finally:
        asyncio.set_event_loop_policy(None)


@pytest.mark.parametrize("loop", LOOPS)
def test_run_uses_the_requested_loop(loop: str) -> None:
    import uvloop

    async def kind() -> bool:
        return isinstance(asyncio.get_running_loop(), uvloop.Loop)

    assert run(kind(), use_uvloop=(loop == "uvloop")) == (loop == "uvloop")


def test_destination_parse() -> None:
    assert Destination.parse("udp:192.0.2.1:5070") == Destination(
        transport="UDP", host="192.0.2.1", port=5070
    )
    d = Destination.parse("tls:[2001:db8::1]")
    assert (d.transport, d.host, d.port) == ("TLS", "2001:db8::1", 5061)
    assert Destination.parse("wss:example.com").port == 443
    with pytest.raises(LocalProtocolError):
        Destination.parse("sctp:192.0.2.1:5060")
    with pytest.raises(LocalProtocolError):
        Destination(transport="UDP", host="192.0.2.1", port=0)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(LocalProtocolError):
        TransportConfig(idle_timeout=0)
    with pytest.raises(LocalProtocolError):
        TransportConfig(max_connections_per_ip=0)


@pytest.mark.parametrize(
    ("via", "remote", "received", "rport"),
    [
        # §18.2.1: same IP, no rport -> untouched
        ("UDP 192.0.2.1:5060", ("192.0.2.1", 5060), None, None),
        # a different IP -> received
        ("UDP 192.0.2.1:5060", ("198.51.100.7", 5060), "198.51.100.7", None),
        # a domain name -> received, whatever it resolves to
        ("TCP client.example.com", ("192.0.2.1", 40000), "192.0.2.1", None),
        # RFC 3581 §4: a bare rport is filled, and received added even if the IP matches
        ("UDP 192.0.2.1:5060;rport", ("192.0.2.1", 61000), "192.0.2.1", 61000),
        # an rport with a value is left alone
        ("UDP 192.0.2.1:5060;rport=7", ("192.0.2.1", 61000), None, 7),
        # IPv6 is compared canonically; received carries no brackets (RFC 5118 §4.5)
        ("UDP [2001:db8:0::1]:5060", ("2001:db8::1", 5060), None, None),
        ("UDP [2001:db8::1]:5060;rport", ("2001:db8::2", 5062), "2001:db8::2", 5062),
    ],
)
def test_apply_received(
    via: str, remote: tuple[str, int], received: str | None, rport: int | None
) -> None:
    request = options_request(via)
    before = request.headers.get("Via")
    changed = _apply_received(request, remote)
    top = request.top_via
    assert top.received == received
    assert top.rport == rport
    assert top.branch == "z9hG4bK-1"
    assert changed == (received is not None)
    if not changed:
        assert request.headers.get("Via") == before
    else:
        assert f"received={received}" in (request.headers.get("Via") or "")
