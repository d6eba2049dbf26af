"""The client side of Digest authentication (RFC 3261 §22.2-§22.4, RFC 7616 §3.4-§3.7,
RFC 8760 §2.4).

A :class:`DigestClient` answers the challenges of a 401/407, remembers one authentication
session per (header kind, realm) so later requests (re-REGISTER, in-dialog BYE) can carry
credentials pre-emptively (RFC 7616 §3.6), counts ``nc`` per nonce and tells a stale nonce
(retry once) from a rejected password (give up: RFC 3261 §22.1 "A UAC MUST NOT re-attempt
requests with the credentials that have just been rejected").

Sans-IO and deterministic: the cnonce comes from the injected ``random`` callable.
RFC 3261 §22.3 says proxy credentials belong to one Call-ID unless the realm is the UA's
own outbound proxy; the caller picks the scope by keeping one client per dialog or per
account.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sipwire.core._digest_algo import Algorithm, compute_response, ha1, userhash
from sipwire.core._digest_parse import AuthenticationInfo, Challenge, Credentials
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_REALMS",
    "AuthFailure",
    "ChallengeAnswer",
    "DigestClient",
]

#: Authentication sessions a client keeps (LRU), one per (header kind, realm).
DEFAULT_MAX_REALMS = 16

_CHALLENGE_TO_CREDENTIALS = {
    "www-authenticate": "Authorization",
    "proxy-authenticate": "Proxy-Authorization",
}
_CREDENTIALS_KIND = {
    "authorization": "www-authenticate",
    "proxy-authorization": "proxy-authenticate",
}
_INFO_KIND = {
    "authentication-info": "www-authenticate",
    "proxy-authentication-info": "proxy-authenticate",
}
_MAX_NC = 0xFFFFFFFF


class AuthFailure(enum.Enum):
    """Why :meth:`DigestClient.handle_challenge` gave up."""

    #: The response carried no WWW-Authenticate / Proxy-Authenticate at all.
    NO_CHALLENGE = "no-challenge"
    #: No challenge we can answer: other schemes, unknown algorithms or qop values
    #: (RFC 8760 §2.4: "The client MUST ignore any challenge it does not understand").
    UNSUPPORTED = "unsupported"
    #: We have no username/password for any challenged realm.
    NO_CREDENTIALS = "no-credentials"
    #: Our answer to a challenge was refused without ``stale=true``: wrong credentials.
    REJECTED = "rejected"
    #: ``stale=true`` again right after answering a ``stale=true`` challenge.
    STALE_LOOP = "stale-loop"


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    """Headers to add to the retried request (``(name, value)`` pairs), or why not."""

    headers: tuple[tuple[str, str], ...] = ()
    failure: AuthFailure | None = None
    realm: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Session:
    """One authentication session (RFC 7616 §3.6): the challenge answered and its counters."""

    __slots__ = (
        "algorithm",
        "algorithm_token",
        "cnonce",
        "from_stale",
        "ha1",
        "header",
        "nc",
        "nonce",
        "opaque",
        "qop",
        "realm",
        "userhash",
        "username",
        "uses",
    )

    def __init__(
        self,
        *,
        header: str,
        realm: str,
        challenge: Challenge,
        algorithm: Algorithm,
        qop: str | None,
        username: str,
        password: str,
        cnonce: str,
    ) -> None:
        self.header = header
        self.realm = realm
        self.algorithm = algorithm
        self.algorithm_token = challenge.algorithm  # echoed as the server wrote it
        self.qop = qop
        self.nonce = challenge.nonce or ""
        self.opaque = challenge.opaque
        self.from_stale = challenge.stale
        self.username = username
        self.ha1 = ha1(username, realm, password, algorithm)
        self.userhash = challenge.userhash
        self.cnonce = cnonce
        self.nc = 0
        self.uses = 0


class DigestClient:
    """Answers Digest challenges and re-uses the answers pre-emptively.

    ``DigestClient(username, password)`` uses one account for every realm;
    ``DigestClient(credentials=lookup)`` asks ``lookup(realm) -> (username, password) | None``.

    * ``algorithms`` -- the ones this client will use (default: all six of RFC 8760 §2.7).
      Among the challenges for one realm the strongest allowed one wins (SHA-512-256, then
      SHA-256, then MD5; the server's order breaks ties), a local policy RFC 8760 §2.4
      permits and which resists a downgrade by reordering.
    * ``random`` -- ``n -> n random bytes`` for cnonces; default :func:`secrets.token_bytes`.
    * ``max_realms`` -- sessions kept, default :data:`DEFAULT_MAX_REALMS`.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        credentials: Callable[[str], tuple[str, str] | None] | None = None,
        algorithms: Iterable[Algorithm] = tuple(Algorithm),
        random: Callable[[int], bytes] = secrets.token_bytes,
        max_realms: int = DEFAULT_MAX_REALMS,
    ) -> None:
        if credentials is None:
            if username is None or password is None:
                raise LocalProtocolError("give username and password, or a credentials lookup")
            account = (username, password)
            credentials = lambda _realm: account  # noqa: E731
        if max_realms < 1:
            raise LocalProtocolError("max_realms must be at least 1")
        self._credentials = credentials
        self.algorithms = frozenset(algorithms)
        self._random = random
        self.max_realms = max_realms
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()

    # -- choosing a challenge -------------------------------------------------------------

    def _usable(self, ch: Challenge) -> tuple[Algorithm, str | None] | None:
        """The algorithm and qop we would answer ``ch`` with, or None (RFC 7616 §3.3)."""
        if not ch.is_digest or ch.realm is None or ch.nonce is None:
            return None
        algorithm = Algorithm.from_token(ch.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return None
        options = ch.qop_options
        if options is None:
            # RFC 2069 mode; -sess needs a cnonce, hence qop (RFC 3261 §22.4 item 8).
            return None if algorithm.is_session else (algorithm, None)
        lowered = {q.lower() for q in options}
        for qop in ("auth", "auth-int"):  # "Unrecognized options MUST be ignored."
            if qop in lowered:
                return algorithm, qop
        return None

    def handle_challenge(
        self,
        challenges: Iterable[tuple[str, str]],
        *,
        method: str,
        uri: str,
        body: bytes = b"",
        sent: Iterable[tuple[str, str]] = (),
    ) -> ChallengeAnswer:
        """Answer a 401/407.

        ``challenges`` are the response's ``(name, value)`` header pairs (only
        WWW-Authenticate and Proxy-Authenticate are read; values that cannot be parsed are
        ignored). ``sent`` are the header pairs of the request that drew the response (only
        Authorization and Proxy-Authorization are read): they tell whether this challenge
        refuses an answer we already gave. ``method``, ``uri`` and ``body`` describe the
        request about to be re-sent (its Request-URI goes into ``uri=``, RFC 3261 §22.4
        item 3; the CSeq must be incremented by the caller, §22.2).

        One credential per challenged realm that we can answer (RFC 3261 §22.3); a realm
        whose previous answer was refused fails the whole retry (§22.1).
        """
        groups: OrderedDict[tuple[str, str], list[Challenge]] = OrderedDict()
        seen_any = False
        for name, value in challenges:
            kind = name.strip().lower()
            if kind not in _CHALLENGE_TO_CREDENTIALS:
                continue
            seen_any = True
            try:
                ch = Challenge.parse(value)
            except RemoteProtocolError:
                continue
            if ch.is_digest and ch.realm is not None:
                groups.setdefault((kind, ch.realm), []).append(ch)
        if not seen_any:
            return ChallengeAnswer(failure=AuthFailure.NO_CHALLENGE)

        previous = self._previous_answers(sent)
        headers: list[tuple[str, str]] = []
        failure: AuthFailure | None = None
        failed_realm: str | None = None
        for key, group in groups.items():
            kind, realm = key
            best: tuple[Challenge, Algorithm, str | None] | None = None
            for ch in group:
                usable = self._usable(ch)
                if usable is not None and (best is None or usable[0].strength > best[1].strength):
                    best = (ch, usable[0], usable[1])
            if best is None:
                failure = failure or AuthFailure.UNSUPPORTED
                continue
            account = self._credentials(realm)
            if account is None:
                if failure in (None, AuthFailure.UNSUPPORTED):
                    failure = AuthFailure.NO_CREDENTIALS
                continue
            challenge, algorithm, qop = best
            refused = self._refusal(key, challenge, previous.get(key))
            if refused is not None:
                self._sessions.pop(key, None)
                return ChallengeAnswer(failure=refused, realm=realm)
            session = self._new_session(key, challenge, algorithm, qop, account)
            answer = self._credentials_value(session, method, uri, body)
            if answer is None:
                failure, failed_realm = AuthFailure.UNSUPPORTED, realm
                continue
            headers.append((session.header, answer))
        if headers:
            return ChallengeAnswer(headers=tuple(headers))
        return ChallengeAnswer(failure=failure or AuthFailure.UNSUPPORTED, realm=failed_realm)

    def _previous_answers(
        self, sent: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, int | None]]:
        """(kind, realm) -> (nonce, nc) of the credentials in the challenged request."""
        out: dict[tuple[str, str], tuple[str, int | None]] = {}
        for name, value in sent:
            kind = _CREDENTIALS_KIND.get(name.strip().lower())
            if kind is None:
                continue
            try:
                creds = Credentials.parse(value)
            except RemoteProtocolError:
                continue
            if not creds.is_digest or creds.realm is None or creds.nonce is None:
                continue
            nc: int | None = None
            if creds.nc is not None:
                try:
                    nc = int(creds.nc, 16)
                except ValueError:
                    nc = None
            out[(kind, creds.realm)] = (creds.nonce, nc)
        return out

    def _refusal(
        self,
        key: tuple[str, str],
        challenge: Challenge,
        previous: tuple[str, int | None] | None,
    ) -> AuthFailure | None:
        """Does ``challenge`` refuse the answer we sent for this realm (RFC 7616 §3.3 stale)?"""
        if previous is None:
            return None  # we sent nothing for this realm: a first challenge
        prev_nonce, prev_nc = previous
        session = self._sessions.get(key)
        current = session is not None and session.nonce == prev_nonce
        if prev_nc is None:
            # RFC 2069 mode has no nc; our own count says whether it was the first use.
            first_use = not current or (session is not None and session.uses <= 1)
        else:
            first_use = prev_nc == 1
        if challenge.stale:
            # Retry once with the new nonce; a stale answer to a stale retry is a loop.
            if current and session is not None and session.from_stale and first_use:
                return AuthFailure.STALE_LOOP
            return None
        if first_use or challenge.nonce == prev_nonce:
            # The direct answer to a challenge was refused without stale=true.
            return AuthFailure.REJECTED
        # A pre-emptive re-use of an older nonce was refused: answer the fresh challenge.
        return None

    def _new_session(
        self,
        key: tuple[str, str],
        challenge: Challenge,
        algorithm: Algorithm,
        qop: str | None,
        account: tuple[str, str],
    ) -> _Session:
        old = self._sessions.get(key)
        session = _Session(
            header=_CHALLENGE_TO_CREDENTIALS[key[0]],
            realm=key[1],
            challenge=challenge,
            algorithm=algorithm,
            qop=qop,
            username=account[0],
            password=account[1],
            cnonce=self._random(12).hex(),
        )
        if old is not None and old.nonce == session.nonce and old.algorithm is algorithm:
            # The same nonce again: keep counting, a server would see nc=1 as a replay.
            session.nc, session.cnonce, session.uses = old.nc, old.cnonce, old.uses
        self._sessions[key] = session
        self._sessions.move_to_end(key)
        while len(self._sessions) > self.max_realms:
            self._sessions.popitem(last=False)
        return session

    def _credentials_value(
        self, session: _Session, method: str, uri: str, body: bytes
    ) -> str | None:
        if session.nc >= _MAX_NC:
            return None
        session.nc += 1
        session.uses += 1
        nc = f"{session.nc:08x}" if session.qop is not None else None
        cnonce = session.cnonce if session.qop is not None else None
        response = compute_response(
            ha1=session.ha1,
            algorithm=session.algorithm,
            nonce=session.nonce,
            method=method,
            uri=uri,
            qop=session.qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        username = session.username
        if session.userhash:
            username = userhash(username, session.realm, session.algorithm)
        return str(
            Credentials.digest(
                username=username,
                realm=session.realm,
                nonce=session.nonce,
                uri=uri,
                response=response,
                algorithm=session.algorithm_token,
                cnonce=cnonce,
                opaque=session.opaque,
                qop=session.qop,
                nc=nc,
                userhash=session.userhash,
            )
        )

    # -- pre-emptive credentials ----------------------------------------------------------

    def authorization_headers(
        self, *, method: str, uri: str, body: bytes = b""
    ) -> list[tuple[str, str]]:
        """Credentials for every cached session, to add to a new request before any
        challenge (RFC 7616 §3.6 "MAY be included preemptively"). Each call counts as one use
        of each nonce (``nc`` increments). Do not call it for an ACK: the ACK repeats the
        INVITE's credentials (RFC 3261 §22.1)."""
        out: list[tuple[str, str]] = []
        for session in list(self._sessions.values()):
            value = self._credentials_value(session, method, uri, body)
            if value is not None:
                out.append((session.header, value))
        return out

    def handle_authentication_info(self, name: str, value: str) -> None:
        """Take the ``nextnonce`` of an Authentication-Info / Proxy-Authentication-Info
        (RFC 7616 §3.5). Since that header names no realm, it applies only when exactly one
        session of that kind exists. Unreadable values are ignored."""
        kind = _INFO_KIND.get(name.strip().lower())
        if kind is None:
            return
        try:
            info = AuthenticationInfo.parse(value)
        except RemoteProtocolError:
            return
        nextnonce = info.nextnonce
        candidates = [s for (k, _), s in self._sessions.items() if k == kind]
        if nextnonce is None or len(candidates) != 1:
            return
        session = candidates[0]
        if session.nonce != nextnonce:
            session.nonce = nextnonce
            session.nc = session.uses = 0
            session.cnonce = self._random(12).hex()
            session.from_stale = False

    def forget(self, realm: str | None = None) -> None:
        """Drop the cached session(s) of ``realm``, or all of them."""
        for key in [k for k in self._sessions if realm is None or k[1] == realm]:
            del self._sessions[key]

    @property
    def realms(self) -> list[str]:
        """Realms with a cached session, least recently answered first."""
        return [realm for (_, realm) in self._sessions]
