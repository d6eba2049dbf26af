"""Locating SIP servers over real DNS (RFC 3263) -- the asyncio shell around dnspython.

The rules live in :mod:`sipwire.core.locate` (a sans-IO plan); this module answers the
plan's DNS questions with :mod:`dns.asyncresolver` and adds what needs a clock: a
bounded cache honouring TTLs, per-query timeouts and a total time budget.

API
---
* ``await locate(uri, *, resolver=None, outbound_proxy=None,
  supported_transports=("UDP", "TCP", "TLS"), ip_versions=(4, 6), rand_below=None)
  -> list[Target]``: every target in the order to try them. The caller sends to the
  first and moves on to the next on a transport error, a timeout without any response,
  or a 503 (RFC 3263 §4.3), with a new Via branch. Raises
  :class:`~sipwire.core.locate.LocationError` when there is no target at all (NXDOMAIN,
  no records, DNS timeout -- ``err.timed_out`` tells).
* ``locate_iter(...)`` (same arguments): an async iterator that resolves lazily -- the
  A/AAAA records of the second SRV target are only asked for when the caller gets
  that far. Raises LocationError only if it produces nothing.
* :class:`Resolver` ``(*, nameservers=None, port=53, timeout=2.0, lifetime=10.0,
  cache_size=1024, max_ttl=3600.0, negative_ttl=30.0, static_hosts=None,
  clock=time.monotonic)``:

  - ``nameservers``: IP addresses to ask (``port`` for all of them); ``None`` reads the
    system configuration (``/etc/resolv.conf``).
  - ``timeout``: seconds for one query (all retries included); ``lifetime``: seconds
    one location may spend waiting for DNS in total (queries still pending then count
    as timed out).
  - The cache holds at most ``cache_size`` answers (least recently used go first),
    each for its TTL capped at ``max_ttl``; NXDOMAIN and "no records" are cached for
    ``min(negative_ttl, SOA minimum)`` (RFC 2308); timeouts and server failures are
    not cached. A TTL of 0 is not cached.
  - ``static_hosts``: ``{name: [addresses]}`` answered before DNS (like a hosts file);
    ``localhost`` and ``*.localhost`` always resolve to 127.0.0.1 / ::1 (RFC 6761 §6.3).
  - ``await resolver.query(Query(name, rdtype)) -> Answer`` (``resolve(name, rdtype)``
    is the same from plain strings); identical queries in flight at the same time share
    one network query. ``answer_batch(queries, budget)`` answers a batch concurrently
    within ``budget`` seconds (what ``locate_iter`` uses).
* :func:`default_resolver`: the process-wide Resolver (system configuration) that
  ``locate`` uses when none is given, so its cache is shared.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from sipwire.core._errors import LocalProtocolError
from sipwire.core.locate import (
    Answer,
    DnsStatus,
    LocatableURI,
    LocationError,
    NaptrRecord,
    Query,
    RRType,
    SrvRecord,
    Target,
    numeric_host,
    plan_location,
)

__all__ = ["LocationError", "Resolver", "Target", "default_resolver", "locate", "locate_iter"]

_RRTYPES: dict[str, RRType] = {"NAPTR": "NAPTR", "SRV": "SRV", "A": "A", "AAAA": "AAAA"}
_LOOPBACK = {"A": ("127.0.0.1",), "AAAA": ("::1",)}


def _name_text(name: dns.name.Name) -> str:
    """A DNS name as the core wants it: lower case, no final dot, the root as ``"."``."""
    if name == dns.name.root:
        return "."
    return str(name.to_text(omit_final_dot=True)).lower()


def _negative_ttl(response: dns.message.Message | None, cap: float) -> float:
    """RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM), capped."""
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset) > 0:
                return float(min(cap, rrset.ttl, rrset[0].minimum))
    return cap


class Resolver:
    """dnspython's asyncio resolver with a bounded TTL cache (see the module docstring)."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 10.0,
        cache_size: int = 1024,
        max_ttl: float = 3600.0,
        negative_ttl: float = 30.0,
        static_hosts: Mapping[str, Sequence[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0 or lifetime <= 0 or cache_size < 0 or max_ttl < 0 or negative_ttl < 0:
            raise LocalProtocolError("timeouts must be > 0; cache sizes and TTLs >= 0")
        self.timeout = timeout
        self.lifetime = lifetime
        self.cache_size = cache_size
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Task[Answer]] = {}
        self._static: dict[tuple[str, str], tuple[str, ...]] = {}
        for host, addresses in (static_hosts or {}).items():
            name = host.rstrip(".").lower()
            for address in addresses:
                ip = numeric_host(address)
                if ip is None:
                    raise LocalProtocolError(f"static_hosts[{host!r}]: {address!r} is not an IP")
                rdtype = "AAAA" if ":" in ip else "A"
                self._static[(name, rdtype)] = (*self._static.get((name, rdtype), ()), ip)
        self._dns = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            if not nameservers:
                raise LocalProtocolError("nameservers must not be empty (None = system)")
            self._dns.nameservers = [dns.nameserver.Do53Nameserver(a, port) for a in nameservers]
        self._dns.timeout = timeout
        self._dns.lifetime = timeout
        self._dns.cache = None

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    @property
    def cached(self) -> int:
        """How many answers are cached (expired ones included until touched)."""
        return len(self._cache)

    async def resolve(self, name: str, rdtype: str) -> Answer:
        """Shorthand for ``query(Query(name, rdtype))``."""
        checked = _RRTYPES.get(rdtype.upper())
        if checked is None:
            raise LocalProtocolError(f"unsupported record type {rdtype!r}")
        return await self.query(Query(name.rstrip(".").lower(), checked))

    async def query(self, query: Query) -> Answer:
        """Answer one query: static hosts, then the cache, then the network."""
        key = (query.name, query.rdtype)
        local = self._local(query)
        if local is not None:
            return local
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] > self._clock():
                self._cache.move_to_end(key)
                return cached[1]
            del self._cache[key]
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._lookup(query))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: tuple[str, str], task: asyncio.Task[Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a lookup nobody awaits any more is quiet

    def _local(self, query: Query) -> Answer | None:
        if query.rdtype not in ("A", "AAAA"):
            return None
        static = self._static.get((query.name, query.rdtype))
        if static is not None:
            return Answer(addresses=static)
        if query.name == "localhost" or query.name.endswith(".localhost"):
            return Answer(addresses=_LOOPBACK[query.rdtype])
        return None

    async def _lookup(self, query: Query) -> Answer:
        qname = dns.name.from_text(query.name)
        response: dns.message.Message | None = None
        try:
            result = await self._dns.resolve(
                qname, query.rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.kwargs.get("responses") or {}
            found = next(iter(responses.values()), None)
            response = found if isinstance(found, dns.message.Message) else None
            answer = Answer(DnsStatus.NXDOMAIN)
        except dns.exception.Timeout:
            return Answer(DnsStatus.TIMEOUT, detail=f"no answer within {self.timeout:g}s")
        except dns.exception.DNSException as exc:
            return Answer(DnsStatus.ERROR, detail=type(exc).__name__)
        else:
            response = result.response
            answer = self._convert(query, result)
        if answer.empty:
            ttl = _negative_ttl(response, self.negative_ttl)
        else:
            ttl = min(float(answer.ttl), self.max_ttl)
        self._store((query.name, query.rdtype), answer, ttl)
        return answer

    @staticmethod
    def _convert(query: Query, result: dns.resolver.Answer) -> Answer:
        rrset = result.rrset
        if rrset is None:
            return Answer()
        ttl = float(rrset.ttl)
        if query.rdtype == "NAPTR":
            naptr = tuple(
                NaptrRecord(
                    int(r.order),
                    int(r.preference),
                    bytes(r.flags).decode("ascii", "replace"),
                    bytes(r.service).decode("ascii", "replace"),
                    bytes(r.regexp).decode("ascii", "replace"),
                    _name_text(r.replacement),
                )
                for r in rrset
            )
            return Answer(naptr=naptr, ttl=ttl)
        if query.rdtype == "SRV":
            srv = tuple(
                SrvRecord(int(r.priority), int(r.weight), int(r.port), _name_text(r.target))
                for r in rrset
            )
            return Answer(srv=srv, ttl=ttl)
        return Answer(addresses=tuple(str(r.address) for r in rrset), ttl=ttl)

    def _store(self, key: tuple[str, str], answer: Answer, ttl: float) -> None:
        if ttl <= 0 or self.cache_size == 0:
            return
        self._cache.pop(key, None)
        while len(self._cache) >= self.cache_size:
            self._cache.popitem(last=False)
        self._cache[key] = (self._clock() + ttl, answer)

    async def answer_batch(self, queries: Sequence[Query], budget: float) -> tuple[Answer, ...]:
        """Answer ``queries`` concurrently; any still pending after ``budget`` s time out."""
        if budget <= 0:
            return tuple(Answer(DnsStatus.TIMEOUT, detail="lifetime exhausted") for _ in queries)
        tasks = [asyncio.ensure_future(self.query(q)) for q in queries]
        try:
            await asyncio.wait(tasks, timeout=budget)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        # Wait for cancelled tasks to finish so none is left pending or unretrieved.
        await asyncio.gather(*tasks, return_exceptions=True)
        answers: list[Answer] = []
        for task in tasks:
            if task.cancelled():
                answers.append(Answer(DnsStatus.TIMEOUT, detail="lifetime exhausted"))
            else:
                answers.append(task.result())
        return tuple(answers)


_default: Resolver | None = None


def default_resolver() -> Resolver:
    """The shared Resolver built from the system configuration on first use."""
    global _default
    if _default is None:
        _default = Resolver()
    return _default


async def locate_iter(
    uri: LocatableURI,
    *,
    resolver: Resolver | None = None,
    outbound_proxy: LocatableURI | None = None,
    supported_transports: Sequence[str] = ("UDP", "TCP", "TLS"),
    ip_versions: Sequence[int] = (4, 6),
    rand_below: Callable[[int], int] | None = None,
) -> AsyncGenerator[Target, None]:
    """Yield the targets for ``uri`` in order, resolving only as far as the caller reads."""
    plan = plan_location(
        uri,
        outbound_proxy=outbound_proxy,
        supported_transports=supported_transports,
        ip_versions=ip_versions,
        rand_below=rand_below if rand_below is not None else secrets.randbelow,
    )
    dns_resolver = resolver if resolver is not None else default_resolver()
    budget = dns_resolver.lifetime
    loop = asyncio.get_running_loop()
    try:
        step = next(plan)
        while True:
            if isinstance(step, Target):
                yield step
                step = plan.send(None)
            else:
                started = loop.time()
                answers = await dns_resolver.answer_batch(step, budget)
                budget -= loop.time() - started
                step = plan.send(answers)
    except StopIteration:
        return
    finally:
        plan.close()


async def locate(
    uri: LocatableURI,
    *,
    resolver: Resolver | None = None,
    outbound_proxy: LocatableURI | None = None,
    supported_transports: Sequence[str] = ("UDP", "TCP", "TLS"),
    ip_versions: Sequence[int] = (4, 6),
    rand_below: Callable[[int], int] | None = None,
) -> list[Target]:
    """Every target for ``uri``, in the order to try them (RFC 3263 §4)."""
    return [
        target
        async for target in locate_iter(
            uri,
            resolver=resolver,
            outbound_proxy=outbound_proxy,
            supported_transports=supported_transports,
            ip_versions=ip_versions,
            rand_below=rand_below,
        )
    ]
