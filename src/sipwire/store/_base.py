"""Storage protocols shared by every backend (memory, SQLite, and later Redis/PostgreSQL).

The registrar keeps its *location service* (RFC 3261 §10.3: address-of-record -> bindings)
behind :class:`LocationStore`, and the authentication users behind :class:`UserStore`.
Both protocols are async and deliberately small so a network backend can implement them
with one round trip per call.

Times stored here are wall-clock seconds since the epoch (``expires_at``), so a binding
survives a restart of the server with its remaining lifetime intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_BINDINGS_PER_AOR",
    "Binding",
    "LocationStore",
    "StoreError",
    "UserRecord",
    "UserStore",
]

#: Bound on the contacts one address-of-record may register (a registrar answers 403/503
#: beyond it rather than growing without limit).
DEFAULT_MAX_BINDINGS_PER_AOR = 10


class StoreError(Exception):
    """A storage backend failed (I/O error, corrupt database, lost connection)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One registration: an address-of-record bound to a contact address (RFC 3261 §10).

    ``contact`` is the Contact URI exactly as registered (URI parameters included, header
    parameters such as ``expires`` and ``q`` excluded: they are kept as fields).
    ``path`` is the Path header list of RFC 3327, in order, used as a preloaded route set
    when routing to the contact. ``instance_id``/``reg_id`` are RFC 5626's
    ``+sip.instance`` and ``reg-id``. ``source`` records where the REGISTER came from
    (``"UDP 192.0.2.1:5060"``) so requests can reach a contact behind NAT.
    """

    aor: str
    contact: str
    expires_at: float
    q: float | None = None
    call_id: str = ""
    cseq: int = 0
    path: tuple[str, ...] = ()
    instance_id: str | None = None
    reg_id: int | None = None
    source: str | None = None
    user_agent: str | None = None
    params: tuple[tuple[str, str | None], ...] = field(default=())

    def expires_in(self, now: float) -> int:
        """Seconds left at ``now`` (never negative), as a 200 OK to REGISTER reports them."""
        return max(0, int(self.expires_at - now + 0.5))


@runtime_checkable
class LocationStore(Protocol):
    """The location service's storage (RFC 3261 §10.3).

    ``replace`` writes the complete new binding set of one AOR atomically; the registrar
    reads with ``get``, applies §10.3 step 7 and writes back, so a backend needs no
    knowledge of SIP rules.
    """

    async def get(self, aor: str, *, now: float) -> list[Binding]:
        """Unexpired bindings of ``aor`` (empty list if none)."""
        ...

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Make ``bindings`` the complete binding set of ``aor``."""
        ...

    async def expire(self, now: float) -> list[Binding]:
        """Delete and return every binding whose ``expires_at`` <= ``now``."""
        ...

    async def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` of any binding, to arm one timer for all of them."""
        ...

    async def aors(self, *, now: float, limit: int = 1000) -> list[str]:
        """Up to ``limit`` AORs with at least one unexpired binding."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord:
    """A user that may authenticate: HA1 hashes per digest algorithm, never the password.

    ``ha1`` maps an algorithm name (``"MD5"``, ``"SHA-256"``, ``"SHA-512-256"``) to
    ``H(username ":" realm ":" password)`` in lowercase hex (RFC 7616 §3.4.2).
    """

    username: str
    domain: str
    ha1: dict[str, str]


@runtime_checkable
class UserStore(Protocol):
    """Users for digest authentication (one realm per domain)."""

    async def get_user(self, username: str, domain: str) -> UserRecord | None: ...

    async def put_user(self, user: UserRecord) -> None: ...

    async def remove_user(self, username: str, domain: str) -> bool: ...

    async def list_users(self, domain: str | None = None) -> list[UserRecord]: ...

    async def close(self) -> None: ...
