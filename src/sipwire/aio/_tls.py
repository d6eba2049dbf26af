"""TLS contexts for the TLS and WSS transports (RFC 3261 §26.3.1, RFC 5630, RFC 7118 §9.1).

Servers present a certificate chain loaded from PEM files.  Clients verify the server's
certificate and host name by default (``ssl.create_default_context()``); a private CA can
be added with ``cafile``; verification is off only when asked for explicitly.
"""

from __future__ import annotations

import ssl

__all__ = ["client_ssl_context", "server_ssl_context"]


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
