"""The server side of Digest authentication: stateless nonces, a bounded nonce-count replay
table, challenges and credential verification (RFC 3261 §22.1-§22.4, RFC 7616 §3.3-§3.6 and
§5, RFC 8760 §2.3).

Sans-IO: the caller supplies ``now`` and looks the user's HA1 up itself (an async store is
fine), then hands it to :meth:`DigestServer.verify`::

    creds = server.select(request.headers.get_all("Authorization"))
    if creds is None:
        -> 401 with server.challenges(now)
    key = server.ha1_key(creds)                     # (username, realm, algorithm) to fetch
    record = await users.get_user(key.username, domain) if key else None
    ha1 = record.ha1.get(key.algorithm.value) if record and key else None
    v = server.verify(creds, ha1=ha1, method=request.method, body=request.body, now=now)
    v.ok -> accept; v.rechallenge -> 401/407 with server.challenges(now, stale=v.stale);
    otherwise (MALFORMED, URI_MISMATCH) -> 400.

``UNKNOWN_USER`` and ``BAD_RESPONSE`` give the peer exactly the same answer (a fresh,
non-stale challenge) and cost the same hashing, so a scanner cannot enumerate users
(RFC 7616 §5.7); the server still sees which one happened, for its logs.

Servers MUST NOT challenge ACK or CANCEL (RFC 3261 §22.1). An ACK repeats its INVITE's
credentials (ibid.), so for ``method="ACK"`` :meth:`DigestServer.verify` checks the response
as computed for INVITE and does not count the (repeated) nonce-count.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import math
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sipwire.core._digest_algo import Algorithm, compute_response, rspauth
from sipwire.core._digest_parse import AuthenticationInfo, Challenge, Credentials
from sipwire.core._errors import LocalProtocolError

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "DEFAULT_NC_TABLE_SIZE",
    "DEFAULT_NONCE_LIFETIME",
    "DigestResult",
    "DigestServer",
    "HA1Key",
    "NonceCountTable",
    "NonceStatus",
    "Verification",
    "same_uri_text",
]

#: Seconds a nonce stays fresh; afterwards a correct response earns ``stale=true``.
DEFAULT_NONCE_LIFETIME = 300.0
#: Nonces whose nonce-count is remembered (LRU). Each entry is ~200 bytes.
DEFAULT_NC_TABLE_SIZE = 10_000
#: A nonce stamped later than ``now`` by more than this is not ours (clock skew between
#: processes sharing a secret).
DEFAULT_FUTURE_TOLERANCE = 5.0

_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_TS = struct.Struct(">d")
_SALT_LEN = 8
_MAC_LEN = 16
_MAC_LABEL = b"sipwire digest nonce v1\x00"


class NonceStatus(enum.Enum):
    """What :meth:`DigestServer.nonce_status` found."""

    VALID = "valid"
    EXPIRED = "expired"  # ours, but older than the lifetime
    INVALID = "invalid"  # not minted by us with this secret, realm and client address


class DigestResult(enum.Enum):
    """The outcome of :meth:`DigestServer.verify`, for the server (logging, policy).

    The peer must only learn "accepted", "stale" or "try again": UNKNOWN_USER and
    BAD_RESPONSE look the same from outside (RFC 7616 §5.7).
    """

    OK = "ok"
    #: The response was right but the nonce expired, is not ours, or was forgotten:
    #: challenge again with ``stale=true`` (RFC 7616 §3.3, §3.6).
    STALE = "stale"
    #: Right response, but the nonce-count did not increase: a replay (RFC 7616 §5.5).
    REPLAY = "replay"
    #: Known user, wrong response: a wrong password (or an attacker guessing one).
    BAD_RESPONSE = "bad-response"
    #: No HA1 for this user and algorithm.
    UNKNOWN_USER = "unknown-user"
    #: ``uri=`` differs from the Request-URI and the configured policy refuses it
    #: (RFC 3261 §22.4 item 6 makes that check optional).
    URI_MISMATCH = "uri-mismatch"
    #: Empty ``nonce``/``response`` placeholders sent before any challenge (RFC 8760 §2.7).
    NOT_ANSWERED = "not-answered"
    #: Missing or improper parameters: answer 400 (RFC 7616 §3.4).
    MALFORMED = "malformed"


class HA1Key(NamedTuple):
    """What to look up before :meth:`DigestServer.verify`: the stored HA1 of ``username`` in
    ``realm`` for ``algorithm`` (always a base algorithm, whose ``value`` keys
    ``UserRecord.ha1``). With ``userhash`` the username is ``H(user ":" realm)``
    (RFC 7616 §3.4.4) and the caller maps it back."""

    username: str
    realm: str
    algorithm: Algorithm
    userhash: bool


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of :meth:`DigestServer.verify`. ``reason`` is for server logs only."""

    result: DigestResult
    reason: str
    credentials: Credentials
    username: str | None = None
    algorithm: Algorithm | None = None

    @property
    def ok(self) -> bool:
        return self.result is DigestResult.OK

    @property
    def stale(self) -> bool:
        """Answer with ``stale=true``: the client knows the password, only the nonce failed."""
        return self.result in (DigestResult.STALE, DigestResult.REPLAY)

    @property
    def rechallenge(self) -> bool:
        """Answer 401/407 with fresh challenges (as opposed to OK, or 400 for MALFORMED and
        URI_MISMATCH)."""
        return self.result not in (
            DigestResult.OK,
            DigestResult.MALFORMED,
            DigestResult.URI_MISMATCH,
        )


class NonceCountTable:
    """The nonce-count replay table (RFC 7616 §5.5): for each nonce, the highest ``nc``
    accepted; a new request must carry a strictly higher one.

    Bounded: at most ``max_size`` nonces (default :data:`DEFAULT_NC_TABLE_SIZE`), least
    recently used evicted first. A forgotten nonce could be replayed, so the table keeps a
    watermark, the newest issue time of any evicted nonce that had not yet expired; a nonce
    issued at or before the watermark that is not in the table is refused as "forgotten"
    (the server answers ``stale=true`` and the client simply retries with a new nonce).
    Nonces issued after the watermark may start at any nc (a client may skip values, and
    another process sharing the secret may have counted the earlier ones).
    """

    __slots__ = ("_entries", "_watermark", "max_size")

    def __init__(self, max_size: int = DEFAULT_NC_TABLE_SIZE) -> None:
        if max_size < 1:
            raise LocalProtocolError("the nonce-count table needs room for one nonce")
        self.max_size = max_size
        self._entries: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._watermark = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def watermark(self) -> float:
        """Newest issue time of an evicted, unexpired nonce (``-inf`` before any)."""
        return self._watermark

    def check(self, nonce: str, issued: float, nc: int, *, now: float, lifetime: float) -> str:
        """Record ``nc`` for ``nonce``; return ``"ok"``, ``"replay"`` or ``"forgotten"``."""
        entry = self._entries.get(nonce)
        if entry is None:
            if issued <= self._watermark:
                return "forgotten"
            while len(self._entries) >= self.max_size:
                _, (old_issued, _old_nc) = self._entries.popitem(last=False)
                if old_issued + lifetime >= now:
                    self._watermark = max(self._watermark, old_issued)
            if issued <= self._watermark:
                # Evicting made room by forgetting a nonce issued no earlier than this one.
                return "forgotten"
            self._entries[nonce] = (issued, nc)
            return "ok"
        if nc <= entry[1]:
            self._entries.move_to_end(nonce)
            return "replay"
        self._entries[nonce] = (issued, nc)
        self._entries.move_to_end(nonce)
        return "ok"


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class DigestServer:
    """Challenges and verifies Digest credentials for one realm (RFC 3261 §22, RFC 8760).

    Nonces are stateless (RFC 7616 §3.3)::

        nonce = base64url(timestamp || salt || HMAC-SHA-256(secret, timestamp || salt ||
                          realm || client address)[:16])

    with ``timestamp = now`` as an IEEE double and 8 random salt bytes, so nonces minted in
    the same instant differ. Any process holding ``secret`` can verify them; ``now`` must
    come from one clock shared by minting and checking (monotonic or wall).

    Keyword arguments (all optional but ``realm``):

    * ``secret`` -- HMAC key; default 32 bytes from ``random``.
    * ``random`` -- ``n -> n random bytes``; default :func:`secrets.token_bytes`.
    * ``algorithms`` -- offered, in order of preference; default SHA-256 then MD5
      (RFC 8760 §2.3: most preferred first, each once).
    * ``qop`` -- offered qop values; default ``("auth",)``. ``auth-int`` may be added.
    * ``nonce_lifetime`` -- seconds, default :data:`DEFAULT_NONCE_LIFETIME`.
    * ``bind_client_address`` -- mix the client's address into the nonce (RFC 7616 §3.3
      warns this breaks clients behind changing proxies); default False.
    * ``allow_rfc2069`` -- accept credentials without qop (RFC 3261 §22.4 requires RFC 2069
      backwards compatibility); default True. Such credentials carry no nonce-count, so
      their replay window is the nonce lifetime.
    * ``uri_check`` -- ``(digest_uri, request_uri) -> bool`` policy; default None accepts
      any ``uri=`` (RFC 3261 §22.4 item 6; SIPp sends ``sip:<remote ip:port>`` there).
      The response is always verified with the ``uri`` the client sent.
    * ``opaque`` -- sent in challenges; a different echoed value is refused.
    * ``nc_table_size`` -- see :class:`NonceCountTable`.
    * ``userhash`` -- advertise ``userhash=true`` (RFC 7616 §3.4.4).
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
        algorithms: Iterable[Algorithm] = (Algorithm.SHA_256, Algorithm.MD5),
        qop: Iterable[str] = ("auth",),
        nonce_lifetime: float = DEFAULT_NONCE_LIFETIME,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
        bind_client_address: bool = False,
        allow_rfc2069: bool = True,
        uri_check: Callable[[str, str], bool] | None = None,
        opaque: str | None = None,
        nc_table_size: int = DEFAULT_NC_TABLE_SIZE,
        userhash: bool = False,
    ) -> None:
        self.realm = realm
        self.algorithms = tuple(algorithms)
        if not self.algorithms or len(set(self.algorithms)) != len(self.algorithms):
            raise LocalProtocolError("algorithms must be non-empty and distinct (RFC 8760 §2.3)")
        self.qop = tuple(q.lower() for q in qop)
        if not self.qop or any(q not in ("auth", "auth-int") for q in self.qop):
            raise LocalProtocolError("qop must be a non-empty choice of 'auth', 'auth-int'")
        if nonce_lifetime <= 0:
            raise LocalProtocolError("nonce_lifetime must be positive")
        self._random = random
        self._secret = secret if secret is not None else random(32)
        if len(self._secret) < 16:
            raise LocalProtocolError("the nonce secret needs at least 16 bytes")
        self.nonce_lifetime = nonce_lifetime
        self.future_tolerance = future_tolerance
        self.bind_client_address = bind_client_address
        self.allow_rfc2069 = allow_rfc2069
        self.uri_check = uri_check
        self.opaque = opaque
        self.userhash = userhash
        self.nonce_counts = NonceCountTable(nc_table_size)

    # -- nonces ----------------------------------------------------------------------------

    def _mac(self, stamp_salt: bytes, client_address: str | None) -> bytes:
        addr = client_address if (self.bind_client_address and client_address) else ""
        msg = _MAC_LABEL + stamp_salt + _b(self.realm) + b"\x00" + _b(addr)
        return hmac.new(self._secret, msg, "sha256").digest()[:_MAC_LEN]

    def make_nonce(self, now: float, client_address: str | None = None) -> str:
        """A fresh stateless nonce stamped ``now``."""
        salt = self._random(_SALT_LEN)
        if len(salt) != _SALT_LEN:
            raise LocalProtocolError("the random source returned the wrong number of bytes")
        stamp_salt = _TS.pack(now) + salt
        raw = stamp_salt + self._mac(stamp_salt, client_address)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def nonce_status(
        self, nonce: str, now: float, client_address: str | None = None
    ) -> tuple[NonceStatus, float | None]:
        """Check a nonce: VALID/EXPIRED with its issue time, or INVALID with None."""
        if not _NONCE_RE.fullmatch(nonce):
            return NonceStatus.INVALID, None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return NonceStatus.INVALID, None
        stamp_salt, mac = raw[: _TS.size + _SALT_LEN], raw[_TS.size + _SALT_LEN :]
        if not hmac.compare_digest(mac, self._mac(stamp_salt, client_address)):
            return NonceStatus.INVALID, None
        (issued,) = _TS.unpack(stamp_salt[: _TS.size])
        if not math.isfinite(issued) or issued > now + self.future_tolerance:
            return NonceStatus.INVALID, None
        if now - issued > self.nonce_lifetime:
            return NonceStatus.EXPIRED, issued
        return NonceStatus.VALID, issued

    # -- challenges ------------------------------------------------------------------------

    def challenges(
        self,
        now: float,
        *,
        client_address: str | None = None,
        stale: bool = False,
        algorithms: Iterable[Algorithm] | None = None,
    ) -> list[Challenge]:
        """One challenge per offered algorithm, most preferred first (RFC 8760 §2.3), all
        with the same fresh nonce and always with ``qop`` (RFC 3261 §22.4 item 8).

        ``algorithms`` narrows the offer for one response (a subset of the configured
        ones, in the order given). Some peers give up on a challenge list holding an
        algorithm they do not know, against RFC 8760 §2.4 (tested): SIPp 3.6.1 reads only
        the topmost challenge and aborts on SHA-256; baresip 1.0.0 fails with ENOSYS as soon
        as any challenge names SHA-256. Offer such peers ``(Algorithm.MD5,)``.
        """
        offer = self.algorithms if algorithms is None else tuple(algorithms)
        if not offer or any(a not in self.algorithms for a in offer):
            raise LocalProtocolError("the offer must be a non-empty subset of the algorithms")
        nonce = self.make_nonce(now, client_address)
        return [
            Challenge.digest(
                realm=self.realm,
                nonce=nonce,
                algorithm=a.value,
                qop=self.qop,
                opaque=self.opaque,
                stale=stale,
                userhash=self.userhash,
            )
            for a in dict.fromkeys(offer)
        ]

    # -- credentials -----------------------------------------------------------------------

    def select(self, values: Iterable[str | Credentials]) -> Credentials | None:
        """The Digest credentials meant for this realm among a request's Authorization (or
        Proxy-Authorization) values, or None. Other schemes and realms are skipped
        (RFC 3261 §22.3: a proxy MUST NOT consume credentials of another realm).
        An unreadable value raises RemoteProtocolError(400)."""
        for value in values:
            creds = value if isinstance(value, Credentials) else Credentials.parse(value)
            if creds.is_digest and creds.realm == self.realm:
                return creds
        return None

    def ha1_key(self, credentials: Credentials) -> HA1Key | None:
        """Which stored HA1 :meth:`verify` needs, or None if the credentials cannot be used
        (not Digest, no username/realm, unknown algorithm: verify will say MALFORMED)."""
        if not credentials.is_digest:
            return None
        username, realm = credentials.username, credentials.realm
        algorithm = Algorithm.from_token(credentials.algorithm)
        if username is None or realm is None or algorithm is None:
            return None
        return HA1Key(username, realm, algorithm.base, credentials.userhash)

    def verify(
        self,
        credentials: Credentials,
        *,
        ha1: str | None,
        method: str,
        now: float,
        body: bytes = b"",
        request_uri: str | None = None,
        client_address: str | None = None,
    ) -> Verification:
        """Verify Digest credentials (RFC 7616 §3.6) against the stored ``ha1`` (None when
        the user is unknown). ``method`` is the request's method, ``body`` its body (for
        ``auth-int``), ``request_uri`` its Request-URI (only for the ``uri_check`` policy).
        Never raises on peer input."""
        c = credentials

        def result(kind: DigestResult, reason: str, alg: Algorithm | None = None) -> Verification:
            return Verification(kind, reason, c, c.username, alg)

        malformed = DigestResult.MALFORMED
        if not c.is_digest:
            return result(malformed, f"scheme {c.scheme!r} is not Digest")
        if c.has_param("username") and c.has_param("username*"):
            return result(malformed, "both username and username* (RFC 7616 §3.4)")
        username, realm, nonce = c.username, c.realm, c.nonce
        uri, response = c.uri, c.response
        if username is None or realm is None or nonce is None or uri is None or response is None:
            return result(malformed, "missing username, realm, nonce, uri or response")
        if realm != self.realm:
            return result(malformed, f"realm {realm!r} is not {self.realm!r}")
        if nonce == "" or response == "":
            return result(DigestResult.NOT_ANSWERED, "empty nonce/response (RFC 8760 §2.7)")
        algorithm = Algorithm.from_token(c.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return result(malformed, f"algorithm {c.algorithm!r} was not offered")
        qop, nc, cnonce = c.qop, c.nc, c.cnonce
        nc_value: int | None = None
        if qop is None:
            if not self.allow_rfc2069:
                return result(malformed, "no qop and RFC 2069 mode is disabled", algorithm)
            if algorithm.is_session:
                return result(malformed, "-sess without qop (RFC 3261 §22.4 item 8)", algorithm)
            nc = cnonce = None
        else:
            if qop.lower() not in self.qop:
                return result(malformed, f"qop {qop!r} was not offered", algorithm)
            if nc is None or cnonce is None or not _NC_RE.fullmatch(nc):
                return result(malformed, "qop needs cnonce and an 8-hex-digit nc", algorithm)
            nc_value = int(nc, 16)
            if nc_value == 0:
                return result(malformed, "nc=00000000", algorithm)
        if self.opaque is not None and c.opaque is not None and c.opaque != self.opaque:
            return result(malformed, "opaque does not match", algorithm)
        if len(response) != algorithm.hex_length or not _HEX_RE.fullmatch(response):
            return result(malformed, f"response is not {algorithm.hex_length} hex digits")

        # From here on the work is the same for known and unknown users (RFC 7616 §5.7).
        is_ack = method.upper() == "ACK"
        unknown = ha1 is None
        expected = compute_response(
            ha1=ha1 if ha1 is not None else "0" * algorithm.hex_length,
            algorithm=algorithm,
            nonce=nonce,
            # An ACK carries copies of its INVITE's credentials (RFC 3261 §22.1).
            method="INVITE" if is_ack else method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        matches = hmac.compare_digest(_b(expected), _b(response.lower()))
        if unknown:
            return result(DigestResult.UNKNOWN_USER, "no HA1 for this user", algorithm)
        if not matches:
            return result(DigestResult.BAD_RESPONSE, "response does not match", algorithm)
        status, issued = self.nonce_status(nonce, now, client_address)
        if status is not NonceStatus.VALID or issued is None:
            return result(DigestResult.STALE, f"nonce {status.value}", algorithm)
        if (
            self.uri_check is not None
            and request_uri is not None
            and not self.uri_check(uri, request_uri)
        ):
            return result(DigestResult.URI_MISMATCH, f"uri {uri!r} vs {request_uri!r}", algorithm)
        if nc_value is not None and not is_ack:
            verdict = self.nonce_counts.check(
                nonce, issued, nc_value, now=now, lifetime=self.nonce_lifetime
            )
            if verdict == "replay":
                return result(DigestResult.REPLAY, f"nc {nc} did not increase", algorithm)
            if verdict == "forgotten":
                return result(DigestResult.STALE, "nonce evicted from nc table", algorithm)
        return result(DigestResult.OK, "ok", algorithm)

    def authentication_info(
        self,
        verification: Verification,
        *,
        ha1: str,
        response_body: bytes = b"",
        nextnonce: str | None = None,
    ) -> AuthenticationInfo:
        """An Authentication-Info value for an accepted request: ``rspauth`` proves the
        server knows the HA1 (RFC 7616 §3.5); ``nextnonce`` optionally hands out the next
        nonce. ``response_body`` is the body of the response being sent (``auth-int``)."""
        if not verification.ok or verification.algorithm is None:
            raise LocalProtocolError("Authentication-Info only follows accepted credentials")
        c = verification.credentials
        nonce, uri = c.nonce, c.uri
        assert nonce is not None and uri is not None
        if c.qop is None:
            if nextnonce is None:
                raise LocalProtocolError("without qop, Authentication-Info needs nextnonce")
            return AuthenticationInfo.build(nextnonce=nextnonce)
        digest = rspauth(
            ha1=ha1,
            algorithm=verification.algorithm,
            nonce=nonce,
            uri=uri,
            qop=c.qop,
            nc=c.nc,
            cnonce=c.cnonce,
            body=response_body,
        )
        return AuthenticationInfo.build(
            nextnonce=nextnonce, qop=c.qop, rspauth=digest, cnonce=c.cnonce, nc=c.nc
        )


def same_uri_text(digest_uri: str, request_uri: str) -> bool:
    """A strict ``uri_check`` policy for :class:`DigestServer`: the digest ``uri`` and the
    Request-URI are the same text, apart from the case of the scheme (RFC 3261 §22.4 item 6
    lets a server refuse a mismatch; SIPp and some proxies make one, so it is opt-in)."""
    ds, _, drest = digest_uri.partition(":")
    rs, _, rrest = request_uri.partition(":")
    return ds.lower() == rs.lower() and drest == rrest
