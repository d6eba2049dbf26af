"""Who must authenticate, and how: the authentication policy of ``sipwire serve``
(RFC 3261 §22, RFC 7616, RFC 8760), with user-enumeration and brute-force defences.

:class:`Authenticator` decides for each request whether it needs Digest credentials,
challenges it (401 + WWW-Authenticate for REGISTER to a domain we serve, 407 +
Proxy-Authenticate for requests we relay, RFC 3261 §22.1/§22.3), verifies the answer
against the HA1s of a :class:`~sipwire.store.UserStore` (one realm per domain) and enforces
the relay policy. The Digest mechanics (stateless nonces, the nonce-count replay table,
constant-work verification) are :class:`sipwire.core.digest.DigestServer`'s.

Policy (:class:`AuthPolicy`; docs/auth.md has the operator's view):

* A REGISTER for an address-of-record of one of our domains must authenticate as that
  AOR's user (alice cannot register bob: 403).
* A request From one of our domains (a local user calling out, messaging, subscribing)
  must authenticate as the From user (407), whatever its destination.
* A request From elsewhere to one of our domains (an inbound call) needs no credentials;
  from elsewhere to elsewhere is refused with 403: sipwire is never an open relay.
* ACK and CANCEL are never challenged: they cannot be resubmitted (RFC 3261 §22.1).
* In-dialog requests (To tag and a Route header: loose-routed through our Record-Route)
  are not challenged unless :attr:`AuthPolicy.challenge_in_dialog`.
* Sources in :attr:`AuthPolicy.trusted` networks skip authentication and may relay;
  :attr:`AuthPolicy.no_auth` switches every check off (benchmarks, closed networks).

Algorithms: SHA-256 then MD5 by default, most preferred first (RFC 8760 §2.3). User agents
whose User-Agent contains one of :attr:`AuthPolicy.md5_only_user_agents` (default
``baresip`` and ``sipp``, case-insensitive) are offered MD5 alone: baresip 1.0.0 fails
with "Function not implemented" when any challenge names SHA-256, and SIPp 3.6.1 aborts
unless the topmost challenge is MD5 (both against RFC 8760 §2.4; tests/test_digest.py).

User enumeration (RFC 7616 §5.7): an unknown user and a known user with a wrong password
get byte-identical answers apart from the nonce, after the same hashing work (the
DigestServer verifies unknown users against a dummy HA1), and count the same way towards
the brute-force limits below.

Brute force (:class:`FailureGuard`, settings in :class:`GuardConfig`): only *verified
wrong answers* count (not missing credentials, not stale nonces, not replays), per
(source, username) and per source (an IPv6 source is its /64), in bounded tables whose
scores decay. An identical re-sent answer (same nonce and response) counts once. After a
counted failure, the same flow (source address, port, username) is not verified again for
:attr:`GuardConfig.retry_cooldown` seconds: its answers are refused as wrong without being
checked, so a guesser gets one guess per cooldown, while a phone that re-sends a wrong
answer many times within milliseconds (baresip does 15) costs one failure and, restarted
with the right password, gets in at once. Too many failures ban the (source, username)
pair, or the whole source: every answer is refused with 403, unverified, for 10 s, then 20,
40, capped at 60 s while failures continue; a success resets the pair.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.digest import (
    Algorithm,
    Credentials,
    DigestResult,
    DigestServer,
    Verification,
)
from sipwire.core.message import Request
from sipwire.core.uri import SipURI
from sipwire.store import StoreError, UserStore

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MD5_ONLY_USER_AGENTS",
    "AuthOutcome",
    "AuthPolicy",
    "Authenticator",
    "FailureGuard",
    "GuardConfig",
    "GuardVerdict",
    "IPNetwork",
    "normalize_domain",
    "source_key",
]

_log = logging.getLogger("sipwire.auth")

#: Offered algorithms, most preferred first (RFC 8760 §2.3).
DEFAULT_ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")
#: User-Agent substrings (case-insensitive) of peers that must be offered MD5 alone.
DEFAULT_MD5_ONLY_USER_AGENTS: tuple[str, ...] = ("baresip", "sipp")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_K = TypeVar("_K")

# ----------------------------------------------------------------------------------------
# Small helpers


def normalize_domain(text: str) -> str:
    """The canonical spelling of a domain we serve, which is also its Digest realm and the
    ``domain`` of its :class:`~sipwire.store.UserRecord`: lower case; an IPv6 address in
    brackets and compressed (``[2001:db8::1]``). ``sipwire user`` and ``sipwire serve``
    both use it, so the HA1s match the realm of the challenges."""
    host = text.strip()
    if not host:
        raise LocalProtocolError("empty domain")
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in inner:
        try:
            return f"[{ipaddress.IPv6Address(inner).compressed}]"
        except ValueError as exc:
            raise LocalProtocolError(f"bad domain {text!r}") from exc
    if any(c in host for c in " \t\r\n@/<>\"'") or host.startswith("["):
        raise LocalProtocolError(f"bad domain {text!r}")
    return host.lower()


def _host_key(host: str) -> str:
    """A URI host in the spelling of :func:`normalize_domain` (never raises)."""
    try:
        return normalize_domain(host)
    except LocalProtocolError:
        return host.lower()


def source_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The key a source address is counted under: an IPv4 address as is (IPv4-mapped IPv6
    addresses too), an IPv6 address as its ``/ipv6_prefix`` network (one host usually holds
    a whole /64), anything unparsable as written."""
    try:
        addr = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))
    return str(addr)


class _SourceLike(Protocol):
    @property
    def remote(self) -> tuple[str, int]: ...


class _TransactionLike(Protocol):
    """What :class:`Authenticator` needs of :class:`sipwire.aio.endpoint.ServerTransaction`."""

    @property
    def source(self) -> _SourceLike: ...

    async def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> object: ...


# ----------------------------------------------------------------------------------------
# Brute-force guard


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardConfig:
    """Brute-force limits (defaults in parentheses).

    * ``max_failures`` (5): counted failures of one (source, username) pair that ban it.
    * ``max_failures_per_source`` (20): counted failures of one source, any usernames,
      that ban the source (password spraying).
    * ``failure_decay`` (60 s): one counted failure is forgiven per this many seconds.
    * ``ban_initial`` (10 s) and ``ban_max`` (60 s): a ban lasts ``ban_initial``, doubling
      for each further ban while failures continue, capped at ``ban_max``.
    * ``retry_cooldown`` (1 s): after a counted failure, answers from the same flow
      (address, port, username) are refused as wrong without being verified; 0 disables.
    * ``max_entries`` (10,000): size of each table (pairs, sources, flows), least
      recently used dropped first.
    * ``ipv6_prefix`` (64): IPv6 sources are counted per network of this length.
    * ``remember_answers`` (16): fingerprints of failed (nonce, response) pairs kept per
      pair to spot identical re-sent answers (8 bytes each, not the text).
    """

    max_failures: int = 5
    max_failures_per_source: int = 20
    failure_decay: float = 60.0
    ban_initial: float = 10.0
    ban_max: float = 60.0
    retry_cooldown: float = 1.0
    max_entries: int = 10_000
    ipv6_prefix: int = 64
    remember_answers: int = 16

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_failures_per_source < 1:
            raise LocalProtocolError("failure limits must be at least 1")
        if self.failure_decay <= 0 or self.ban_initial <= 0 or self.ban_max < self.ban_initial:
            raise LocalProtocolError("need failure_decay > 0 and 0 < ban_initial <= ban_max")
        if self.retry_cooldown < 0:
            raise LocalProtocolError("retry_cooldown must not be negative")
        if self.max_entries < 1 or self.remember_answers < 1:
            raise LocalProtocolError("max_entries and remember_answers must be at least 1")
        if not 0 <= self.ipv6_prefix <= 128:
            raise LocalProtocolError("ipv6_prefix must be 0..128")


class GuardVerdict(enum.Enum):
    """What :meth:`FailureGuard.begin` allows for one credentials attempt."""

    VERIFY = "verify"  # check the answer
    COOLDOWN = "cooldown"  # refuse as a wrong answer, unverified, uncounted
    BANNED = "banned"  # refuse with 403, unverified, uncounted


@dataclass(slots=True)
class _Score:
    """A decaying failure count with its ban state."""

    score: float = 0.0
    updated: float = 0.0
    strikes: int = 0
    banned_until: float = float("-inf")
    pending: int = 0
    answers: deque[int] = field(default_factory=deque)  # hash((nonce, response))

    def decay(self, now: float, per_failure: float) -> None:
        if now > self.updated:
            self.score = max(0.0, self.score - (now - self.updated) / per_failure)
            self.updated = now
        if self.score == 0.0 and self.banned_until <= now:
            self.strikes = 0

    def idle(self, now: float) -> bool:
        return self.score == 0.0 and self.banned_until <= now and self.pending == 0


class FailureGuard:
    """Counts wrong Digest answers and bans guessers; pure, ``now`` is an argument.

    For each attempt: :meth:`begin` (which reserves a slot, so concurrent attempts cannot
    all slip under the limit), then exactly one of :meth:`failure`, :meth:`success` or
    :meth:`release`. :meth:`is_repeat` spots an identical re-sent answer.
    """

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self._pairs: OrderedDict[tuple[str, str], _Score] = OrderedDict()
        self._sources: OrderedDict[str, _Score] = OrderedDict()
        self._flows: OrderedDict[tuple[str, int, str], float] = OrderedDict()

    # -- tables ----------------------------------------------------------------------------

    def _get(self, table: OrderedDict[_K, _Score], key: _K, now: float, create: bool) -> _Score:
        entry = table.get(key)
        if entry is None:
            entry = _Score(updated=now)
            if create:
                table[key] = entry
                while len(table) > self.config.max_entries:
                    table.popitem(last=False)
            return entry
        table.move_to_end(key)
        entry.decay(now, self.config.failure_decay)
        return entry

    def _tidy(self, table: OrderedDict[_K, _Score], key: _K, now: float) -> None:
        entry = table.get(key)
        if entry is not None and entry.idle(now) and not entry.answers:
            del table[key]

    def key(self, ip: str) -> str:
        return source_key(ip, self.config.ipv6_prefix)

    def __len__(self) -> int:
        return len(self._pairs) + len(self._sources) + len(self._flows)

    # -- queries ---------------------------------------------------------------------------

    def banned_until(self, ip: str, username: str | None, now: float) -> float | None:
        """When the ban on ``username`` from ``ip`` (or on ``ip`` as a whole) ends, or None."""
        src = self.key(ip)
        until = float("-inf")
        source = self._sources.get(src)
        if source is not None:
            until = source.banned_until
        if username is not None:
            pair = self._pairs.get((src, username))
            if pair is not None:
                until = max(until, pair.banned_until)
        return until if until > now else None

    def is_repeat(self, ip: str, username: str, answer: tuple[str, str]) -> bool:
        """True when this exact (nonce, response) already failed for this pair."""
        pair = self._pairs.get((self.key(ip), username))
        return pair is not None and hash(answer) in pair.answers

    # -- one attempt -----------------------------------------------------------------------

    def begin(self, ip: str, port: int, username: str, now: float) -> GuardVerdict:
        """May the answer of ``username`` from ``ip:port`` be verified now?"""
        cfg = self.config
        src = self.key(ip)
        pair = self._get(self._pairs, (src, username), now, create=False)
        source = self._get(self._sources, src, now, create=False)
        if pair.banned_until > now or source.banned_until > now:
            return GuardVerdict.BANNED
        flow = (ip, port, username)
        until = self._flows.get(flow)
        if until is not None:
            if until > now:
                return GuardVerdict.COOLDOWN
            del self._flows[flow]
        # Attempts in flight could all fail: never verify more at once than the failures
        # still allowed (after a ban, one at a time).
        if (pair.pending or source.pending) and (
            pair.score + pair.pending > cfg.max_failures - 1
            or source.score + source.pending > cfg.max_failures_per_source - 1
        ):
            return GuardVerdict.COOLDOWN
        pair = self._get(self._pairs, (src, username), now, create=True)
        source = self._get(self._sources, src, now, create=True)
        pair.pending += 1
        source.pending += 1
        return GuardVerdict.VERIFY

    def _end(self, src: str, username: str, now: float) -> tuple[_Score, _Score]:
        pair = self._get(self._pairs, (src, username), now, create=True)
        source = self._get(self._sources, src, now, create=True)
        pair.pending = max(0, pair.pending - 1)
        source.pending = max(0, source.pending - 1)
        return pair, source

    def release(self, ip: str, username: str, now: float) -> None:
        """End an attempt that was neither a failure nor a success (stale, malformed...)."""
        src = self.key(ip)
        self._end(src, username, now)
        self._tidy(self._pairs, (src, username), now)
        self._tidy(self._sources, src, now)

    def success(self, ip: str, port: int, username: str, now: float) -> None:
        """The right password: forget the pair's failures (the source's decay on their own)."""
        src = self.key(ip)
        self._end(src, username, now)
        self._pairs.pop((src, username), None)
        self._flows.pop((ip, port, username), None)
        self._tidy(self._sources, src, now)

    def failure(
        self, ip: str, port: int, username: str, answer: tuple[str, str], now: float
    ) -> bool:
        """Count a verified wrong answer; True if it started a ban."""
        cfg = self.config
        src = self.key(ip)
        pair, source = self._end(src, username, now)
        pair.answers.append(hash(answer))
        while len(pair.answers) > cfg.remember_answers:
            pair.answers.popleft()
        banned = False
        for entry, limit in ((pair, cfg.max_failures), (source, cfg.max_failures_per_source)):
            entry.score += 1.0
            # The limit-th failure in a row bans, even if the earlier ones decayed a little.
            if entry.score > limit - 1 and entry.banned_until <= now:
                entry.strikes += 1
                length = min(cfg.ban_max, cfg.ban_initial * 2.0 ** (entry.strikes - 1))
                entry.banned_until = now + length
                banned = True
        if cfg.retry_cooldown > 0:
            flow = (ip, port, username)
            self._flows[flow] = now + cfg.retry_cooldown
            self._flows.move_to_end(flow)
            while len(self._flows) > cfg.max_entries:
                self._flows.popitem(last=False)
        return banned


# ----------------------------------------------------------------------------------------
# Policy and outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthPolicy:
    """Who must authenticate (see the module docstring); defaults in parentheses.

    * ``no_auth`` (False): no authentication and no relay check at all.
    * ``trusted`` (()): networks (``ipaddress`` objects or text such as ``"10.0.0.0/8"``)
      whose requests skip authentication and may relay.
    * ``algorithms`` (SHA-256, MD5): offered, most preferred first (RFC 8760 §2.3).
    * ``md5_only_user_agents`` (baresip, sipp): User-Agent substrings (case-insensitive)
      offered MD5 alone.
    * ``nonce_lifetime`` (300 s): after it a right answer gets ``stale=true``.
    * ``allow_rfc2069`` (True): accept credentials without qop (RFC 3261 §22.4).
    * ``challenge_in_dialog`` (False): challenge in-dialog requests of local users too.
    * ``check_from_identity`` (True): a relayed request's From user must be the
      authenticated user (403 otherwise).
    * ``guard``: the brute-force limits, :class:`GuardConfig`.
    """

    no_auth: bool = False
    trusted: Sequence[IPNetwork | str] = ()
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS
    md5_only_user_agents: Sequence[str] = DEFAULT_MD5_ONLY_USER_AGENTS
    nonce_lifetime: float = 300.0
    allow_rfc2069: bool = True
    challenge_in_dialog: bool = False
    check_from_identity: bool = True
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        networks: list[IPNetwork] = []
        for net in self.trusted:
            try:
                networks.append(
                    net if not isinstance(net, str) else ipaddress.ip_network(net, strict=False)
                )
            except ValueError as exc:
                raise LocalProtocolError(f"bad trusted network {net!r}: {exc}") from exc
        object.__setattr__(self, "trusted", tuple(networks))
        algorithms: list[Algorithm] = []
        for name in self.algorithms:
            algorithm = Algorithm.from_token(name)
            if algorithm is None:
                raise LocalProtocolError(f"unknown digest algorithm {name!r}")
            algorithms.append(algorithm)
        if not algorithms or len(set(algorithms)) != len(algorithms):
            raise LocalProtocolError("algorithms must be non-empty and distinct")
        object.__setattr__(self, "algorithms", tuple(a.value for a in algorithms))
        object.__setattr__(
            self, "md5_only_user_agents", tuple(s.lower() for s in self.md5_only_user_agents if s)
        )

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(n for n in self.trusted if not isinstance(n, str))

    @property
    def digest_algorithms(self) -> tuple[Algorithm, ...]:
        return tuple(a for a in map(Algorithm.from_token, self.algorithms) if a is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthOutcome:
    """The decision on one request.

    ``accepted``: go on processing it. Otherwise ``status``/``reason``/``headers`` is the
    response to send (401/407 with challenges, 403, 400, 500) and :meth:`Authenticator.
    authenticate` has sent it. ``identity`` is the authenticated username (None when the
    request was let through without authentication), ``realm`` its domain, ``aor`` the
    address-of-record of a REGISTER. ``why`` and ``result`` are for logs only.
    """

    accepted: bool
    identity: str | None = None
    realm: str | None = None
    aor: str | None = None
    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    why: str = ""
    result: DigestResult | None = None

    @property
    def authenticated(self) -> bool:
        return self.identity is not None


def _accept(
    why: str, *, identity: str | None = None, realm: str | None = None, aor: str | None = None
) -> AuthOutcome:
    return AuthOutcome(accepted=True, why=why, identity=identity, realm=realm, aor=aor)


def _reject(
    status: int,
    reason: str,
    why: str,
    *,
    identity: str | None = None,
    realm: str | None = None,
    aor: str | None = None,
    result: DigestResult | None = None,
) -> AuthOutcome:
    return AuthOutcome(
        accepted=False,
        status=status,
        reason=reason,
        why=why,
        identity=identity,
        realm=realm,
        aor=aor,
        result=result,
    )


_NEVER_CHALLENGED = frozenset({"ACK", "CANCEL"})
_FORBIDDEN = "Forbidden"


# ----------------------------------------------------------------------------------------
# The authenticator


class Authenticator:
    """The authentication policy of a server serving ``domains`` (each its own realm).

    ``users`` holds the HA1s (``UserRecord.domain`` = the realm); ``clock`` gives the
    seconds used for nonces and the brute-force tables (wall clock by default, so several
    processes sharing ``secret`` accept each other's nonces); ``secret`` is the nonce HMAC
    key (random when None); ``random`` supplies salt bytes (tests make it deterministic).
    ``host_aliases(host)`` (optional) says whether a host that is not one of ``domains``
    also names the server (its own IP addresses and names): users at such a host belong to
    the first, primary domain (``sip:alice@192.0.2.1`` authenticates as alice of it).

    Entry points (``tx`` is a :class:`~sipwire.aio.endpoint.ServerTransaction`):

    * ``await authorize(request, tx) -> bool`` for the proxy: False once it has answered
      (407 challenge, 403, 400); :meth:`authenticate` with ``proxy=True`` returns the full
      :class:`AuthOutcome` (the identity) instead.
    * ``await authenticate_register(request, tx) -> str | None`` for the registrar: the
      address-of-record the REGISTER may change, or None once it has answered.
    * ``await check(request, source, proxy=...)`` decides without answering.
    * ``is_relay_allowed(request, authenticated, source)``, the open-relay rule alone.
    """

    def __init__(
        self,
        users: UserStore,
        *,
        domains: Sequence[str],
        policy: AuthPolicy | None = None,
        clock: Callable[[], float] = time.time,
        secret: bytes | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
        host_aliases: Callable[[str], bool] | None = None,
    ) -> None:
        self.users = users
        self.host_aliases = host_aliases
        self.policy = policy or AuthPolicy()
        self.domains = tuple(dict.fromkeys(normalize_domain(d) for d in domains))
        if not self.domains:
            raise LocalProtocolError("an Authenticator needs at least one domain")
        self._clock = clock
        key = secret if secret is not None else random(32)
        algorithms = self.policy.digest_algorithms
        self.servers: dict[str, DigestServer] = {
            realm: DigestServer(
                realm,
                secret=key,
                random=random,
                algorithms=algorithms,
                nonce_lifetime=self.policy.nonce_lifetime,
                allow_rfc2069=self.policy.allow_rfc2069,
            )
            for realm in self.domains
        }
        self._md5_offer: tuple[Algorithm, ...] | None = (
            (Algorithm.MD5,) if Algorithm.MD5 in algorithms else None
        )
        self.guard = FailureGuard(self.policy.guard)

    # -- classification --------------------------------------------------------------------

    def local_domain(self, host: str | None) -> str | None:
        """The realm of ``host`` if we serve it (one of ``domains``, or an alias of the
        primary domain), else None."""
        if host is None:
            return None
        key = _host_key(host)
        if key in self.servers:
            return key
        if self.host_aliases is not None and self.host_aliases(host):
            return self.domains[0]
        return None

    def is_trusted(self, source: _SourceLike) -> bool:
        """True when the source address is in a trusted network."""
        if not self.policy.trusted_networks:
            return False
        try:
            addr = ipaddress.ip_address(source.remote[0].strip("[]").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.policy.trusted_networks)

    def _uri_domain(self, uri: object) -> str | None:
        return self.local_domain(uri.host) if isinstance(uri, SipURI) else None

    @staticmethod
    def is_in_dialog(request: Request) -> bool:
        """A To tag and a Route header: a mid-dialog request loose-routed through us."""
        try:
            return request.to.tag is not None and "Route" in request.headers
        except RemoteProtocolError:
            return False

    def is_relay_allowed(self, request: Request, authenticated: bool, source: _SourceLike) -> bool:
        """May a proxy forward ``request``? Yes if it goes to one of our domains, comes
        from an authenticated local user or a trusted source, is in-dialog (the proxy must
        only follow a Route it record-routed), or authentication is off. A request from
        outside to outside is refused: sipwire is never an open relay."""
        if self.policy.no_auth or authenticated or self.is_trusted(source):
            return True
        if self.is_in_dialog(request):
            return True
        try:
            return self._uri_domain(request.uri) is not None
        except RemoteProtocolError:
            return False

    def offer_for(self, request: Request) -> tuple[Algorithm, ...] | None:
        """The algorithms to challenge ``request`` with (None: all configured ones)."""
        quirks = self.policy.md5_only_user_agents
        if not quirks or self._md5_offer is None:
            return None
        agent = (request.headers.get("User-Agent") or "").lower()
        if agent and any(q in agent for q in quirks):
            return self._md5_offer
        return None

    # -- decisions -------------------------------------------------------------------------

    async def check(self, request: Request, source: _SourceLike, *, proxy: bool) -> AuthOutcome:
        """Decide on ``request`` without answering it. ``proxy=False`` for a REGISTER the
        registrar handles (401/WWW-Authenticate), True for requests the proxy relays or
        answers itself (407/Proxy-Authenticate)."""
        try:
            if proxy:
                return await self._check_proxy(request, source)
            return await self._check_register(request, source)
        except RemoteProtocolError as exc:
            status = exc.status_hint if exc.status_hint >= 400 else 400
            # Peer text in a reason phrase: printable characters only, bounded.
            reason = "".join(c if c.isprintable() else " " for c in exc.reason)[:120]
            return _reject(status, reason or "Bad Request", f"unreadable request: {exc.reason}")

    async def _check_register(self, request: Request, source: _SourceLike) -> AuthOutcome:
        to = request.to.uri
        if not isinstance(to, SipURI) or to.user is None:
            return _reject(400, "To of a REGISTER needs a SIP user", "no SIP user in To")
        aor = to.aor()
        if self.policy.no_auth:
            return _accept("authentication off", aor=aor)
        realm = self.local_domain(to.host)
        if realm is None:
            return _reject(403, "Domain not served here", f"REGISTER for {to.host!r}", aor=aor)
        if self.is_trusted(source):
            return _accept("trusted", realm=realm, aor=aor)
        outcome = await self._digest(request, source, realm=realm, proxy=False)
        if not outcome.accepted:
            return dataclasses.replace(outcome, aor=aor)
        owner = to.user_unescaped
        if outcome.identity != owner:
            _log.info(
                "auth: %s authenticated as %r may not register %s",
                source.remote[0],
                outcome.identity,
                aor,
            )
            return _reject(
                403,
                _FORBIDDEN,
                f"{outcome.identity!r} may not register {aor}",
                identity=outcome.identity,
                realm=realm,
                aor=aor,
            )
        return _accept("authenticated", identity=outcome.identity, realm=realm, aor=aor)

    async def _check_proxy(self, request: Request, source: _SourceLike) -> AuthOutcome:
        method = request.method.upper()
        if method in _NEVER_CHALLENGED:
            return _accept(f"{method} is never challenged (RFC 3261 §22.1)")
        if self.policy.no_auth:
            return _accept("authentication off")
        if self.is_trusted(source):
            return _accept("trusted")
        in_dialog = self.is_in_dialog(request)
        if in_dialog and not self.policy.challenge_in_dialog:
            return _accept("in-dialog")
        sender = request.from_.uri
        realm = self._uri_domain(sender)
        if realm is None:
            # From elsewhere: welcome when it is for us, refused otherwise (no open relay).
            if in_dialog or self._uri_domain(request.uri) is not None:
                return _accept("from outside to a local domain")
            return _reject(403, "Relaying denied", "from outside to outside")
        outcome = await self._digest(request, source, realm=realm, proxy=True)
        if not outcome.accepted:
            return outcome
        assert isinstance(sender, SipURI)
        if self.policy.check_from_identity and outcome.identity != sender.user_unescaped:
            _log.info(
                "auth: %s authenticated as %r may not send From %s",
                source.remote[0],
                outcome.identity,
                sender.aor(),
            )
            return _reject(
                403,
                _FORBIDDEN,
                f"{outcome.identity!r} may not use From {sender.aor()}",
                identity=outcome.identity,
                realm=realm,
            )
        return outcome

    async def _digest(
        self, request: Request, source: _SourceLike, *, realm: str, proxy: bool
    ) -> AuthOutcome:
        """Challenge, or verify the credentials for ``realm`` (RFC 3261 §22.3, §22.4)."""
        server = self.servers[realm]
        header = "Proxy-Authorization" if proxy else "Authorization"
        try:
            creds = server.select(request.headers.get_all(header))
        except RemoteProtocolError as exc:
            return _reject(400, "Malformed credentials", exc.reason, realm=realm)
        now = self._clock()
        if creds is None:
            return self._challenge(request, server, proxy=proxy, now=now, why="no credentials")
        ip, port = source.remote[0], source.remote[1]
        username = creds.username or ""
        answer = (creds.nonce or "", (creds.response or "").lower())
        if self.guard.banned_until(ip, username, now) is not None:
            _log.info("auth: refused %r from %s (banned)", username, ip)
            return _reject(403, _FORBIDDEN, "banned", realm=realm)
        if self.guard.is_repeat(ip, username, answer):
            # The same wrong answer again (a retransmission or a re-sent request): counted once.
            return self._challenge(request, server, proxy=proxy, now=now, why="repeated answer")
        verdict = self.guard.begin(ip, port, username, now)
        if verdict is GuardVerdict.BANNED:  # pragma: no cover - checked just above
            return _reject(403, _FORBIDDEN, "banned", realm=realm)
        if verdict is GuardVerdict.COOLDOWN:
            return self._challenge(request, server, proxy=proxy, now=now, why="cooling down")
        try:
            verification = await self._verify(request, server, creds, realm=realm, now=now)
        except StoreError as exc:
            self.guard.release(ip, username, now)
            _log.error("auth: user store failed: %s", exc)
            return _reject(500, "User database unavailable", str(exc), realm=realm)
        except BaseException:
            self.guard.release(ip, username, now)
            raise
        result = verification.result
        if verification.ok:
            self.guard.success(ip, port, username, now)
            return _accept("authenticated", identity=username, realm=realm)
        if result in (DigestResult.BAD_RESPONSE, DigestResult.UNKNOWN_USER):
            banned = self.guard.failure(ip, port, username, answer, now)
            _log.info(
                "auth: failure for %r in %s from %s:%s (%s)%s",
                username,
                realm,
                ip,
                port,
                result.value,
                "; banned" if banned else "",
            )
        else:
            self.guard.release(ip, username, now)
        if not verification.rechallenge:
            # MALFORMED / URI_MISMATCH: the same for every user, so safe to say so.
            return _reject(
                400, "Malformed credentials", verification.reason, realm=realm, result=result
            )
        return self._challenge(
            request,
            server,
            proxy=proxy,
            now=now,
            stale=verification.stale,
            why=verification.reason,
            result=result,
        )

    async def _verify(
        self, request: Request, server: DigestServer, creds: Credentials, *, realm: str, now: float
    ) -> Verification:
        key = server.ha1_key(creds)
        ha1: str | None = None
        if key is not None and not key.userhash:
            record = await self.users.get_user(key.username, realm)
            if record is not None:
                ha1 = record.ha1.get(key.algorithm.value)
                if ha1 is None:
                    _log.warning(
                        "auth: user %r in %s has no %s HA1 (re-add it with `sipwire user add`)",
                        key.username,
                        realm,
                        key.algorithm.value,
                    )
        return server.verify(
            creds,
            ha1=ha1,
            method=request.method,
            now=now,
            body=request.body,
            request_uri=request.uri_text,
        )

    def _challenge(
        self,
        request: Request,
        server: DigestServer,
        *,
        proxy: bool,
        now: float,
        why: str,
        stale: bool = False,
        result: DigestResult | None = None,
    ) -> AuthOutcome:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = server.challenges(now, stale=stale, algorithms=self.offer_for(request))
        return AuthOutcome(
            accepted=False,
            status=407 if proxy else 401,
            reason="Proxy Authentication Required" if proxy else "Unauthorized",
            headers=tuple((name, str(c)) for c in challenges),
            realm=server.realm,
            why=why,
            result=result,
        )

    # -- answering -------------------------------------------------------------------------

    @staticmethod
    async def respond(tx: _TransactionLike, outcome: AuthOutcome) -> None:
        """Send the response of a refused ``outcome`` on ``tx`` (nothing if accepted)."""
        if outcome.accepted or outcome.status is None:
            return
        await tx.respond(outcome.status, outcome.reason, headers=outcome.headers)

    async def authenticate(
        self, request: Request, tx: _TransactionLike, *, proxy: bool
    ) -> AuthOutcome:
        """:meth:`check`, then answer a refusal on ``tx``; returns the outcome."""
        outcome = await self.check(request, tx.source, proxy=proxy)
        await self.respond(tx, outcome)
        return outcome

    async def authorize(self, request: Request, tx: _TransactionLike) -> bool:
        """For the proxy: True to go on; False once it has answered (407, 403, 400, 500).
        Includes the relay rule (403 from outside to outside)."""
        return (await self.authenticate(request, tx, proxy=True)).accepted

    async def authenticate_register(self, request: Request, tx: _TransactionLike) -> str | None:
        """For the registrar: the address-of-record (``sip:user@domain``, as
        :func:`sipwire.apps.registrar.aor_of` spells it) this REGISTER may change, or None
        once it has answered (401, 403, 400, 500)."""
        outcome = await self.authenticate(request, tx, proxy=False)
        return outcome.aor if outcome.accepted else None
