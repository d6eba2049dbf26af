"""The REGISTER client of a user agent (RFC 3261 §10.2), sans-IO, as a table.

:class:`Registration` keeps one contact bound to one address-of-record at one registrar:

* REGISTER with our Contact and ``Expires`` (§10.2.1), To = From = the AOR, one Call-ID
  for every request of the registration and CSeq going up by one (§10.2: "a UA SHOULD use
  the same Call-ID for all registrations during a single boot cycle");
* 401/407 answered once per challenge by a :class:`~sipwire.core.digest.DigestClient`
  (§22.2; refreshes then carry credentials pre-emptively, RFC 7616 §3.6);
* 423 (Interval Too Brief) retried at once with the response's ``Min-Expires``
  (§10.2.8);
* the 200's Contact list searched for our binding (§10.2.4: URI equality of §19.1.4, or
  the same ``+sip.instance``) and its ``expires`` taken as granted (else the Expires
  header, else what we asked for);
* the refresh sent ``max(granted / 2, granted - refresh_margin)`` seconds after the 200:
  30 s before expiry by default, never earlier than half-way for short registrations;
* after a failure, a new attempt after an exponential backoff with jitter (RFC 5626 §4.5
  style): ``min(max_backoff, base_backoff * 2**(failures-1))``, scaled by a random factor
  in [0.5, 1], or the response's ``Retry-After`` when larger (capped at ``max_backoff``);
* :meth:`Registration.unregister` sends ``Expires: 0`` for our contact (§10.2.2; not
  ``*``, which would remove other devices' bindings too).

Outputs are :class:`~sipwire.core.dialog.SendRequest` (the shell adds the Via and runs the
client transaction; every final response, or a 408/503 it made up, goes back to
:meth:`Registration.receive_response`), events are :class:`Registered`,
:class:`RegistrationFailed`, :class:`Unregistered`.  Time is an argument; randomness
(tags, Call-ID, jitter) is injected.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.dialog import SendRequest, next_hop
from sipwire.core.digest import DigestClient
from sipwire.core.headervalues import parse_int_header
from sipwire.core.message import Request, Response
from sipwire.core.uri import URI, parse_uri

__all__ = [
    "TABLE",
    "Ignore",
    "Misuse",
    "RegInput",
    "RegState",
    "Registered",
    "Registration",
    "RegistrationConfig",
    "RegistrationEvent",
    "RegistrationFailed",
    "Transition",
    "Unregistered",
    "refresh_delay",
    "render_markdown",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationConfig:
    """Timing of a :class:`Registration` (defaults in brackets, seconds).

    ``refresh_margin`` [30]: refresh this long before expiry (see :func:`refresh_delay`).
    ``base_backoff`` [30] and ``max_backoff`` [1800]: the retry wait after failures.
    ``max_min_expires`` [86400]: a 423's Min-Expires above it is a failure.
    ``max_auth_attempts`` [2]: credentials sent per REGISTER exchange before giving up.
    ``preemptive_auth`` [True]: refreshes carry the last credentials (RFC 7616 §3.6).
    """

    refresh_margin: float = 30.0
    base_backoff: float = 30.0
    max_backoff: float = 1800.0
    max_min_expires: int = 86400
    max_auth_attempts: int = 2
    preemptive_auth: bool = True

    def __post_init__(self) -> None:
        if self.base_backoff <= 0 or self.max_backoff < self.base_backoff:
            raise LocalProtocolError("need 0 < base_backoff <= max_backoff")
        if self.refresh_margin < 0:
            raise LocalProtocolError("refresh_margin must not be negative")


def refresh_delay(granted: int, margin: float = 30.0) -> float:
    """When to refresh a binding granted for ``granted`` seconds: ``margin`` before it
    expires, but not before half of it has passed (``max(granted/2, granted-margin)``)."""
    return max(granted / 2, granted - margin)


# -------------------------------------------------------------------------------- table


class RegState(enum.Enum):
    IDLE = "Idle"
    REGISTERING = "Registering"  # a REGISTER (first, refresh or retry) is out
    REGISTERED = "Registered"  # bound; the refresh timer runs
    WAITING = "Waiting to retry"  # failed; the backoff timer runs
    UNREGISTER_PENDING = "Unregister pending"  # unregister() while a REGISTER was out
    UNREGISTERING = "Unregistering"  # REGISTER with Expires: 0 is out
    UNREGISTERED = "Unregistered"


class RegInput(enum.Enum):
    APP_REGISTER = "app: register"
    APP_UNREGISTER = "app: unregister"
    RESP_2XX = "2xx"
    RESP_AUTH = "401/407"
    RESP_423 = "423"
    RESP_FAILURE = "other final"
    TIMER_REFRESH = "refresh timer"
    TIMER_RETRY = "retry timer"
    GIVE_UP = "retry impossible"  # follow-up: the challenge or 423 cannot be answered


class RegAction(enum.Enum):
    SEND_REGISTER = "send REGISTER"
    SEND_UNREGISTER = "send REGISTER Expires: 0"
    RETRY_AUTH = "re-send with credentials"
    RETRY_423 = "re-send with Min-Expires"
    ON_REGISTERED = "take the binding, start refresh timer"
    ON_FAILED = "report failure, start backoff timer"
    ON_UNREGISTERED = "report unregistered"
    STOP_TIMERS = "stop timers"


@dataclass(frozen=True, slots=True)
class Transition:
    actions: tuple[RegAction, ...]
    next_state: RegState


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str
    default: bool = False


@dataclass(frozen=True, slots=True)
class Misuse:
    reason: str
    default: bool = False


def _table() -> dict[tuple[RegState, RegInput], Transition | Ignore | Misuse]:
    """RFC 3261 §10.2 (REGISTER), §22.2 (challenges), §10.2.8 (423)."""
    S, In, A = RegState, RegInput, RegAction
    t: dict[tuple[RegState, RegInput], Transition | Ignore | Misuse] = {}

    def on(states: Iterable[RegState], inputs: Iterable[RegInput], *rest: object) -> None:
        *acts, to = rest
        assert isinstance(to, RegState)
        for s in states:
            for i in inputs:
                t[(s, i)] = Transition(tuple(a for a in acts if isinstance(a, RegAction)), to)

    on([S.IDLE, S.UNREGISTERED], [In.APP_REGISTER], A.SEND_REGISTER, S.REGISTERING)
    on([S.REGISTERING], [In.RESP_2XX], A.ON_REGISTERED, S.REGISTERED)
    on([S.REGISTERED], [In.GIVE_UP], A.ON_FAILED, S.WAITING)  # a 200 granting 0 seconds
    on([S.REGISTERING], [In.RESP_AUTH], A.RETRY_AUTH, S.REGISTERING)
    on([S.REGISTERING], [In.RESP_423], A.RETRY_423, S.REGISTERING)
    on([S.REGISTERING], [In.RESP_FAILURE, In.GIVE_UP], A.ON_FAILED, S.WAITING)
    on([S.REGISTERING], [In.APP_UNREGISTER], S.UNREGISTER_PENDING)
    t[(S.REGISTERING, In.APP_REGISTER)] = Ignore("a REGISTER is already out")
    on(
        [S.REGISTERED],
        [In.TIMER_REFRESH, In.APP_REGISTER],
        A.STOP_TIMERS,
        A.SEND_REGISTER,
        S.REGISTERING,
    )
    on(
        [S.WAITING],
        [In.TIMER_RETRY, In.APP_REGISTER],
        A.STOP_TIMERS,
        A.SEND_REGISTER,
        S.REGISTERING,
    )
    on(
        [S.REGISTERED, S.WAITING],
        [In.APP_UNREGISTER],
        A.STOP_TIMERS,
        A.SEND_UNREGISTER,
        S.UNREGISTERING,
    )
    responses = [In.RESP_2XX, In.RESP_AUTH, In.RESP_423, In.RESP_FAILURE, In.GIVE_UP]
    on([S.UNREGISTER_PENDING], responses, A.SEND_UNREGISTER, S.UNREGISTERING)
    on([S.UNREGISTERING], [In.RESP_AUTH], A.RETRY_AUTH, S.UNREGISTERING)
    on(
        [S.UNREGISTERING],
        [In.RESP_2XX, In.RESP_423, In.RESP_FAILURE, In.GIVE_UP],
        A.ON_UNREGISTERED,
        S.UNREGISTERED,
    )
    for s in (S.UNREGISTER_PENDING, S.UNREGISTERING, S.UNREGISTERED, S.IDLE):
        t[(s, In.APP_UNREGISTER)] = Ignore("nothing (more) to unregister")
    for s in (S.UNREGISTER_PENDING, S.UNREGISTERING):
        t[(s, In.APP_REGISTER)] = Misuse("unregistering; register() again once Unregistered")
    for s in RegState:
        for i in RegInput:
            if (s, i) not in t:
                t[(s, i)] = (
                    Misuse(f"not allowed while {s.value}", default=True)
                    if i.name.startswith("APP_")
                    else Ignore("stale or cannot happen", default=True)
                )
    return t


TABLE = _table()


def render_markdown() -> str:
    """The table as Markdown (non-default rows), for ``docs/dialogs.md``."""
    lines = ["| State | Input | Actions → next state |", "|---|---|---|"]
    for state in RegState:
        for inp in RegInput:
            entry = TABLE[(state, inp)]
            if isinstance(entry, Ignore | Misuse):
                if entry.default:
                    continue
                cell = f"{type(entry).__name__.lower()}: {entry.reason}"
            else:
                acts = ", ".join(a.value for a in entry.actions) or "—"
                cell = f"{acts} → **{entry.next_state.value}**"
            lines.append(f"| {state.value} | {inp.value} | {cell} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered:
    """The registrar accepted our binding for ``expires`` seconds.  ``binding_found`` is
    False when the 200 did not list our contact (e.g. a NAT-rewritten one): ``expires``
    then comes from the Expires header or our request.  ``contacts``: every binding the
    registrar listed for the AOR (§10.2.4)."""

    expires: int
    binding_found: bool
    contacts: tuple[Address, ...]
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationFailed:
    """A REGISTER failed (``status``: the final response, or 408/503 from the shell);
    the next attempt goes out in ``retry_in`` seconds."""

    status: int
    response: Response
    retry_in: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Unregistered:
    """The un-REGISTER completed (``status`` 2xx) or failed (anything else)."""

    status: int
    response: Response


RegistrationEvent = Registered | RegistrationFailed | Unregistered


def _default_token() -> str:
    return secrets.token_hex(8)


def _address(value: Address | URI | str) -> Address:
    if isinstance(value, Address):
        return value
    return Address.parse(value) if isinstance(value, str) else Address(value)


class Registration:
    """One binding of ``contact`` to ``aor`` at ``registrar``; see the module docstring.

    ``expires`` is the lifetime asked for (default 3600 s); ``route`` a preloaded route
    set (outbound proxy); ``headers`` are added to every REGISTER (e.g. ``Supported``);
    ``auth`` answers challenges.  :meth:`register` starts it, :meth:`unregister` stops it.
    """

    def __init__(
        self,
        *,
        registrar: URI | str,
        aor: Address | URI | str,
        contact: Address | URI | str,
        expires: int = 3600,
        route: Sequence[Address | URI | str] = (),
        headers: Iterable[tuple[str, str]] = (),
        auth: DigestClient | None = None,
        config: RegistrationConfig | None = None,
        call_id: str | None = None,
        random_token: Callable[[], str] = _default_token,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        if not 0 < expires <= 2**32 - 1:
            raise LocalProtocolError("expires must be a positive number of seconds")
        self.registrar = parse_uri(registrar) if isinstance(registrar, str) else registrar
        self.aor = _address(aor).without_param("tag")
        self.contact = _address(contact).without_param("expires")
        self.requested_expires = expires
        self.route = tuple(_address(r) for r in route)
        self.headers = tuple(headers)
        self.auth = auth
        self.config = config or RegistrationConfig()
        self.call_id = call_id or f"{random_token()}{random_token()}"
        self.from_tag = random_token()
        self._random_below = random_below
        self.state = RegState.IDLE
        #: CSeq number of the last REGISTER sent (§10.2: up by one each time).
        self.cseq = 0
        #: When the binding runs out (from the last 200), or None.
        self.expires_at: float | None = None
        #: Consecutive failures (reset by a 200).
        self.failures = 0
        self._expires = expires  # what we ask for now (raised by 423)
        self._request: Request | None = None
        self._attempts = 0  # credentials sent in this exchange
        self._timers: dict[RegInput, float] = {}
        self._out: list[SendRequest] = []
        self._events: list[RegistrationEvent] = []

    # ------------------------------------------------------------------ inspection

    @property
    def registered(self) -> bool:
        """Whether a binding granted by the registrar is (as far as we know) alive."""
        return self.expires_at is not None and self.state is not RegState.UNREGISTERED

    def outgoing(self) -> list[SendRequest]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[RegistrationEvent]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if at <= now and self._timers.get(timer) == at:
                del self._timers[timer]
                if self.expires_at is not None and now >= self.expires_at:
                    self.expires_at = None  # the binding ran out meanwhile
                self._feed(timer, now, None)

    # ------------------------------------------------------------------ inputs

    def register(self, now: float) -> Request:
        """Send a REGISTER now (first registration, or an early refresh/retry)."""
        self._feed(RegInput.APP_REGISTER, now, None)
        assert self._request is not None
        return self._request

    def unregister(self, now: float) -> None:
        """Remove our binding (``Expires: 0``, §10.2.2); a no-op if there is none."""
        self._feed(RegInput.APP_UNREGISTER, now, None)

    def receive_response(self, response: Response, now: float) -> None:
        """A response to our last REGISTER (others are stale and ignored)."""
        request = self._request
        cseq = response.cseq
        if request is None or cseq.method != "REGISTER" or cseq.seq != self.cseq:
            return
        if response.call_id != self.call_id:
            return
        status = response.status
        if status < 200:
            return
        if status < 300:
            inp = RegInput.RESP_2XX
        elif status in (401, 407) and self.auth is not None:
            inp = RegInput.RESP_AUTH
        elif status == 423:
            inp = RegInput.RESP_423
        else:
            inp = RegInput.RESP_FAILURE
        self._feed(inp, now, response)

    # ------------------------------------------------------------------ the machine

    def _feed(self, first: RegInput, now: float, response: Response | None) -> None:
        queue = deque([first])
        while queue:
            inp = queue.popleft()
            entry = TABLE[(self.state, inp)]
            if isinstance(entry, Misuse):
                raise LocalProtocolError(f"{inp.value}: {entry.reason}")
            if isinstance(entry, Ignore):
                continue
            for action in entry.actions:
                follow = self._act(action, now, response)
                if follow is not None:
                    queue.append(follow)
            self.state = entry.next_state

    def _act(self, action: RegAction, now: float, response: Response | None) -> RegInput | None:
        A = RegAction
        if action is A.SEND_REGISTER:
            self._attempts = 0
            self._send(self._build(self._expires, preemptive=True))
        elif action is A.SEND_UNREGISTER:
            self._attempts = 0
            self._send(self._build(0, preemptive=True))
        elif action is A.STOP_TIMERS:
            self._timers.clear()
        elif action is A.RETRY_AUTH:
            return self._retry_auth(response)
        elif action is A.RETRY_423:
            return self._retry_423(response)
        elif action is A.ON_REGISTERED:
            assert response is not None
            return self._on_registered(response, now)
        elif action is A.ON_FAILED:
            assert response is not None
            self._on_failed(response, now)
        else:
            assert response is not None
            self.expires_at = None
            self._timers.clear()
            self._events.append(Unregistered(status=response.status, response=response))
        return None

    # ------------------------------------------------------------------ actions

    def _build(self, expires: int, *, preemptive: bool) -> Request:
        self.cseq += 1
        rows = [("Route", str(r)) for r in self.route]
        contact = (
            str(self.contact.with_param("expires", "0")) if expires == 0 else str(self.contact)
        )
        rows += [
            ("Max-Forwards", "70"),
            ("From", str(self.aor.with_tag(self.from_tag))),
            ("To", str(self.aor)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", contact),
            ("Expires", str(expires)),
            *self.headers,
        ]
        request = Request("REGISTER", self.registrar, rows)
        if preemptive and self.auth is not None and self.config.preemptive_auth:
            for name, value in self.auth.authorization_headers(
                method="REGISTER", uri=request.uri_text
            ):
                request.headers.add(name, value)
        return request

    def _send(self, request: Request) -> None:
        self._request = request
        self._out.append(SendRequest(request=request, next_hop=next_hop(request)))

    def _resend(self, extra: Iterable[tuple[str, str]] = ()) -> Request:
        """The last REGISTER again with a new CSeq (§10.2: same Call-ID)."""
        old = self._request
        assert old is not None
        expires = old.expires if old.expires is not None else self._expires
        new = self._build(expires, preemptive=False)
        for name, value in extra:
            new.headers.add(name, value)
        return new

    def _retry_auth(self, response: Response | None) -> RegInput | None:
        assert response is not None and self.auth is not None and self._request is not None
        if self._attempts >= self.config.max_auth_attempts:
            return RegInput.GIVE_UP
        old = self._request
        new = self._resend()
        answer = self.auth.handle_challenge(
            response.headers, method="REGISTER", uri=new.uri_text, sent=old.headers
        )
        if not answer.ok:
            self.cseq -= 1  # not sent
            return RegInput.GIVE_UP
        for name, value in answer.headers:
            new.headers.add(name, value)
        self._attempts += 1
        self._send(new)
        return None

    def _retry_423(self, response: Response | None) -> RegInput | None:
        """§10.2.8: ask again with at least Min-Expires."""
        assert response is not None and self._request is not None
        try:
            minimum = response.min_expires
        except RemoteProtocolError:
            minimum = None
        asked = self._request.expires or self._expires
        if minimum is None or minimum <= asked or minimum > self.config.max_min_expires:
            return RegInput.GIVE_UP
        self._expires = minimum
        self._send(self._build(minimum, preemptive=True))
        return None

    def _on_registered(self, response: Response, now: float) -> RegInput | None:
        asked = self._request.expires if self._request is not None else None
        asked = self._expires if asked is None else asked
        try:
            contacts = tuple(response.contact)
        except RemoteProtocolError:
            contacts = ()
        granted: int | None = None
        found = False
        instance = self.contact.param("+sip.instance")
        for address in contacts:
            same = address.uri == self.contact.uri or (
                instance is not None and address.param("+sip.instance") == instance
            )
            if not same:
                continue
            found = True
            try:
                granted = address.expires
            except RemoteProtocolError:
                granted = None
            break
        if granted is None:
            try:
                granted = response.expires
            except RemoteProtocolError:
                granted = None
        if granted is None:
            granted = asked
        if granted <= 0:  # the registrar did not keep it: a failure
            return RegInput.GIVE_UP
        self.failures = 0
        self.expires_at = now + granted
        self._timers = {
            RegInput.TIMER_REFRESH: now + refresh_delay(granted, self.config.refresh_margin)
        }
        self._events.append(
            Registered(expires=granted, binding_found=found, contacts=contacts, response=response)
        )
        return None

    def _on_failed(self, response: Response, now: float) -> None:
        self.failures += 1
        cfg = self.config
        wait = min(cfg.max_backoff, cfg.base_backoff * 2 ** min(self.failures - 1, 30))
        wait *= (500 + self._random_below(501)) / 1000  # jitter: 50-100 %
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                text = retry_after.split(";")[0].split("(")[0]
                seconds = parse_int_header(text, "Retry-After", 2**32 - 1)
                wait = min(max(wait, float(seconds)), cfg.max_backoff)
            except RemoteProtocolError:
                pass
        if self.expires_at is not None and now >= self.expires_at:
            self.expires_at = None
        self._timers = {RegInput.TIMER_RETRY: now + wait}
        self._events.append(
            RegistrationFailed(status=response.status, response=response, retry_in=wait)
        )
