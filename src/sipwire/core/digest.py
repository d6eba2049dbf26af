"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760; RFC 2617 and the
RFC 2069 compatibility mode), pure and sans-IO.

* Header values: :class:`Challenge` (WWW-Authenticate, Proxy-Authenticate),
  :class:`Credentials` (Authorization, Proxy-Authorization), :class:`AuthenticationInfo`;
  ``X.parse(text)`` raises only :class:`~sipwire.core._errors.RemoteProtocolError` (400),
  ``str(x)`` serialises.
* Algorithms: :class:`Algorithm` (MD5, SHA-256, SHA-512-256 and their ``-sess`` variants),
  :func:`ha1` / :func:`ha1_table` (what a user store keeps), :func:`compute_response`,
  :func:`rspauth`, :func:`userhash`.
* Server: :class:`DigestServer` mints stateless nonces, builds challenges (SHA-256 before
  MD5, RFC 8760 §2.3), verifies credentials into a :class:`Verification` whose
  :class:`DigestResult` separates, for logs only, wrong passwords from unknown users.
* Client: :class:`DigestClient` answers 401/407 challenges, caches per realm for
  pre-emptive credentials, and tells stale nonces from rejected passwords.
"""

from __future__ import annotations

from sipwire.core._digest_algo import (
    Algorithm,
    compute_response,
    ha1,
    ha1_table,
    hash_hex,
    rspauth,
    session_ha1,
    userhash,
)
from sipwire.core._digest_client import (
    DEFAULT_MAX_REALMS,
    AuthFailure,
    ChallengeAnswer,
    DigestClient,
)
from sipwire.core._digest_parse import (
    MAX_AUTH_PARAMS,
    MAX_AUTH_VALUE_LENGTH,
    AuthenticationInfo,
    AuthParam,
    Challenge,
    Credentials,
)
from sipwire.core._digest_server import (
    DEFAULT_FUTURE_TOLERANCE,
    DEFAULT_NC_TABLE_SIZE,
    DEFAULT_NONCE_LIFETIME,
    DigestResult,
    DigestServer,
    HA1Key,
    NonceCountTable,
    NonceStatus,
    Verification,
    same_uri_text,
)

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "DEFAULT_MAX_REALMS",
    "DEFAULT_NC_TABLE_SIZE",
    "DEFAULT_NONCE_LIFETIME",
    "MAX_AUTH_PARAMS",
    "MAX_AUTH_VALUE_LENGTH",
    "Algorithm",
    "AuthFailure",
    "AuthParam",
    "AuthenticationInfo",
    "Challenge",
    "ChallengeAnswer",
    "Credentials",
    "DigestClient",
    "DigestResult",
    "DigestServer",
    "HA1Key",
    "NonceCountTable",
    "NonceStatus",
    "Verification",
    "compute_response",
    "ha1",
    "ha1_table",
    "hash_hex",
    "rspauth",
    "same_uri_text",
    "session_ha1",
    "userhash",
]
