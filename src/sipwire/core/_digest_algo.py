"""Digest algorithms and the response computation (RFC 7616 §3.4.1-§3.4.4, RFC 8760 §2.1,
RFC 2617 §3.2.2, RFC 2069 §2.1.2).

Every string that enters a hash is encoded as UTF-8 with ``surrogateescape``, so a header
value decoded from arbitrary bytes hashes exactly as the octets on the wire (RFC 7616 §4).
Digests are lowercase hex (RFC 8760 §2.2).

Servers store ``HA1 = H(username ":" realm ":" password)`` per *base* algorithm (MD5,
SHA-256, SHA-512-256), never the password (RFC 7616 §5.2); the ``-sess`` variants derive
their session key from that same stored HA1 (RFC 7616 §3.4.2).
"""

from __future__ import annotations

import enum
import hashlib

from sipwire.core._errors import LocalProtocolError

__all__ = [
    "Algorithm",
    "compute_response",
    "ha1",
    "ha1_table",
    "hash_hex",
    "rspauth",
    "session_ha1",
    "userhash",
]


class Algorithm(enum.Enum):
    """The algorithms of the IANA "Hash Algorithms for HTTP Digest Authentication" registry
    (RFC 7616 §6.1) that SIP may use (RFC 8760 §2.7)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def from_token(cls, token: str | None) -> Algorithm | None:
        """The algorithm named by an ``algorithm`` parameter (case-insensitive).

        An absent parameter means MD5 (RFC 7616 §3.3); an unknown name gives None, and such
        a challenge "SHOULD be ignored" (ibid.).
        """
        if token is None:
            return cls.MD5
        return _BY_LOWER.get(token.strip().lower())

    @property
    def base(self) -> Algorithm:
        """The non-session variant (whose name keys the stored HA1)."""
        return _BASE[self]

    @property
    def is_session(self) -> bool:
        """True for the ``-sess`` variants (RFC 7616 §3.4.2)."""
        return self is not self.base

    @property
    def strength(self) -> int:
        """Client preference rank: SHA-512-256 > SHA-256 > MD5; plain before -sess."""
        return _STRENGTH[self]

    @property
    def hex_length(self) -> int:
        """Characters of a hex digest: 32 for MD5, 64 for the SHA-2 ones (RFC 8760 §2.2)."""
        return 32 if self.base is Algorithm.MD5 else 64


_BY_LOWER = {a.value.lower(): a for a in Algorithm}
_BASE = {
    Algorithm.MD5: Algorithm.MD5,
    Algorithm.MD5_SESS: Algorithm.MD5,
    Algorithm.SHA_256: Algorithm.SHA_256,
    Algorithm.SHA_256_SESS: Algorithm.SHA_256,
    Algorithm.SHA_512_256: Algorithm.SHA_512_256,
    Algorithm.SHA_512_256_SESS: Algorithm.SHA_512_256,
}
_STRENGTH = {
    Algorithm.SHA_512_256: 6,
    Algorithm.SHA_512_256_SESS: 5,
    Algorithm.SHA_256: 4,
    Algorithm.SHA_256_SESS: 3,
    Algorithm.MD5: 2,
    Algorithm.MD5_SESS: 1,
}
_HASHLIB_NAME = {
    Algorithm.MD5: "md5",
    Algorithm.SHA_256: "sha256",
    Algorithm.SHA_512_256: "sha512_256",
}


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def hash_hex(algorithm: Algorithm, data: bytes) -> str:
    """``H(data)``: the unkeyed digest as lowercase hex (RFC 7616 §3.3 "algorithm")."""
    name = _HASHLIB_NAME[algorithm.base]
    if name == "md5":
        # MD5 here is the protocol's hash, not a security choice of ours (RFC 8760 §3).
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.new(name, data).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: Algorithm = Algorithm.MD5) -> str:
    """The value to store for a user: ``H(username ":" realm ":" password)`` with the *base*
    hash of ``algorithm`` (RFC 7616 §3.4.2, §5.2). For ``-sess`` algorithms this is still the
    stored value; :func:`session_ha1` derives the session key from it."""
    return hash_hex(algorithm, _b(f"{username}:{realm}:{password}"))


def ha1_table(username: str, realm: str, password: str) -> dict[str, str]:
    """HA1 for every base algorithm, keyed ``"MD5"``, ``"SHA-256"``, ``"SHA-512-256"``: what a
    user store keeps in place of a password."""
    return {
        a.value: ha1(username, realm, password, a)
        for a in (Algorithm.MD5, Algorithm.SHA_256, Algorithm.SHA_512_256)
    }


def session_ha1(stored_ha1: str, nonce: str, cnonce: str, algorithm: Algorithm) -> str:
    """``H(A1)`` for the ``-sess`` variants: ``H(H(user:realm:pass) ":" nonce ":" cnonce)``
    (RFC 7616 §3.4.2, RFC 2617 §3.2.2.2)."""
    return hash_hex(algorithm, _b(f"{stored_ha1}:{nonce}:{cnonce}"))


def userhash(username: str, realm: str, algorithm: Algorithm) -> str:
    """The hashed username ``H(username ":" realm)`` (RFC 7616 §3.4.4)."""
    return hash_hex(algorithm, _b(f"{username}:{realm}"))


def compute_response(
    *,
    ha1: str,
    algorithm: Algorithm,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of Digest credentials.

    ``ha1`` is the *stored* HA1 (see :func:`ha1`); for ``-sess`` algorithms the session key
    is derived here. With ``qop`` ``auth`` or ``auth-int`` (RFC 7616 §3.4.1)::

        KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))

    without ``qop`` (the RFC 2069 §2.1.2 mode of old phones, RFC 3261 §22.4)::

        KD(H(A1), nonce ":" H(A2))

    ``A2 = method ":" uri``, plus ``":" H(body)`` for ``auth-int`` (RFC 7616 §3.4.3), where an
    empty SIP body hashes as ``H("")`` (RFC 3261 §22.4 item 7, RFC 8760 §2.6 item 7).
    """
    if qop is not None:
        if nc is None or cnonce is None:
            raise LocalProtocolError("qop needs nc and cnonce (RFC 7616 §3.4.1)")
        q = qop.lower()
        if q not in ("auth", "auth-int"):
            raise LocalProtocolError(f"unsupported qop {qop!r}")
    elif algorithm.is_session:
        # RFC 3261 §22.4 item 8: -sess depends on cnonce, which needs qop.
        raise LocalProtocolError(f"{algorithm.value} needs qop (RFC 3261 §22.4 item 8)")
    if algorithm.is_session:
        assert cnonce is not None
        key = session_ha1(ha1, nonce, cnonce, algorithm)
    else:
        key = ha1
    if qop is not None and qop.lower() == "auth-int":
        a2 = f"{method}:{uri}:{hash_hex(algorithm, body)}"
    else:
        a2 = f"{method}:{uri}"
    ha2 = hash_hex(algorithm, _b(a2))
    if qop is None:
        return hash_hex(algorithm, _b(f"{key}:{nonce}:{ha2}"))
    return hash_hex(algorithm, _b(f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


def rspauth(
    *,
    ha1: str,
    algorithm: Algorithm,
    nonce: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``rspauth`` of Authentication-Info: the response computation with an empty method,
    ``A2 = ":" uri [":" H(body)]`` (RFC 7616 §3.5). ``body`` is the *response's* body."""
    return compute_response(
        ha1=ha1,
        algorithm=algorithm,
        nonce=nonce,
        method="",
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
