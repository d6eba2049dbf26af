"""The UDP transport: one datagram is one SIP message (RFC 3261 §18.3, DESIGN rule 4).

A :class:`UdpEndpoint` is an ``asyncio.DatagramProtocol`` bound to one local address.  It
hands every datagram to its owner (the transport layer) together with the peer address;
the owner parses, applies §18.2.1 and delivers.  Sending uses the same socket, so a
response leaves from the address and port its request arrived on (RFC 3581 §4).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from sipwire.aio._transport_common import Source, TransportError, normalize_ip

__all__ = ["SOURCE_CACHE_SIZE", "DatagramOwner", "UdpEndpoint"]

#: Source objects one socket keeps for the peers it talks to (a frozen Source per peer
#: instead of one per datagram); the cache is emptied when it is full.
SOURCE_CACHE_SIZE = 4096

_log = logging.getLogger("sipwire.transport")


class DatagramOwner(Protocol):
    def datagram_received(
        self, endpoint: UdpEndpoint, data: bytes, remote: tuple[str, int]
    ) -> None:
        """One datagram from ``remote`` arrived on ``endpoint``."""


class UdpEndpoint(asyncio.DatagramProtocol):
    """A bound UDP socket of the transport layer."""

    def __init__(self, owner: DatagramOwner) -> None:
        self._owner = owner
        self._transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.closed = asyncio.get_running_loop().create_future()
        self._sources: dict[tuple[str, int], Source] = {}

    # asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's ABCs: no isinstance check.
        self._transport = cast("asyncio.DatagramTransport", transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (normalize_ip(sockname[0]), int(sockname[1]))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host, port = addr[0], addr[1]
        remote = (
            normalize_ip(host if type(host) is str else str(host)),
            port if type(port) is int else int(str(port)),
        )
        self._owner.datagram_received(self, data, remote)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors reported by the kernel (§18.4).  An unconnected socket rarely sees
        # them; the next send to a dead peer simply vanishes.
        _log.debug("UDP %s: %s", self.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    # API ----------------------------------------------------------------------------------

    def source_for(self, remote: tuple[str, int]) -> Source:
        """The flow to or from ``remote`` on this socket (one shared object per peer)."""
        source = self._sources.get(remote)
        if source is None or source.local != self.local:
            if len(self._sources) >= SOURCE_CACHE_SIZE:
                self._sources.clear()
            source = self._sources[remote] = Source(
                transport="UDP", remote=remote, local=self.local
            )
        return source

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def sendto(self, data: bytes, remote: tuple[str, int]) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError(f"UDP socket {self.local} is closed")
        try:
            self._transport.sendto(data, remote)
        except OSError as exc:  # e.g. EMSGSIZE, ENETUNREACH on some loops
            raise TransportError(f"UDP send to {remote} failed: {exc}") from exc

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
