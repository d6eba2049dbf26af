"""Locating SIP servers (RFC 3263 §4) -- the pure selection logic, sans-IO.

Given a SIP or SIPS URI, work out the ordered list of ``(transport, address, port)``
targets a client tries, one after the other, until one answers (RFC 3263 §4.3: a
transport error, a timeout without any response, or a 503 moves on to the next).

Nothing here talks to the network. The lookup is a *plan*: a generator that yields
batches of DNS :class:`Query` objects, is sent back one :class:`Answer` per query,
and yields each :class:`Target` as soon as it is known. The asyncio shell
(:mod:`sipwire.aio.dns`) drives it with dnspython; tests drive it with a dict
(:func:`run_plan`). Randomness (RFC 2782 weighted selection) is injected as
``rand_below(n) -> int in [0, n)``, default :func:`secrets.randbelow`.

API
---
* :class:`Target` ``(transport, host, address, port)`` (frozen): ``transport`` is one
  of ``"UDP" "TCP" "TLS" "WS" "WSS"``; ``host`` is the name to present in TLS SNI and
  check the certificate against -- the *SIP domain* (the URI's maddr or host, RFC 5922
  §4), never an SRV target learnt from unsecured DNS; ``address`` is the IP address
  (IPv6 without brackets); ``port``.
* :func:`plan_location` ``(uri, *, outbound_proxy=None, supported_transports=("UDP",
  "TCP", "TLS"), ip_versions=(4, 6), rand_below=secrets.randbelow, max_targets=32)``
  returns a :data:`Plan`; :func:`run_plan` drives one with a synchronous lookup.
* :func:`select_naptr` (RFC 3263 §4.1 / RFC 3403 filtering and ordering) and
  :func:`order_srv` (RFC 2782 priority + weighted random order) are usable alone.
* :class:`Failover`: a bounded table of targets that recently failed; ``failed(target,
  now)`` puts one aside for ``hold_time`` seconds, ``order(targets, now)`` moves
  held targets to the back (or drops them).
* :class:`LocationError`: no target could be found (with the reasons).

The rules (RFC 3263 §4.1, §4.2; RFC 3261 §19.1.2 default ports; RFC 7118 §5 for WS)
-----------------------------------------------------------------------------------
* TARGET is the ``maddr`` parameter if present, otherwise the host.
* The ``transport`` parameter wins when present (``udp tcp tls ws wss``; in a SIPS URI
  ``tcp`` means TLS and ``ws`` means WSS; ``sips:...;transport=udp`` is an error).
* Numeric TARGET (IPv4 or ``[IPv6]``): no DNS; port from the URI or the default
  (5060 UDP/TCP, 5061 TLS, 80 WS, 443 WSS); transport from the parameter, else UDP
  (TCP if the client has no UDP) for ``sip:``, TLS for ``sips:``.
* Explicit port, name TARGET: A/AAAA only (no SRV, even for 5060).
* Transport parameter, no port: SRV for that transport (``_sip._udp``, ``_sip._tcp``,
  ``_sips._tcp``, ``_sip._ws``, ``_sips._ws``), then A/AAAA at the default port.
* Neither: NAPTR. Records with flag ``s`` (SRV follows) or ``a`` (A/AAAA follows), an
  empty regexp and a service of ``SIP+D2U SIP+D2T SIPS+D2T SIP+D2W SIPS+D2W`` are kept
  when the client supports the transport; a SIPS URI keeps only ``SIPS+``. They are
  ordered by (order, preference) and *all* of them are kept so the caller can fail
  over to the next transport. Without usable NAPTR records: SRV for ``_sips._tcp``,
  ``_sip._tcp``, ``_sip._udp`` (what the client supports; only ``_sips`` for SIPS).
  Without any SRV: A/AAAA at the default port of the default transport.
* An SRV RRset whose only target is ``"."`` means "decidedly not available" (RFC 2782):
  that transport is skipped and the A/AAAA fallback is not used for it.
* Every SRV target is resolved to both A and AAAA (``ip_versions`` gives the order of
  preference; ``(6, 4)`` prefers IPv6, ``(4,)`` is IPv4 only).

Choices worth knowing
---------------------
* RFC 2782 weighted selection is done exactly in proportion to the weights: a random
  integer in ``[0, total)`` picks the first record whose running sum exceeds it, so
  weight-0 records come after the weighted ones of their priority (the RFC's "very
  small chance"), in uniform random order among themselves. The records are sorted
  first (priority, target, port) so a stateless proxy (RFC 3263 §4.4) gets a
  deterministic order with ``rand_below=lambda n: 0``.
* NAPTR ties on (order, preference) are broken by service and replacement, so the order
  never depends on the order of the DNS answer (§4.4).
* Non-terminal NAPTR records (empty flags), records with a regexp and NAPTR ``"."``
  replacements are discarded; chains of NAPTR rewrites are not followed.
* A DNS timeout is treated like "no answer" for that query and remembered: the plan
  carries on with the next lookup (some middleboxes drop NAPTR queries but answer A),
  and the :class:`LocationError` says it timed out. The shell bounds the total time.
* Duplicate targets (same transport, address and port) are yielded once.

Bounds (documented defaults): at most :data:`MAX_RECORDS_PER_ANSWER` (64) records of
one answer are looked at, at most ``max_targets`` (32) targets are produced, the
:class:`Failover` table holds at most 1024 entries.
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sipwire.core._errors import LocalProtocolError

__all__ = [
    "DEFAULT_PORTS",
    "MAX_RECORDS_PER_ANSWER",
    "SRV_SERVICES",
    "TRANSPORTS",
    "Answer",
    "DnsStatus",
    "Failover",
    "LocatableURI",
    "LocationError",
    "NaptrChoice",
    "NaptrRecord",
    "Plan",
    "Query",
    "RRType",
    "Sent",
    "SrvRecord",
    "Step",
    "Target",
    "numeric_host",
    "order_srv",
    "plan_location",
    "run_plan",
    "select_naptr",
]

#: The transports a :class:`Target` can carry.
TRANSPORTS: tuple[str, ...] = ("UDP", "TCP", "TLS", "WS", "WSS")

#: Default port per transport: RFC 3261 §19.1.2 (5060/5061), RFC 7118 §5 (80/443).
DEFAULT_PORTS: dict[str, int] = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}

#: SRV owner-name prefix per transport (RFC 3263 §4.2; WS names follow the same pattern).
SRV_SERVICES: dict[str, str] = {
    "UDP": "_sip._udp",
    "TCP": "_sip._tcp",
    "TLS": "_sips._tcp",
    "WS": "_sip._ws",
    "WSS": "_sips._ws",
}

#: NAPTR service field -> transport (RFC 3263 §4.1, RFC 7118 §10.2).
_NAPTR_SERVICES: dict[str, str] = {
    "SIP+D2U": "UDP",
    "SIP+D2T": "TCP",
    "SIPS+D2T": "TLS",
    "SIP+D2W": "WS",
    "SIPS+D2W": "WSS",
}

#: The order of the SRV queries when there are no usable NAPTR records.
_FALLBACK_SRV_ORDER: tuple[str, ...] = ("TLS", "TCP", "UDP")

#: How many records of one DNS answer are considered (a hostile server cannot make
#: the plan do unbounded work).
MAX_RECORDS_PER_ANSWER = 64

_SECURE = {"TLS", "WSS"}


class LocationError(Exception):
    """No target could be found for a URI (or the URI cannot be used as asked).

    ``reason`` explains why (every DNS outcome that led there), ``status_hint`` is what
    a proxy answers upstream (503, RFC 3261 §16.7 step 6 leaves the choice; a timeout of
    DNS is not the callee's fault). ``timed_out`` is true when a DNS query timed out.
    """

    def __init__(self, reason: str, *, status_hint: int = 503, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.timed_out = timed_out


class LocatableURI(Protocol):
    """What the plan needs from a :class:`sipwire.core.uri.SipURI`."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def transport(self) -> str | None: ...
    @property
    def maddr(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: transport, SIP domain (for TLS), IP address, port."""

    transport: str
    host: str
    address: str
    port: int

    @property
    def key(self) -> tuple[str, str, int]:
        """``(transport, address, port)``: what identifies the server for failover."""
        return (self.transport, self.address, self.port)

    @property
    def secure(self) -> bool:
        """True for TLS and WSS."""
        return self.transport in _SECURE


RRType = Literal["NAPTR", "SRV", "A", "AAAA"]


@dataclass(frozen=True, slots=True)
class Query:
    """A DNS question: ``name`` (lower case, no trailing dot) and record type."""

    name: str
    rdtype: RRType


class DnsStatus(enum.Enum):
    """How a DNS query ended."""

    OK = "ok"  #: NOERROR; the records may be empty (NODATA)
    NXDOMAIN = "nxdomain"  #: the name does not exist
    ERROR = "error"  #: SERVFAIL, REFUSED, a malformed answer...
    TIMEOUT = "timeout"  #: no answer in time


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """A NAPTR RR (RFC 3403 §4.1); ``replacement`` without the trailing dot."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """An SRV RR (RFC 2782); ``target`` without the trailing dot (``"."`` stays ``"."``)."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one :class:`Query`: a status and the records of its type."""

    status: DnsStatus = DnsStatus.OK
    naptr: tuple[NaptrRecord, ...] = ()
    srv: tuple[SrvRecord, ...] = ()
    addresses: tuple[str, ...] = ()
    ttl: float = 0.0
    detail: str = ""

    @property
    def empty(self) -> bool:
        """True when there is no record at all."""
        return not (self.naptr or self.srv or self.addresses)

    def describe(self) -> str:
        """A short text for error messages: ``nxdomain``, ``no records``, ``timeout``..."""
        if self.status is DnsStatus.OK:
            return "no records" if self.empty else "ok"
        return self.status.name.lower() + (f" ({self.detail})" if self.detail else "")


#: What a plan yields: a batch of queries (answer them all, in order) or a target.
Step = tuple[Query, ...] | Target
#: What a plan is sent: one Answer per query of the batch, or None after a Target.
Sent = tuple[Answer, ...] | None
#: A location plan: yields :data:`Step`, is sent :data:`Sent`, returns nothing.
Plan = Generator[Step, Sent, None]


@dataclass(frozen=True, slots=True)
class NaptrChoice:
    """A usable NAPTR record: the transport and what to look up next."""

    transport: str
    lookup: Literal["SRV", "A"]
    name: str
    order: int
    preference: int


# --------------------------------------------------------------------------- helpers


def numeric_host(host: str) -> str | None:
    """The IP address in ``host`` (``"192.0.2.1"``, ``"[2001:db8::1]"``), or None.

    The result is normalized and has no brackets.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _domain(host: str) -> str:
    """Lower-case ``host`` without a trailing dot; LocationError if it is not a name."""
    name = host.rstrip(".").lower() if host != "." else ""
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or any(not label or len(label) > 63 for label in labels)
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name.replace(".", ""))
    ):
        raise LocationError(f"{host!r} is not a valid host name", status_hint=400)
    return name


def _transport_from_param(param: str, secure: bool) -> str:
    value = param.lower()
    if value == "udp":
        if secure:
            raise LocationError("a SIPS URI cannot use transport=udp", status_hint=400)
        return "UDP"
    if value in ("tcp", "tls"):
        return "TLS" if secure or value == "tls" else "TCP"
    if value in ("ws", "wss"):
        return "WSS" if secure or value == "wss" else "WS"
    raise LocationError(f"transport {param!r} is not supported", status_hint=503)


def _default_transport(secure: bool, supported: Sequence[str]) -> str:
    """RFC 3263 §4.1: UDP for SIP (TCP if the client has no UDP), TLS for SIPS."""
    for transport in ("TLS",) if secure else ("UDP", "TCP"):
        if transport in supported:
            return transport
    raise LocationError(
        "no supported transport for a " + ("SIPS" if secure else "SIP") + " URI",
        status_hint=503,
    )


def select_naptr(
    records: Iterable[NaptrRecord], *, secure: bool, supported: Sequence[str]
) -> list[NaptrChoice]:
    """Filter and order NAPTR records (RFC 3263 §4.1, RFC 3403 §4.1).

    Keeps terminal records (flag ``s`` -> SRV, ``a`` -> A/AAAA) with an empty regexp, a
    non-root replacement and a known SIP service whose transport is in ``supported``;
    only ``SIPS+`` services when ``secure``. Ordered by order, then preference, then
    service and replacement (deterministic, §4.4). Duplicates are dropped.
    """
    choices: list[tuple[tuple[int, int, str, str], NaptrChoice]] = []
    seen: set[tuple[str, str, str]] = set()
    for record in list(records)[:MAX_RECORDS_PER_ANSWER]:
        flags = record.flags.lower()
        service = record.service.upper()
        transport = _NAPTR_SERVICES.get(service)
        if (
            flags not in ("s", "a")
            or record.regexp
            or transport is None
            or transport not in supported
            or (secure and not service.startswith("SIPS+"))
        ):
            continue
        try:
            name = _domain(record.replacement)
        except LocationError:
            continue
        lookup: Literal["SRV", "A"] = "SRV" if flags == "s" else "A"
        if (transport, lookup, name) in seen:
            continue
        seen.add((transport, lookup, name))
        choice = NaptrChoice(transport, lookup, name, record.order, record.preference)
        choices.append(((record.order, record.preference, service, name), choice))
    choices.sort(key=lambda item: item[0])
    return [choice for _, choice in choices]


def order_srv(records: Iterable[SrvRecord], rand_below: Callable[[int], int]) -> list[SrvRecord]:
    """Order SRV records for trying (RFC 2782 "Usage rules").

    Records with target ``"."`` are dropped. Lower priority first; within a priority,
    repeatedly pick a record with probability proportional to its weight among those
    left (weight-0 records last, uniformly shuffled). ``rand_below(n)`` must return an
    int in ``[0, n)``.
    """
    usable: list[SrvRecord] = []
    seen: set[tuple[str, int]] = set()
    for record in list(records)[:MAX_RECORDS_PER_ANSWER]:
        target = record.target.rstrip(".").lower()
        if not target or (target, record.port) in seen:
            continue
        seen.add((target, record.port))
        usable.append(SrvRecord(record.priority, record.weight, record.port, target))
    usable.sort(key=lambda r: (r.priority, r.target, r.port))
    ordered: list[SrvRecord] = []
    start = 0
    while start < len(usable):
        end = start
        while end < len(usable) and usable[end].priority == usable[start].priority:
            end += 1
        pool = usable[start:end]
        while pool:
            ordered.append(pool.pop(_weighted_index(pool, rand_below)))
        start = end
    return ordered


def _weighted_index(pool: Sequence[SrvRecord], rand_below: Callable[[int], int]) -> int:
    """RFC 2782: the first record whose running weight sum exceeds a random pick."""
    total = sum(r.weight for r in pool)
    if total == 0:
        return _checked(rand_below, len(pool))
    pick = _checked(rand_below, total)
    running = 0
    for index, record in enumerate(pool):
        running += record.weight
        if running > pick:
            return index
    raise AssertionError("unreachable: pick < total")  # pragma: no cover


def _checked(rand_below: Callable[[int], int], n: int) -> int:
    value = rand_below(n)
    if not 0 <= value < n:
        raise LocalProtocolError(f"rand_below({n}) returned {value}, outside [0, {n})")
    return value


def _srv_unavailable(answer: Answer) -> bool:
    """RFC 2782: a lone SRV record with target "." means "decidedly not available"."""
    return bool(answer.srv) and all(r.target.rstrip(".") == "" for r in answer.srv)


# --------------------------------------------------------------------------- the plan


class _Run:
    """One running plan: its settings, and what it produced and learnt so far."""

    def __init__(
        self,
        supported: tuple[str, ...],
        ip_versions: tuple[int, ...],
        rand_below: Callable[[int], int],
        max_targets: int,
    ) -> None:
        self.supported = supported
        self.ip_versions = ip_versions
        self.rand_below = rand_below
        self.max_targets = max_targets
        self.emitted: set[tuple[str, str, int]] = set()
        self.notes: list[str] = []
        self.timed_out = False

    @property
    def full(self) -> bool:
        return len(self.emitted) >= self.max_targets

    def ask(self, queries: tuple[Query, ...]) -> Generator[Step, Sent, tuple[Answer, ...]]:
        """Yield one batch; return (via StopIteration) the answers, checked and noted."""
        answers = yield queries
        if answers is None or len(answers) != len(queries):
            raise LocalProtocolError("a plan must be sent one Answer per Query of the batch")
        for query, answer in zip(queries, answers, strict=True):
            if answer.status is DnsStatus.TIMEOUT:
                self.timed_out = True
            if answer.status is not DnsStatus.OK or answer.empty:
                self.notes.append(f"{query.rdtype} {query.name}: {answer.describe()}")
            elif _srv_unavailable(answer):
                self.notes.append(f"SRV {query.name}: service not available ('.')")
        return answers

    def addresses(
        self, name: str, transport: str, port: int, sip_domain: str
    ) -> Generator[Step, Sent, int]:
        """Resolve ``name`` to A/AAAA and yield a Target per address; return how many."""
        if self.full:
            return 0
        ip = numeric_host(name)
        if ip is not None:
            addresses: list[str] = [ip]
        else:
            queries = tuple(Query(name, "A" if v == 4 else "AAAA") for v in self.ip_versions)
            answers = yield from self.ask(queries)
            addresses = []
            for answer in answers:
                for address in answer.addresses[:MAX_RECORDS_PER_ANSWER]:
                    normal = numeric_host(address)
                    if normal is not None:
                        addresses.append(normal)
        count = 0
        for address in addresses:
            target = Target(transport, sip_domain, address, port)
            if target.key in self.emitted or self.full:
                continue
            self.emitted.add(target.key)
            count += 1
            sent = yield target
            if sent is not None:
                raise LocalProtocolError("send None to a plan after it yields a Target")
        return count

    def via_srv(
        self, answer: Answer, transport: str, sip_domain: str
    ) -> Generator[Step, Sent, int]:
        """Targets of every SRV record of ``answer``, in RFC 2782 order."""
        count = 0
        for record in order_srv(answer.srv, self.rand_below):
            count += yield from self.addresses(record.target, transport, record.port, sip_domain)
        return count

    def naptr(self, name: str, secure: bool) -> Generator[Step, Sent, int]:
        """§4.1 NAPTR, else SRV per supported transport, else A/AAAA (§4.2)."""
        (naptr,) = yield from self.ask((Query(name, "NAPTR"),))
        choices = select_naptr(naptr.naptr, secure=secure, supported=self.supported)
        if naptr.naptr and not choices:
            self.notes.append(f"NAPTR {name}: no usable record for {'/'.join(self.supported)}")
        count = 0
        any_srv = False
        fallback: str | None
        if choices:
            for choice in choices:
                if choice.lookup == "A":
                    port = DEFAULT_PORTS[choice.transport]
                    count += yield from self.addresses(choice.name, choice.transport, port, name)
                    continue
                (answer,) = yield from self.ask((Query(choice.name, "SRV"),))
                any_srv = any_srv or bool(answer.srv)
                count += yield from self.via_srv(answer, choice.transport, name)
            fallback = next((c.transport for c in choices if c.lookup == "SRV"), None)
        else:
            transports = [
                t
                for t in _FALLBACK_SRV_ORDER
                if t in self.supported and (not secure or t in _SECURE)
            ]
            queries = tuple(Query(f"{SRV_SERVICES[t]}.{name}", "SRV") for t in transports)
            answers: tuple[Answer, ...] = ()
            if queries:
                answers = yield from self.ask(queries)
            for transport, answer in zip(transports, answers, strict=True):
                any_srv = any_srv or bool(answer.srv)
                count += yield from self.via_srv(answer, transport, name)
            fallback = _default_transport(secure, self.supported)
        if not any_srv and fallback is not None:
            # §4.2: no SRV records at all -> A/AAAA of the domain at the default port.
            count += yield from self.addresses(name, fallback, DEFAULT_PORTS[fallback], name)
        return count


def plan_location(
    uri: LocatableURI,
    *,
    outbound_proxy: LocatableURI | None = None,
    supported_transports: Sequence[str] = ("UDP", "TCP", "TLS"),
    ip_versions: Sequence[int] = (4, 6),
    rand_below: Callable[[int], int] = secrets.randbelow,
    max_targets: int = 32,
) -> Plan:
    """The RFC 3263 §4 plan for ``uri`` (or for ``outbound_proxy`` when one is set).

    With an outbound proxy the proxy's URI is located, and TLS is forced when either
    URI is SIPS (RFC 3261 §26.2.2: SIPS is TLS on every hop). Bad arguments raise
    :class:`LocalProtocolError` now; URI and DNS problems raise :class:`LocationError`
    from the plan, once it has produced no target at all.
    """
    supported = tuple(supported_transports)
    if not supported or any(t not in TRANSPORTS for t in supported):
        raise LocalProtocolError(f"supported_transports must be a subset of {TRANSPORTS}")
    versions = tuple(ip_versions)
    if not versions or not set(versions) <= {4, 6} or len(set(versions)) != len(versions):
        raise LocalProtocolError("ip_versions must be a non-empty ordering of 4 and/or 6")
    if max_targets < 1:
        raise LocalProtocolError("max_targets must be at least 1")
    return _plan(uri, outbound_proxy, _Run(supported, versions, rand_below, max_targets))


def _plan(uri: LocatableURI, outbound_proxy: LocatableURI | None, run: _Run) -> Plan:
    schemes = [uri.scheme.lower()] + ([outbound_proxy.scheme.lower()] if outbound_proxy else [])
    if any(s not in ("sip", "sips") for s in schemes):
        raise LocationError(f"cannot locate a {uri.scheme!r} URI", status_hint=416)
    secure = "sips" in schemes
    hop = outbound_proxy if outbound_proxy is not None else uri
    target_host = hop.maddr or hop.host
    transport = _transport_from_param(hop.transport, secure) if hop.transport else None
    if transport is not None and transport not in run.supported:
        raise LocationError(f"transport {transport} is not supported here", status_hint=503)

    # §4.1/§4.2: a numeric TARGET needs no DNS at all.
    ip = numeric_host(target_host)
    if ip is not None:
        chosen = transport or _default_transport(secure, run.supported)
        yield Target(chosen, ip, ip, hop.port or DEFAULT_PORTS[chosen])
        return

    name = _domain(target_host)
    count = 0
    if hop.port is not None:
        # §4.2: an explicit port means A/AAAA only, even for 5060.
        chosen = transport or _default_transport(secure, run.supported)
        count = yield from run.addresses(name, chosen, hop.port, name)
    elif transport is not None:
        # §4.2: transport given, no port -> SRV for that transport, then A/AAAA.
        (answer,) = yield from run.ask((Query(f"{SRV_SERVICES[transport]}.{name}", "SRV"),))
        if answer.srv:
            count = yield from run.via_srv(answer, transport, name)
        else:
            count = yield from run.addresses(name, transport, DEFAULT_PORTS[transport], name)
    else:
        count = yield from run.naptr(name, secure)
    if count == 0:
        detail = "; ".join(run.notes) or "no usable records"
        raise LocationError(
            f"no target for {name}: {detail}" + (" (DNS timed out)" if run.timed_out else ""),
            timed_out=run.timed_out,
        )


def run_plan(plan: Plan, lookup: Callable[[Query], Answer]) -> list[Target]:
    """Drive ``plan`` to the end with a synchronous ``lookup``; every target, in order."""
    targets: list[Target] = []
    try:
        step = next(plan)
        while True:
            if isinstance(step, Target):
                targets.append(step)
                step = plan.send(None)
            else:
                step = plan.send(tuple(lookup(query) for query in step))
    except StopIteration:
        return targets


# --------------------------------------------------------------------------- failover


class Failover:
    """Remember targets that failed recently and try them last (RFC 3263 §4.3).

    ``failed(target, now)`` holds a target's ``(transport, address, port)`` for
    ``hold_time`` seconds (30 by default); ``order(targets, now)`` returns the targets
    with the held ones moved to the end, in the order their hold expires (or dropped
    when ``keep_held`` is false). ``succeeded(target)`` releases one at once. The table
    holds at most ``max_entries`` (1024) targets; when full, expired entries go first,
    then the one whose hold ends soonest. Time is an argument (monotonic seconds).
    """

    def __init__(
        self, *, hold_time: float = 30.0, max_entries: int = 1024, keep_held: bool = True
    ) -> None:
        if hold_time <= 0 or max_entries < 1:
            raise LocalProtocolError("hold_time must be > 0 and max_entries >= 1")
        self.hold_time = hold_time
        self.max_entries = max_entries
        self.keep_held = keep_held
        self._held: OrderedDict[tuple[str, str, int], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def failed(self, target: Target, now: float, *, hold_time: float | None = None) -> None:
        """``target`` failed (transport error, timeout, 503): hold it until ``now + hold``."""
        until = now + (self.hold_time if hold_time is None else hold_time)
        key = target.key
        self._held.pop(key, None)
        if len(self._held) >= self.max_entries:
            self._expire(now)
        while len(self._held) >= self.max_entries:
            soonest = min(self._held, key=self._held.__getitem__)
            del self._held[soonest]
        self._held[key] = until

    def succeeded(self, target: Target) -> None:
        """``target`` answered: forget that it failed."""
        self._held.pop(target.key, None)

    def is_held(self, target: Target, now: float) -> bool:
        """True while ``target`` is held after a failure."""
        until = self._held.get(target.key)
        if until is None:
            return False
        if until <= now:
            del self._held[target.key]
            return False
        return True

    def order(self, targets: Iterable[Target], now: float) -> list[Target]:
        """``targets`` with held ones last (ordered by hold expiry) or dropped."""
        fresh: list[Target] = []
        held: list[tuple[float, int, Target]] = []
        for index, target in enumerate(targets):
            if self.is_held(target, now):
                held.append((self._held[target.key], index, target))
            else:
                fresh.append(target)
        if self.keep_held:
            fresh.extend(target for _, _, target in sorted(held, key=lambda h: (h[0], h[1])))
        return fresh

    def next_expiry(self) -> float | None:
        """When the earliest hold ends (None if nothing is held)."""
        return min(self._held.values(), default=None)

    def _expire(self, now: float) -> None:
        for key in [k for k, until in self._held.items() if until <= now]:
            del self._held[key]
