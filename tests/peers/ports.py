"""Free loopback ports for real-peer tests.

Tricks and notes:

* Ports are handed out *outside the kernel's ephemeral range* (read from
  ``/proc/sys/net/ipv4/ip_local_port_range``; 32768-60999 by default): above it and in
  1024-4999, below the ports peers take on their own (SIP 5060, SIPp media 6000+ and
  control 8888+, RTP 10000-32767 for baresip, linphone and sipwire). A port is probed free,
  then the peer binds it a little later; in that window any ``bind(port 0)`` or
  ``connect()`` on the machine (this test's own endpoints, a peer's outgoing TCP) gets an
  ephemeral port and, inside that range, could land on the very port just handed out.
  Outside it, only a program that binds that exact port can take it. If the ephemeral range
  leaves too little room, ports come from the kernel (bind to port 0) as a fallback.
* The pool is walked in a random order (per process, so concurrent test runs spread out)
  and every port handed out is remembered (bounded, the last ``_MEMORY`` ports), so one
  session never hands out a port twice while the pool lasts.
* baresip listens on UDP *and* TCP on its ``sip_listen`` port and TLS on port+1
  (``free_port_both(span=2)``), Kamailio's ``listen=`` without a
  proto does both too, and SIPp's TCP mode still binds UDP: use :func:`free_port_both` for them.
* TCP probes set ``SO_REUSEADDR`` like the peers do, so a port in TIME_WAIT from an earlier test
  counts as free (the peers bind it fine).
* :func:`wait_bound` tells when a peer has opened its port by trying to bind it ourselves
  (no probe packets or connections that the peer would count as traffic).
* RTP ports are not managed here: baresip picks random even ports in 10000-20000 (its
  ``rtp_ports`` setting), linphone in 20000-29999, sipwire in 16384-32767; collisions
  between parallel tests are negligible.
"""

from __future__ import annotations

import collections
import pathlib
import random
import socket
import threading
import time
from typing import Literal

from .procs import PeerTimeoutError

__all__ = ["free_port", "free_port_both", "free_ports", "is_bound", "wait_bound"]

PortKind = Literal["udp", "tcp", "both"]

_MEMORY = 4096
_given: collections.deque[int] = collections.deque(maxlen=_MEMORY)
_lock = threading.Lock()
_MAX_TRIES = 200
_LOW_POOL = (1024, 4999)  # below every port a peer picks by itself
_MIN_POOL = 2000  # smaller pools (odd ephemeral ranges): use the kernel's choice instead


def _ephemeral_range() -> tuple[int, int]:
    try:
        text = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(v) for v in text.split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _make_pool() -> list[int]:
    low, high = _ephemeral_range()
    ports = [
        p
        for first, last in (_LOW_POOL, (high + 1, 65535))
        for p in range(first, last + 1)
        if not low <= p <= high
    ]
    if len(ports) < _MIN_POOL:
        return []
    random.SystemRandom().shuffle(ports)
    return ports


class _Pool:
    """The non-ephemeral ports in a random order, walked round and round."""

    def __init__(self) -> None:
        self.ports = _make_pool()
        self.members = frozenset(self.ports)
        self.index = 0

    def next(self) -> int | None:
        """The next candidate (None: no pool, use port 0)."""
        if not self.ports:
            return None
        port = self.ports[self.index]
        self.index = (self.index + 1) % len(self.ports)
        return port


_pool: _Pool | None = None


def _candidate() -> int:
    """A port to probe: from the pool, else 0 (the kernel's choice). Call under _lock."""
    global _pool
    if _pool is None:
        _pool = _Pool()
    port = _pool.next()
    return 0 if port is None else port


def _in_pool(port: int) -> bool:
    return _pool is None or not _pool.ports or port in _pool.members


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _probe(kind: Literal["udp", "tcp"], host: str, port: int) -> int | None:
    """Bind ``host:port`` (0 = any) with the given kind; return the bound port or None."""
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(_family(host), stype) as sock:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def free_port(kind: PortKind = "udp", host: str = "127.0.0.1") -> int:
    """A port on ``host`` that is currently free for ``kind`` ("udp", "tcp" or "both").

    Never returns the same port twice in one session (see module notes).
    """
    if kind == "both":
        return free_port_both(host)
    with _lock:
        for _ in range(_MAX_TRIES):
            port = _probe(kind, host, _candidate())
            if port is not None and port not in _given:
                _given.append(port)
                return port
    raise RuntimeError(f"no free {kind} port on {host} after {_MAX_TRIES} tries")


def free_port_both(host: str = "127.0.0.1", span: int = 1) -> int:
    """A port free for both UDP and TCP on ``host`` (for peers that listen on both).

    ``span=2`` also guarantees ``port+1`` (UDP and TCP), for baresip's TLS listener.
    """
    with _lock:
        for _ in range(_MAX_TRIES):
            port = _probe("tcp", host, _candidate())
            if port is None or port + span > 65536:
                continue
            block = range(port, port + span)
            if any(p in _given or not _in_pool(p) for p in block):
                continue
            if _probe("udp", host, port) is None:
                continue
            if all(
                _probe("tcp", host, p) is not None and _probe("udp", host, p) is not None
                for p in block[1:]
            ):
                _given.extend(block)
                return port
    raise RuntimeError(f"no port free for UDP and TCP on {host} after {_MAX_TRIES} tries")


def free_ports(count: int, kind: PortKind = "udp", host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports (see :func:`free_port`)."""
    return [free_port(kind, host) for _ in range(count)]


def is_bound(port: int, kind: Literal["udp", "tcp"] = "udp", host: str = "127.0.0.1") -> bool:
    """True when something is bound to ``host:port`` (our own bind attempt fails).

    A TCP listener blocks a bind even with SO_REUSEADDR, so this detects a listening peer
    without connecting to it (a probe connection would confuse SIPp or Kamailio).
    """
    return _probe(kind, host, port) is None


def wait_bound(
    port: int,
    kinds: tuple[Literal["udp", "tcp"], ...] = ("udp",),
    host: str = "127.0.0.1",
    timeout: float = 10.0,
) -> None:
    """Wait (bounded, polling every 20 ms) until ``port`` is bound for every kind in ``kinds``."""
    deadline = time.monotonic() + timeout
    while not all(is_bound(port, kind, host) for kind in kinds):
        if time.monotonic() >= deadline:
            raise PeerTimeoutError(
                f"nothing bound to {host}:{port} ({'/'.join(kinds)}) after {timeout:.1f}s"
            )
        time.sleep(0.02)
