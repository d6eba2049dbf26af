"""The registrar (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 instance-id/reg-id).

:func:`process_register` is the pure heart: given a REGISTER (already authenticated and
authorised by the caller), the address-of-record's current bindings and the wall-clock
time, it returns the response to send and the complete new binding set. It never touches
storage; :class:`Registrar` wraps it around a :class:`~sipwire.store.LocationStore` with
one lock per AOR so concurrent REGISTERs for one AOR apply in order (§10.3 step 7's
all-or-nothing commit).
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.message import Request
from sipwire.core.uri import SipURI
from sipwire.store import DEFAULT_MAX_BINDINGS_PER_AOR, Binding, LocationStore, StoreError

__all__ = [
    "RegisterOutcome",
    "Registrar",
    "RegistrarPolicy",
    "aor_of",
    "binding_contact",
    "process_register",
]

#: Seconds a binding is kept when neither the Contact nor the request says (§10.3 step 7).
DEFAULT_EXPIRES = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarPolicy:
    """Registrar settings; the defaults are what a SIP engineer expects.

    ``min_expires``: shorter (non-zero) requests get 423 with Min-Expires (§10.3 step 7).
    ``max_expires``: longer requests are shortened to it (the registrar MAY choose less).
    ``max_bindings``: contacts per AOR; more get 403 (a bound on the location table).
    """

    default_expires: int = DEFAULT_EXPIRES
    min_expires: int = 60
    max_expires: int = 86400
    max_bindings: int = DEFAULT_MAX_BINDINGS_PER_AOR


@dataclass(slots=True, kw_only=True)
class RegisterOutcome:
    """What to answer: status, reason, extra response headers, and the new binding set
    (``None`` when nothing changes)."""

    status: int
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    bindings: list[Binding] | None = None


def aor_of(request: Request) -> str:
    """The address-of-record key of a REGISTER: its To URI, canonical (§10.3 step 5).

    Raises RemoteProtocolError(400) when To is not a SIP or SIPS URI (RFC 4475 3.3.4).
    """
    uri = request.to.uri
    if not isinstance(uri, SipURI):
        raise RemoteProtocolError("To of a REGISTER must be a SIP or SIPS URI", 400)
    if uri.user is None:
        raise RemoteProtocolError("To of a REGISTER needs a user part", 400)
    return uri.aor()


def binding_contact(address: Address) -> str:
    """The contact string stored for a Contact header value: the URI as registered (URI
    parameters and escaped headers kept, RFC 4475 3.3.13/3.3.14)."""
    return str(address.uri)


def _requested_expires(address: Address, request: Request, policy: RegistrarPolicy) -> int:
    value = address.param("expires")
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            n = -1
        if n < 0 or n > 2**32 - 1:
            # A malformed expires param: fall back as for a malformed Expires header.
            return policy.default_expires
        return n
    try:
        expires = request.expires
    except RemoteProtocolError:
        expires = None  # RFC 4475 3.1.2.4: a bad Expires is treated as absent
    return policy.default_expires if expires is None else expires


def _format_binding(b: Binding, now: float) -> str:
    text = f"<{b.contact}>"
    for name, value in b.params:
        if name.lower() in ("expires", "q"):
            continue
        text += f";{name}" if value is None else f";{name}={value}"
    if b.q is not None:
        text += f";q={b.q:g}"
    return f"{text};expires={b.expires_in(now)}"


def _contact_params(address: Address) -> tuple[tuple[str, str | None], ...]:
    return tuple(
        (name, value) for name, value in address.params if name.lower() not in ("expires", "q")
    )


def _same_contact(stored: Binding, uri: object) -> bool:
    try:
        return SipURI.parse(stored.contact) == uri
    except RemoteProtocolError:
        return stored.contact == str(uri)


def process_register(
    request: Request,
    current: list[Binding],
    *,
    aor: str,
    now: float,
    policy: RegistrarPolicy | None = None,
    source: str | None = None,
) -> RegisterOutcome:
    """Apply RFC 3261 §10.3 steps 6-8 to ``request`` against ``current`` bindings.

    ``now`` is wall-clock seconds (bindings persist across restarts); ``source``
    records where the request came from. Malformed Contact/Expires values raise
    RemoteProtocolError (the caller answers its status_hint).
    """
    policy = policy or RegistrarPolicy()
    date = ("Date", email.utils.formatdate(now, usegmt=True))
    call_id = request.call_id
    cseq = request.cseq.seq
    path = tuple(str(a) for a in request.path)

    def ok(bindings: list[Binding]) -> RegisterOutcome:
        headers = [("Contact", _format_binding(b, now)) for b in bindings]
        if path:
            headers.extend(("Path", p) for p in path)  # RFC 3327 §5.3
        headers.append(date)
        return RegisterOutcome(status=200, headers=headers, bindings=bindings)

    if "Contact" not in request.headers:
        # Step 6: no Contact -> a query; answer the current bindings, change nothing.
        out = ok(current)
        out.bindings = None
        return out

    if request.contact_is_star:
        # Step 6: "Contact: *" only alone and only with Expires: 0.
        if len(request.headers.get_all("Contact")) != 1 or request.expires != 0:
            return RegisterOutcome(
                status=400, reason="Contact * needs Expires: 0 and no other Contact"
            )
        for b in current:
            if b.call_id == call_id and cseq <= b.cseq:
                return RegisterOutcome(
                    status=500,
                    reason="Out-of-order REGISTER (CSeq not higher)",
                    headers=[("Retry-After", "1")],
                )
        return ok([])

    updated = list(current)
    for address in request.contact:
        if not isinstance(address.uri, SipURI) and address.uri.scheme not in ("tel",):
            # Any absolute URI may be registered in theory, but we can only route to SIP.
            return RegisterOutcome(
                status=400, reason=f"Unsupported Contact URI scheme {address.uri.scheme}"
            )
        expires = _requested_expires(address, request, policy)
        if 0 < expires < policy.min_expires and expires < 3600:
            return RegisterOutcome(
                status=423,
                reason="Interval Too Brief",
                headers=[("Min-Expires", str(policy.min_expires)), date],
            )
        expires = min(expires, policy.max_expires)
        instance = address.param("+sip.instance")
        reg_id_text = address.param("reg-id")
        reg_id = int(reg_id_text) if reg_id_text is not None and reg_id_text.isdigit() else None
        # Existing binding for this contact: same URI (§19.1.4), or the same device per
        # RFC 5626 §6 (instance-id and reg-id) which replaces its old flow's contact.
        match_index = None
        for i, b in enumerate(updated):
            if _same_contact(b, address.uri) or (
                instance is not None and b.instance_id == instance and b.reg_id == reg_id
            ):
                match_index = i
                break
        if match_index is not None:
            old = updated[match_index]
            if old.call_id == call_id and cseq <= old.cseq:
                return RegisterOutcome(
                    status=500,
                    reason="Out-of-order REGISTER (CSeq not higher)",
                    headers=[("Retry-After", "1")],
                )
            del updated[match_index]
            if expires == 0:
                continue
        elif expires == 0:
            continue
        q_value = address.q
        new = Binding(
            aor=aor,
            contact=binding_contact(address),
            expires_at=now + expires,
            q=q_value,
            call_id=call_id,
            cseq=cseq,
            path=path,
            instance_id=instance,
            reg_id=reg_id,
            source=source,
            user_agent=request.headers.get("User-Agent"),
            params=_contact_params(address),
        )
        updated.insert(match_index if match_index is not None else len(updated), new)
    if len(updated) > policy.max_bindings:
        return RegisterOutcome(
            status=403, reason=f"Too many registered contacts (at most {policy.max_bindings})"
        )
    return ok(updated)


class Registrar:
    """Process REGISTERs against a :class:`LocationStore` (one in-flight update per AOR).

    ``wall_clock`` supplies wall-clock seconds (``time.time`` in production; tests pass
    a fake). :meth:`register` returns the outcome; the server turns it into a response.
    """

    def __init__(
        self,
        store: LocationStore,
        *,
        wall_clock: Callable[[], float],
        policy: RegistrarPolicy | None = None,
        on_change: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or RegistrarPolicy()
        self._clock = wall_clock
        self._locks: dict[str, list[Any]] = {}
        self._on_change = on_change

    async def register(
        self, request: Request, *, source: str | None = None, aor: str | None = None
    ) -> RegisterOutcome:
        """Process a REGISTER; ``aor`` overrides the To-derived address-of-record (e.g.
        the authenticated user's AOR when the phone registered to the server's IP)."""
        aor = aor or aor_of(request)
        # One lock per AOR, alive only while REGISTERs for it are in flight: the table is
        # bounded by the requests being processed. entry = [lock, users].
        entry = self._locks.get(aor)
        if entry is None:
            entry = self._locks[aor] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                now = self._clock()
                current = await self.store.get(aor, now=now)
                outcome = process_register(
                    request, current, aor=aor, now=now, policy=self.policy, source=source
                )
                if outcome.bindings is not None:
                    try:
                        await self.store.replace(aor, outcome.bindings)
                    except StoreError:
                        # §10.3 step 7: a failed commit fails the request with 500.
                        return RegisterOutcome(status=500, reason="Location store unavailable")
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[aor]
        if outcome.bindings is not None and self._on_change is not None:
            result = self._on_change(aor)
            if result is not None:
                await result
        return outcome

    async def lookup(self, aor: str) -> list[Binding]:
        """Current bindings of ``aor``, highest q first (absent q counts as 1.0, §16.6)."""
        bindings = await self.store.get(aor, now=self._clock())
        return sorted(bindings, key=lambda b: -(b.q if b.q is not None else 1.0))
