"""Shared value types of the SIP transport layer (RFC 3261 §18).

Everything here is plain data: the flow a message arrived on (:class:`Source`), where to
send one (:class:`Destination`), the tunables with their documented defaults
(:class:`TransportConfig`), the per-transport counters (:class:`TransportStats`) and a
few address helpers.  The sockets live in ``_udp.py``, ``_stream.py`` and ``_ws.py``;
:mod:`sipwire.aio.transport` ties them together.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Final

from sipwire.core._errors import LocalProtocolError

__all__ = [
    "DEFAULT_PORTS",
    "RELIABLE_TRANSPORTS",
    "SECURE_TRANSPORTS",
    "TRANSPORTS",
    "Destination",
    "Listener",
    "Source",
    "TransportConfig",
    "TransportError",
    "TransportStats",
    "format_host",
    "is_ip",
    "normalize_ip",
    "parse_hostport",
    "parse_transport",
]

#: Transport names as they appear in a Via header (RFC 3261 §18, RFC 7118 §5.1).
TRANSPORTS: Final = ("UDP", "TCP", "TLS", "WS", "WSS")
RELIABLE_TRANSPORTS: Final = frozenset({"TCP", "TLS", "WS", "WSS"})
SECURE_TRANSPORTS: Final = frozenset({"TLS", "WSS"})
#: Default ports: RFC 3261 §18.1.1 (5060 UDP/TCP, 5061 TLS) and RFC 7118 §5.5 (80/443).
DEFAULT_PORTS: Final[dict[str, int]] = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


class TransportError(ConnectionError):
    """Sending failed: no route, connection refused or timed out, flow closed (§18.4).

    RFC 3261 §18.4 asks the transport layer to *inform the transport user* of a failure
    in sending; a transaction turns this into a 503 / transport error (§8.1.3.1).
    """


def parse_transport(name: str) -> str:
    """Return the canonical upper-case transport name, or raise LocalProtocolError."""
    upper = name.upper()
    if upper not in TRANSPORTS:
        raise LocalProtocolError(f"unknown SIP transport {name!r}")
    return upper


#: Host texts whose answers :func:`is_ip` and :func:`normalize_ip` remember (they run for
#: every datagram and every response sent); each cache is emptied when it is full.
IP_CACHE_SIZE: Final = 4096
_is_ip_cache: dict[str, bool] = {}
_normalized_cache: dict[str, str] = {}


def is_ip(host: str) -> bool:
    """True if ``host`` is an IPv4 or IPv6 literal (brackets allowed)."""
    answer = _is_ip_cache.get(host)
    if answer is None:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            answer = False
        else:
            answer = True
        if len(_is_ip_cache) >= IP_CACHE_SIZE:
            _is_ip_cache.clear()
        _is_ip_cache[host] = answer
    return answer


def normalize_ip(host: str) -> str:
    """Canonical text of an IP literal: no brackets, compressed IPv6, IPv4-mapped unwrapped.

    Non-IP text (a domain name) is returned lower-cased.
    """
    answer = _normalized_cache.get(host)
    if answer is None:
        answer = _normalize_ip(host)
        if len(_normalized_cache) >= IP_CACHE_SIZE:
            _normalized_cache.clear()
        _normalized_cache[host] = answer
    return answer


def _normalize_ip(host: str) -> str:
    bare = host.strip("[]")
    try:
        addr = ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return bare.lower()
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def format_host(host: str) -> str:
    """``host`` as it is written in a URI or Via sent-by: IPv6 literals get brackets."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``"host"``, ``"host:port"``, ``"[v6]"`` or ``"[v6]:port"``."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise LocalProtocolError(f"unbalanced '[' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise LocalProtocolError(f"junk after IPv6 reference in {text!r}")
        port_text = rest[1:]
    else:
        if text.count(":") > 1:  # a bare IPv6 address without a port
            return text, None
        host, sep, port_text = text.partition(":")
        if not sep:
            return host, None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise LocalProtocolError(f"bad port in {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """The flow a message arrived on (or was sent over).

    * ``transport``: ``"UDP"``, ``"TCP"``, ``"TLS"``, ``"WS"`` or ``"WSS"``.
    * ``remote``: the peer's ``(ip, port)`` as seen on the socket (IPv6 without brackets).
    * ``local``: our ``(ip, port)``; for a UDP listener bound to a wildcard address this
      is the wildcard, since the datagram's destination address is not recorded.
    * ``connection_id``: the connection for reliable transports, ``None`` for UDP.
    * ``reliable``: True for TCP, TLS, WS and WSS (RFC 3261 §17 timer rules).
    """

    transport: str
    remote: tuple[str, int]
    local: tuple[str, int]
    connection_id: int | None = None
    reliable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """Where to send a message: transport, host (an IP literal, or a name resolved with
    the system resolver -- RFC 3263 NAPTR/SRV selection is the caller's job) and port.

    ``server_name`` is the name a TLS/WSS certificate is checked against (and sent as SNI);
    it defaults to ``host``.  For ``sips:`` targets resolved by RFC 3263, pass the domain
    of the URI here and the resolved address as ``host``.
    """

    transport: str
    host: str
    port: int
    server_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", parse_transport(self.transport))
        object.__setattr__(self, "host", self.host.strip("[]"))
        if not 0 < self.port <= 65535:
            raise LocalProtocolError(f"bad destination port {self.port}")

    @classmethod
    def parse(cls, spec: str) -> Destination:
        """``"udp:192.0.2.1:5060"``, ``"tls:[2001:db8::1]"`` (default port) etc."""
        transport, sep, rest = spec.partition(":")
        if not sep:
            raise LocalProtocolError(f"destination {spec!r} is not transport:host[:port]")
        name = parse_transport(transport)
        host, port = parse_hostport(rest)
        return cls(transport=name, host=host, port=port or DEFAULT_PORTS[name])


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A bound listening socket: ``host``/``port`` as bound (port 0 resolved to the real
    port), and the ``sent_by`` host/port written into Via headers for it."""

    transport: str
    host: str
    port: int
    advertised_host: str
    advertised_port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{format_host(self.host)}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Tunables of :class:`~sipwire.aio.transport.TransportLayer`, with documented defaults.

    Timeouts are in seconds.
    """

    #: Outbound connect, including the TLS and WebSocket handshakes (§18.4 failure).
    connect_timeout: float = 10.0
    #: Inbound TLS / WebSocket opening handshake must finish within this.
    handshake_timeout: float = 10.0
    #: A connection with no traffic in either direction for this long is closed.
    idle_timeout: float = 300.0
    #: A message whose first byte arrived must be complete within this (slowloris guard).
    message_timeout: float = 30.0
    #: Client side: send a CRLF "ping" (WS: a Ping frame) this often on connections we
    #: opened (RFC 5626 §3.5.1 / §4.4.1, which suggests 95-120 s); ``None`` disables.
    keepalive_interval: float | None = None
    #: A "pong" must arrive within this after a ping, else the flow failed (RFC 5626 §4.4.1).
    keepalive_timeout: float = 10.0
    #: Connections in total (inbound + outbound); more are refused.
    max_connections: int = 4096
    #: Connections per remote IP address; more are refused.
    max_connections_per_ip: int = 64
    #: Unsent bytes queued on one connection before we give up on a peer that does not read.
    max_write_buffer: int = 1 << 20
    #: A UDP request larger than this goes over TCP (RFC 3261 §18.1.1: 1300 when the path
    #: MTU is unknown, else MTU - 200).
    udp_max_request_size: int = 1300
    #: Retry over UDP when that TCP connect is refused (RFC 3261 §18.1.1 SHOULD).
    udp_fallback_on_refused: bool = True
    #: Verify server certificates on TLS/WSS connections we open (RFC 5630; only an
    #: explicit ``False`` turns it off).
    tls_verify: bool = True
    #: Extra CA bundle for verifying servers; ``None`` uses the system store.
    tls_ca_file: str | None = None
    #: Run the core's message validation (Via, From, To, Call-ID, CSeq, ... present and
    #: well-formed) on every inbound message; ``False`` only frames and checks the start
    #: line and the top Via (a stateless proxy's hot path).
    validate: bool = True
    #: Resource path requested by the WebSocket client (RFC 7118 §4.1).
    ws_path: str = "/"
    #: Allowed WebSocket ``Origin`` values for the server (``None``: any origin).
    ws_origins: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "handshake_timeout", "idle_timeout", "message_timeout"):
            if getattr(self, name) <= 0:
                raise LocalProtocolError(f"{name} must be positive")
        if self.keepalive_interval is not None and self.keepalive_interval <= 0:
            raise LocalProtocolError("keepalive_interval must be positive or None")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise LocalProtocolError("connection limits must be at least 1")

    def replace(self, **changes: object) -> TransportConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport (``layer.stats["UDP"]`` etc.)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed: int = 0
    keepalives_in: int = 0
    keepalives_out: int = 0
    send_errors: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    connections_refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
