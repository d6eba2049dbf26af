"""TLS contexts for the TLS and WSS transports (RFC 3261 §26.3.1, RFC 5630, RFC 7118 §9.1).

Servers present a certificate chain loaded from PEM files.  Clients verify the server's
certificate and host name by default (``ssl.create_default_context()``); a private CA can
be added with ``cafile``; verification is off only when asked for explicitly.
"""

from __future__ import annotations

import contextlib
import ssl

__all__ = ["TlsSession", "client_ssl_context", "server_ssl_context"]


def server_ssl_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    password: str | None = None,
    client_cafile: str | None = None,
    require_client_certificate: bool = False,
) -> ssl.SSLContext:
    """A server-side context presenting ``certfile`` (PEM chain) with ``keyfile``.

    ``client_cafile`` + ``require_client_certificate`` enable mutual TLS (RFC 5922 §7.3 uses
    it between proxies).  TLS 1.2 is the minimum version.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile, password)
    if client_cafile is not None:
        context.load_verify_locations(cafile=client_cafile)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_NONE
    return context


def client_ssl_context(
    *,
    cafile: str | None = None,
    verify: bool = True,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> ssl.SSLContext:
    """A client-side context that verifies the server (system CAs plus ``cafile``).

    ``verify=False`` disables certificate and host-name checks; use it only for testing.
    ``certfile``/``keyfile`` present a client certificate (mutual TLS).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


class TlsSession:
    """TLS over memory BIOs: bytes from the socket in, plaintext out, and vice versa.

    The connection protocol drives it itself instead of ``loop.start_tls()``: that keeps
    one code path on asyncio's loop and uvloop (whose ``start_tls`` can lose the first
    flight when the peer speaks before the upgrade is in place), lets the connection be
    admitted and counted before any TLS work, and puts the handshake under the
    connection's own handshake deadline.

    :meth:`receive` raises ``ssl.SSLError`` (including certificate verification errors)
    for a failed handshake or a corrupt record; the caller drops the connection.
    """

    __slots__ = ("_incoming", "_obj", "_outgoing", "closed", "established")

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self.established = False
        #: The peer sent close_notify.
        self.closed = False

    def start(self) -> None:
        """Begin the handshake (a client's ClientHello goes to :meth:`data_to_send`)."""
        self._handshake()

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.established = True

    def receive(self, data: bytes) -> bytes:
        """Feed ciphertext; return the plaintext now available (may be empty)."""
        self._incoming.write(data)
        if not self.established:
            self._handshake()
            if not self.established:
                return b""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, data: bytes) -> None:
        """Encrypt application data (the records go to :meth:`data_to_send`)."""
        self._obj.write(data)

    def close(self) -> None:
        """Queue a close_notify alert."""
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: the peer's reply
            self._obj.unwrap()

    def data_to_send(self) -> bytes:
        return self._outgoing.read()
