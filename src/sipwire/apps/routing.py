"""Routing policy for the proxy: static routes and the Python routing hook.

Static routes (:class:`RouteTable`)
    One configuration entry per route, ``REGEX=URI[,URI...]``. The regular expression is
    searched (``re.search``) in the Request-URI as text; the first route that matches
    wins. The URIs are *next hops* (the Request-URI is left alone, like an outbound proxy
    for that pattern)::

        ^sip:\\+1[0-9]+@=sip:gw1.example.net;transport=tcp,sip:gw2.example.net
        ^sip:.*@partner\\.example=sip:10.0.0.5:5060;weight=3,sip:10.0.0.6:5060;weight=1

    The entry splits at the first ``=`` followed by ``sip:`` or ``sips:``. Without
    ``weight`` parameters the hops are tried in the order written (failover on a
    transport error, a timeout or a 503, as RFC 3263 §4.3 does for DNS targets). With
    weights, each request draws its own order: a hop is picked with probability
    weight / (sum of the remaining weights) (the RFC 2782 selection), the hops left are
    its failover order, and ``weight=0`` hops come last, in the order written. A hop
    without ``weight`` in a weighted route counts as ``weight=1``. The ``weight``
    parameter is removed from the URI before it is used.

The routing hook (:func:`load_hook`)
    ``"package.module:function"`` (or ``"/path/to/file.py:function"``) names a function
    ``function(request, context)`` -- plain or ``async`` -- that the proxy calls for each
    request it must route (not for requests routed by a Route header of an established
    dialog). It returns a decision:

    * ``Relay(targets=[...], next_hops=[...], fork=None)``: forward to these Request-URIs
      (several: a fork; none: keep the Request-URI), through ``next_hops`` (tried in
      order) instead of the location service / DNS.
    * ``Redirect(contacts=[...], status=302)``: answer 3xx with these Contacts.
    * ``Reject(status, reason=None)``: answer with this error.
    * ``None``: the default routing (location service, static routes, DNS).

    :class:`RoutingContext` gives the hook the request's source, whether the
    Request-URI is one of our domains, the location service and the route table.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from sipwire.aio._transport_common import Source
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.message import Request
from sipwire.core.uri import URI, SipURI, parse_uri
from sipwire.store import Binding

__all__ = [
    "Decision",
    "Hop",
    "Redirect",
    "Reject",
    "Relay",
    "Route",
    "RouteTable",
    "RoutingContext",
    "RoutingHook",
    "call_hook",
    "load_hook",
]

#: Routes one table may hold (a configuration bound, not a network one).
MAX_ROUTES = 10_000
#: Next hops one route may list.
MAX_HOPS = 64

ForkMode = Literal["parallel", "sequential"]


# ----------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One next hop of a route: its URI (``weight`` removed) and weight (None: unset)."""

    uri: SipURI
    weight: int | None = None


def _parse_hop(text: str) -> Hop:
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    try:
        uri = SipURI.parse(text)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"route hop {text!r}: {exc.reason}") from None
    weight: int | None = None
    if uri.has_param("weight"):
        value = uri.param("weight")
        if value is None or not value.isdigit() or int(value) > 65535:
            raise LocalProtocolError(f"route hop {text!r}: weight must be 0..65535")
        weight = int(value)
        uri = uri.without_param("weight")
    return Hop(uri=uri, weight=weight)


@dataclass(frozen=True, slots=True)
class Route:
    """A static route: ``pattern`` searched in the Request-URI text, and its next hops."""

    pattern: re.Pattern[str]
    hops: tuple[Hop, ...]

    def __post_init__(self) -> None:
        if not self.hops:
            raise LocalProtocolError("a route needs at least one next hop")
        if len(self.hops) > MAX_HOPS:
            raise LocalProtocolError(f"a route may list at most {MAX_HOPS} next hops")

    @classmethod
    def parse(cls, entry: str) -> Route:
        """Parse ``REGEX=URI[,URI...]`` (see the module docstring)."""
        parts = re.split(r"=(?=\s*<?sips?:)", entry, maxsplit=1)
        if len(parts) != 2 or not parts[0]:
            raise LocalProtocolError(f"route {entry!r} is not REGEX=sip:URI[,sip:URI...]")
        regex, hops_text = parts
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise LocalProtocolError(f"route {entry!r}: bad regular expression: {exc}") from None
        hops = tuple(_parse_hop(h) for h in hops_text.split(",") if h.strip())
        return cls(pattern, hops)

    @property
    def weighted(self) -> bool:
        return any(h.weight is not None for h in self.hops)

    def matches(self, request_uri: str) -> bool:
        return self.pattern.search(request_uri) is not None

    def order(self, rand: Callable[[], float] | None = None) -> list[SipURI]:
        """The hops in the order to try them for one request (weighted draw if weighted)."""
        if not self.weighted:
            return [h.uri for h in self.hops]
        draw = rand if rand is not None else _system_random
        pool = [(h.weight if h.weight is not None else 1, h.uri) for h in self.hops]
        ordered: list[SipURI] = []
        while True:
            live = [(w, u) for w, u in pool if w > 0]
            if not live:
                break
            total = sum(w for w, _ in live)
            point = draw() * total
            chosen = live[-1]
            running = 0
            for item in live:
                running += item[0]
                if point < running:
                    chosen = item
                    break
            ordered.append(chosen[1])
            pool.remove(chosen)
        ordered.extend(u for _, u in pool)  # weight 0: last, in the order written
        return ordered

    def __str__(self) -> str:
        hops = ",".join(
            str(h.uri) if h.weight is None else f"{h.uri};weight={h.weight}" for h in self.hops
        )
        return f"{self.pattern.pattern}={hops}"


_sysrand = secrets.SystemRandom()


def _system_random() -> float:
    return _sysrand.random()


class RouteTable:
    """Ordered static routes; :meth:`match` returns the first whose pattern matches."""

    def __init__(self, routes: Iterable[Route] = (), *, rand: Callable[[], float] | None = None):
        self._routes = list(routes)
        if len(self._routes) > MAX_ROUTES:
            raise LocalProtocolError(f"at most {MAX_ROUTES} routes")
        #: The random source for weighted routes: a float in [0, 1) (default ``secrets``).
        self.rand = rand

    @classmethod
    def parse(
        cls, entries: Iterable[str], *, rand: Callable[[], float] | None = None
    ) -> RouteTable:
        """A table from configuration entries ``REGEX=URI[,URI...]`` (blank lines and
        ``#`` comments skipped). Raises LocalProtocolError naming the bad entry."""
        routes = [
            Route.parse(e.strip()) for e in entries if e.strip() and not e.lstrip().startswith("#")
        ]
        return cls(routes, rand=rand)

    @classmethod
    def from_config(
        cls, entries: Iterable[str] | None, *, rand: Callable[[], float] | None = None
    ) -> RouteTable:
        """:meth:`parse` of a configuration list (None: an empty table)."""
        return cls.parse(entries or (), rand=rand)

    def add(self, entry: str | Route) -> None:
        if len(self._routes) >= MAX_ROUTES:
            raise LocalProtocolError(f"at most {MAX_ROUTES} routes")
        self._routes.append(Route.parse(entry) if isinstance(entry, str) else entry)

    def match(self, request_uri: str | URI) -> Route | None:
        text = str(request_uri)
        for route in self._routes:
            if route.matches(text):
                return route
        return None

    def next_hops(self, request_uri: str | URI) -> list[SipURI] | None:
        """The ordered next hops for ``request_uri``, or None if no route matches."""
        route = self.match(request_uri)
        return None if route is None else route.order(self.rand)

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def __bool__(self) -> bool:
        return bool(self._routes)

    def __repr__(self) -> str:
        return f"RouteTable({[str(r) for r in self._routes]!r})"


# ----------------------------------------------------------------------------- decisions


def _to_uri(value: str | URI, what: str) -> URI:
    if not isinstance(value, str):
        return value
    try:
        return parse_uri(value.strip().removeprefix("<").removesuffix(">"))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"{what} {value!r}: {exc.reason}") from None


def _to_sip_uri(value: str | URI, what: str) -> SipURI:
    uri = _to_uri(value, what)
    if not isinstance(uri, SipURI):
        raise LocalProtocolError(f"{what} must be a sip: or sips: URI, not {value!s}")
    return uri


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    """Forward the request.

    ``targets``: Request-URIs of the forwarded copies (more than one forks; none keeps
    the Request-URI). ``next_hops``: where to send them, tried in order (none: the
    usual RFC 3263 location of each target). ``fork``: ``"parallel"`` or
    ``"sequential"`` (None: the proxy's setting). ``headers``: extra header rows added
    to every forwarded copy.
    """

    targets: Sequence[str | URI] = ()
    next_hops: Sequence[str | SipURI] = ()
    fork: ForkMode | None = None
    headers: Sequence[tuple[str, str]] = ()
    _target_uris: tuple[SipURI, ...] = field(default=(), init=False, repr=False)
    _hop_uris: tuple[SipURI, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.targets, str) or isinstance(self.next_hops, str):
            raise LocalProtocolError("Relay targets and next_hops are lists of URIs")
        object.__setattr__(
            self, "_target_uris", tuple(_to_sip_uri(t, "Relay target") for t in self.targets)
        )
        object.__setattr__(
            self, "_hop_uris", tuple(_to_sip_uri(h, "Relay next hop") for h in self.next_hops)
        )
        if self.fork not in (None, "parallel", "sequential"):
            raise LocalProtocolError(f"Relay fork must be parallel or sequential: {self.fork!r}")

    @property
    def target_uris(self) -> tuple[SipURI, ...]:
        return self._target_uris

    @property
    def hop_uris(self) -> tuple[SipURI, ...]:
        return self._hop_uris


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Answer ``status`` (3xx, default 302) with ``contacts`` (URIs, or Contact values
    such as ``"<sip:bob@192.0.2.4>;q=0.5"``), in the order given."""

    contacts: Sequence[str | URI | Address]
    status: int = 302
    reason: str | None = None
    _addresses: tuple[Address, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.contacts, str):
            raise LocalProtocolError("Redirect contacts is a list")
        if not 300 <= self.status <= 399:
            raise LocalProtocolError(f"Redirect status must be 3xx, not {self.status}")
        out: list[Address] = []
        for c in self.contacts:
            if isinstance(c, Address):
                out.append(c)
            elif isinstance(c, str):
                try:
                    out.append(Address.parse(c.strip()))
                except RemoteProtocolError as exc:
                    raise LocalProtocolError(f"Redirect contact {c!r}: {exc.reason}") from None
            else:
                out.append(Address(uri=c))
        object.__setattr__(self, "_addresses", tuple(out))

    @property
    def addresses(self) -> tuple[Address, ...]:
        return self._addresses


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer with an error: ``Reject(486)``, ``Reject(403, "Forbidden by policy")``."""

    status: int
    reason: str | None = None
    headers: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not 300 <= self.status <= 699:
            raise LocalProtocolError(f"Reject status must be 300..699, not {self.status!r}")


Decision = Relay | Redirect | Reject


class LocationLookup(Protocol):
    def __call__(self, aor: str) -> Awaitable[list[Binding]]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingContext:
    """What the routing hook may use besides the request.

    ``source``: the flow the request arrived on. ``local``: the Request-URI is in one of
    our domains (or names one of our addresses). ``aor``: its address-of-record key
    when local and with a user part. ``in_dialog``: the request has a To tag.
    ``lookup(aor)``: the location service (bindings, highest q first). ``routes``: the
    static route table. ``data``: a scratch dict the hook may use freely.
    """

    source: Source
    local: bool
    aor: str | None
    in_dialog: bool
    domains: frozenset[str]
    lookup: LocationLookup
    routes: RouteTable
    data: dict[str, object] = field(default_factory=dict)


RoutingHook = Callable[[Request, RoutingContext], Decision | Awaitable[Decision | None] | None]


def load_hook(spec: str) -> RoutingHook:
    """Load ``"package.module:function"`` or ``"/path/file.py:function"``.

    Raises LocalProtocolError when the module cannot be imported or the attribute is
    missing or not callable (so a configuration error surfaces at start-up).
    """
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise LocalProtocolError(f"routing hook {spec!r} is not 'module:function'")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            path = Path(module_name)
            name = f"sipwire_hook_{path.stem}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            if mod_spec is None or mod_spec.loader is None:
                raise LocalProtocolError(f"routing hook: cannot load {module_name!r}")
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except LocalProtocolError:
        raise
    except Exception as exc:
        raise LocalProtocolError(f"routing hook: cannot import {module_name!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise LocalProtocolError(f"routing hook: {module_name!r} has no function {func_name!r}")
    hook: RoutingHook = func
    return hook


async def call_hook(
    hook: RoutingHook, request: Request, context: RoutingContext
) -> Decision | None:
    """Run ``hook`` (sync or async) and check that it returned a decision or None."""
    result = hook(request, context)
    if inspect.isawaitable(result):
        result = await result
    if result is None or isinstance(result, Relay | Redirect | Reject):
        return result
    raise LocalProtocolError(
        f"routing hook returned {type(result).__name__}; expected Relay, Redirect, Reject or None"
    )
