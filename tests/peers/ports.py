"""Free loopback ports for real-peer tests.

Tricks and notes:

* Ports come from the kernel (bind to port 0, read the number, close). The socket is closed
  before the peer binds, so another process *could* grab the port in between; to make that
  unlikely within one test session, every port handed out is remembered (bounded, the last
  ``_MEMORY`` ports) and never handed out twice.
* baresip listens on UDP *and* TCP on its ``sip_listen`` port and TLS on port+1
  (``free_port_both(span=2)``), Kamailio's ``listen=`` without a
  proto does both too, and SIPp's TCP mode still binds UDP: use :func:`free_port_both` for them.
* TCP probes set ``SO_REUSEADDR`` like the peers do, so a port in TIME_WAIT from an earlier test
  counts as free (the peers bind it fine).
* :func:`wait_bound` tells when a peer has opened its port by trying to bind it ourselves
  (no probe packets or connections that the peer would count as traffic).
* RTP ports are not managed here: baresip picks random even ports in 10000-20000 (its
  ``rtp_ports`` default), linphone picks its own; collisions between parallel tests are
  negligible.
"""

from __future__ import annotations

import collections
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
            port = _probe(kind, host, 0)
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
            port = _probe("tcp", host, 0)
            if port is None or port + span > 65536:
                continue
            block = range(port, port + span)
            if any(p in _given for p in block):
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
