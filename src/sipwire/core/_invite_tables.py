"""The tables, states, inputs, actions and events of :mod:`sipwire.core.invite`.

Two transition tables drive an :class:`~sipwire.core.invite.InviteSession`:

* :data:`SESSION_TABLE` -- the call: ``(SessionState, SessionInput) -> entry``
  (RFC 3261 §13 INVITE, §14 re-INVITE, §15 BYE, §9 CANCEL, §12.2.2; RFC 6026);
* :data:`MODIFY_TABLE` -- the session modification inside a confirmed dialog
  (re-INVITE and UPDATE both ways, 491 glare and the §14.1 retry timer; RFC 3311 §5).

An entry is a :class:`Transition` (actions in order, next state, and whether the call
ends and why), an :class:`Ignore` or a :class:`Misuse`.  Every pair is present:
application inputs not listed are misuse, network inputs and timers not listed are
ignored (``tests/test_invite_session.py`` checks it).  ``docs/dialogs.md`` is generated
by :func:`render_markdown`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sipwire.core.dialog import DEFAULT_MAX_DIALOGS_PER_SET
from sipwire.core.message import Request, Response
from sipwire.core.offeranswer import MediaChange, NegotiatedMedia

__all__ = [
    "MODIFY_TABLE",
    "SDP",
    "SESSION_TABLE",
    "Action",
    "EarlyMedia",
    "EndReason",
    "Event",
    "Ignore",
    "InDialogRequest",
    "InDialogResponse",
    "MediaNegotiated",
    "Misuse",
    "ModificationCompleted",
    "ModifyInput",
    "ModifyState",
    "Progress",
    "ReinviteReceived",
    "Role",
    "SessionConfig",
    "SessionEnded",
    "SessionEstablished",
    "SessionInput",
    "SessionState",
    "Transition",
    "render_markdown",
]

SDP = "application/sdp"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Settings of an :class:`InviteSession` (defaults in brackets).

    ``t1`` [0.5 s]: RFC 3261 T1; the UAS waits 64*T1 for the ACK of its 2xx before
    sending BYE (§13.3.1.4, §14.2), and a terminated session lingers 64*T1 to re-ACK
    retransmitted or forked 2xx (then :attr:`InviteSession.closed`).  ``allow`` and
    ``supported``: the Allow and Supported values we send; an INVITE requiring an option
    tag not in ``supported`` is answered 420 (§8.2.2.3).  ``max_auth_attempts`` [2]:
    credentials sent per request before giving up.  ``auto_accept_reinvite`` [True]:
    answer acceptable re-INVITEs at once (else :class:`ReinviteReceived`).
    ``hangup_status`` [603]: what :meth:`InviteSession.hangup` answers an unanswered
    INVITE with.  ``max_pending_requests`` [32]: in-dialog requests of the application
    outstanding at once.  ``max_dialogs`` [16]: early/forked dialogs per INVITE.
    """

    t1: float = 0.5
    allow: tuple[str, ...] = (
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "INFO",
        "MESSAGE",
        "NOTIFY",
        "UPDATE",
    )
    supported: tuple[str, ...] = ()
    max_auth_attempts: int = 2
    auto_accept_reinvite: bool = True
    hangup_status: int = 603
    max_pending_requests: int = 32
    max_dialogs: int = DEFAULT_MAX_DIALOGS_PER_SET


# ----------------------------------------------------------------------------- the tables


class Role(enum.Enum):
    UAC = "UAC"  # we sent the INVITE (we own the Call-ID, §14.1)
    UAS = "UAS"


class SessionState(enum.Enum):
    IDLE = "Idle"  # UAC: built, INVITE not sent yet
    CALLING = "Calling"  # UAC: INVITE sent, no early dialog
    EARLY = "Early"  # UAC: early dialog(s) from 1xx with a To tag
    CANCELLING = "Cancelling"  # UAC: CANCEL asked for, waiting for the final response
    INCOMING = "Incoming"  # UAS: INVITE received, no final response yet
    ANSWERED = "Answered"  # UAS: 2xx sent, waiting for the ACK
    ANSWERED_HANGUP = "Answered, hangup pending"  # UAS: BYE waits for the ACK (§15)
    CONFIRMED = "Confirmed"  # the call is up
    TERMINATING = "Terminating"  # BYE sent, waiting for its final response
    TERMINATED = "Terminated"


class SessionInput(enum.Enum):
    # From the application.
    APP_INVITE = "app: invite"
    APP_HANGUP = "app: hangup"
    APP_RING = "app: ring (1xx)"
    APP_ANSWER = "app: answer (2xx)"
    APP_REJECT = "app: reject (3xx-6xx)"
    APP_MODIFY = "app: re-INVITE/UPDATE/accept/reject"
    APP_REQUEST = "app: in-dialog request"
    # Responses to the INVITE that created the session.
    RESP_1XX = "1xx without tag"
    RESP_1XX_DIALOG = "1xx with To tag"
    RESP_2XX = "2xx (first)"
    RESP_2XX_AGAIN = "2xx retransmission"
    RESP_2XX_FORK = "2xx from another fork"
    RESP_AUTH = "401/407"
    RESP_FAILURE = "300-699"
    # Responses to our other requests.
    RESP_BYE_AUTH = "401/407 to BYE"
    RESP_BYE_FINAL = "final response to BYE"
    RESP_MODIFY = "response to re-INVITE/UPDATE"
    RESP_REQUEST = "response to an app request"
    # Requests.
    REQ_ACK = "ACK"
    REQ_BYE = "BYE"
    REQ_CANCEL = "CANCEL"
    REQ_INVITE = "re-INVITE"
    REQ_UPDATE = "UPDATE"
    REQ_OTHER = "other request"
    # Timers.
    TIMER_ACK = "ACK timer (64*T1)"
    TIMER_GLARE = "491 retry timer"
    TIMER_LINGER = "linger timer (64*T1)"
    # Follow-ups fed by actions.
    AUTH_FAILED = "authentication failed"
    MEDIA_FAILED = "unusable SDP"
    DIALOG_GONE = "481 to in-dialog request"
    REQUEST_TIMEOUT = "408 to in-dialog request"
    INCOMPATIBLE = "INVITE we cannot take"


class ModifyState(enum.Enum):
    IDLE = "Idle"
    LOCAL = "Local pending"  # our re-INVITE/UPDATE awaits its final response
    GLARE_WAIT = "Glare wait"  # 491 received; the §14.1 retry timer runs
    REMOTE = "Remote pending"  # their re-INVITE awaits the application's answer
    REMOTE_ACK = "Remote ACK wait"  # we sent 2xx to their re-INVITE; ACK not yet in


class ModifyInput(enum.Enum):
    APP_REINVITE = "app: re-INVITE"
    APP_UPDATE = "app: UPDATE"
    APP_ACCEPT = "app: accept re-INVITE"
    APP_REJECT = "app: reject re-INVITE"
    REQ_INVITE = "re-INVITE"
    REQ_UPDATE = "UPDATE with offer"
    REQ_UPDATE_NO_OFFER = "UPDATE without offer"
    REQ_ACK = "ACK"
    REQ_CANCEL = "CANCEL"
    RESP_2XX = "2xx"
    RESP_491 = "491"
    RESP_AUTH = "401/407"
    RESP_GONE = "481/408"
    RESP_FAILURE = "other non-2xx"
    TIMER_GLARE = "491 retry timer"


class Action(enum.Enum):
    SEND_INVITE = "send INVITE"
    SEND_CANCEL = "send CANCEL"
    PROGRESS = "report progress"
    EARLY_DIALOG = "early dialog (+ early media)"
    ACK_2XX = "confirm dialog, send ACK"
    ESTABLISHED = "report established (+ media)"
    RESEND_ACK = "re-send ACK"
    ACK_AND_BYE_FORK = "ACK + BYE the forked dialog"
    SEND_BYE = "send BYE"
    RETRY_INVITE = "re-send INVITE with credentials"
    RETRY_BYE = "re-send BYE with credentials"
    SEND_1XX = "send 1xx"
    SEND_2XX = "send 2xx"
    SEND_REJECT = "send 3xx-6xx"
    SEND_487 = "send 487 to the INVITE"
    RESPOND_OK = "answer 200"
    RESPOND_481 = "answer 481"
    RESPOND_491 = "answer 491"
    RESPOND_500 = "answer 500 + Retry-After"
    START_ACK_TIMER = "start ACK timer"
    STOP_ACK_TIMER = "stop ACK timer"
    CONFIRM = "ACK in: report established (+ answer)"
    PASS_TO_APP = "pass to application"
    SEND_REQUEST = "send the app's request"
    REPORT_RESPONSE = "report response (auth retry)"
    DELEGATE = "to the modify table"
    ABORT_REMOTE_MODIFY = "487 to a pending re-INVITE"
    CLOSE = "close"
    # The modify table.
    SEND_REINVITE = "send re-INVITE"
    SEND_UPDATE = "send UPDATE"
    ACK_MODIFY = "ACK 2xx, apply answer"
    START_GLARE_TIMER = "roll back, start 491 timer"
    RETRY_MODIFY = "re-send with credentials"
    MODIFY_FAILED = "roll back, report failure"
    MODIFY_GONE = "roll back, end dialog"
    RESEND_AFTER_GLARE = "re-send the modification"
    DEFER_GLARE = "re-arm 491 timer"
    REMOTE_OFFER = "take their offer"
    ACCEPT_REMOTE = "send 2xx to re-INVITE"
    REJECT_REMOTE = "reject re-INVITE"
    APPLY_ACK = "ACK in: apply answer"
    ANSWER_UPDATE = "answer UPDATE"


class EndReason(enum.Enum):
    REJECTED = "rejected"  # the callee answered 3xx-6xx (status)
    CANCELLED = "cancelled"  # we cancelled (UAC) / the caller cancelled (UAS)
    DECLINED = "declined"  # we answered 3xx-6xx (UAS)
    INCOMPATIBLE = "incompatible"  # the INVITE could not be accepted (420/415/488/400)
    LOCAL_BYE = "local BYE"
    REMOTE_BYE = "remote BYE"
    ACK_TIMEOUT = "no ACK"  # 64*T1 without ACK for our 2xx: BYE sent
    AUTH_FAILED = "authentication failed"
    MEDIA_FAILED = "unusable SDP"  # ACK (if owed) and BYE sent
    DIALOG_GONE = "dialog gone"  # 481/408 to an in-dialog request (§12.2.1.2)


StateT = TypeVar("StateT", SessionState, ModifyState)


@dataclass(frozen=True, slots=True)
class Transition(Generic[StateT]):
    actions: tuple[Action, ...]
    next_state: StateT
    ends: EndReason | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str
    default: bool = False


@dataclass(frozen=True, slots=True)
class Misuse:
    reason: str
    default: bool = False


_S, _I, _A, _E = SessionState, SessionInput, Action, EndReason
_M, _MI = ModifyState, ModifyInput
_APP_INPUTS = frozenset(i for i in SessionInput if i.name.startswith("APP_"))
_MOD_APP_INPUTS = frozenset(i for i in ModifyInput if i.name.startswith("APP_"))
_REQS = (_I.REQ_BYE, _I.REQ_INVITE, _I.REQ_UPDATE, _I.REQ_OTHER)


SessionEntry = Transition[SessionState] | Ignore | Misuse
ModifyEntry = Transition[ModifyState] | Ignore | Misuse


def _session_table() -> dict[tuple[SessionState, SessionInput], SessionEntry]:
    """RFC 3261 §13 (INVITE), §14 (re-INVITE), §15 (BYE), §9 (CANCEL), §12.2.2; RFC 6026."""
    t: dict[tuple[SessionState, SessionInput], SessionEntry] = {}

    def on(
        states: Iterable[SessionState],
        inputs: Iterable[SessionInput],
        actions: tuple[Action, ...],
        to: SessionState | None = None,
        ends: EndReason | None = None,
    ) -> None:
        for s in states:
            for i in inputs:
                t[(s, i)] = Transition(actions, s if to is None else to, ends)

    on([_S.IDLE], [_I.APP_INVITE], (_A.SEND_INVITE,), _S.CALLING)
    # UAC waiting for the final response (§13.2.2).
    waiting = (_S.CALLING, _S.EARLY)
    on(waiting, [_I.APP_HANGUP], (_A.SEND_CANCEL,), _S.CANCELLING)
    on(waiting, [_I.RESP_1XX], (_A.PROGRESS,))
    on(waiting, [_I.RESP_1XX_DIALOG], (_A.EARLY_DIALOG,), _S.EARLY)
    on(waiting, [_I.RESP_2XX], (_A.ACK_2XX, _A.ESTABLISHED), _S.CONFIRMED)
    on(waiting, [_I.RESP_AUTH], (_A.RETRY_INVITE,), _S.CALLING)
    on(waiting, [_I.RESP_FAILURE], (), _S.TERMINATED, _E.REJECTED)
    on(waiting, [_I.AUTH_FAILED], (), _S.TERMINATED, _E.AUTH_FAILED)
    on([_S.CALLING], _REQS, (_A.RESPOND_481,))  # no early dialog yet to match
    on([_S.EARLY, _S.CANCELLING], [_I.REQ_BYE], (_A.RESPOND_OK,))
    on([_S.EARLY, _S.CANCELLING], [_I.REQ_INVITE], (_A.RESPOND_491,))  # §14.2
    on([_S.EARLY, _S.CANCELLING], [_I.REQ_UPDATE], (_A.DELEGATE,))
    on([_S.EARLY, _S.CANCELLING], [_I.REQ_OTHER], (_A.PASS_TO_APP,))
    # §9.1: CANCEL sent; a 2xx racing it is ACKed and BYEd (§15).
    t[(_S.CANCELLING, _I.APP_HANGUP)] = Ignore("the CANCEL is on its way")
    on([_S.CANCELLING], [_I.RESP_2XX], (_A.ACK_2XX, _A.SEND_BYE), _S.TERMINATING, _E.CANCELLED)
    on([_S.CANCELLING], [_I.RESP_AUTH, _I.RESP_FAILURE], (), _S.TERMINATED, _E.CANCELLED)
    # UAS before its final response (§13.3.1).
    on([_S.INCOMING], [_I.APP_RING], (_A.SEND_1XX,))
    on([_S.INCOMING], [_I.APP_ANSWER], (_A.SEND_2XX, _A.START_ACK_TIMER), _S.ANSWERED)
    on([_S.INCOMING], [_I.APP_REJECT, _I.APP_HANGUP], (_A.SEND_REJECT,), _S.TERMINATED, _E.DECLINED)
    on([_S.INCOMING], [_I.INCOMPATIBLE], (_A.SEND_REJECT,), _S.TERMINATED, _E.INCOMPATIBLE)
    on([_S.INCOMING], [_I.REQ_CANCEL], (_A.SEND_487,), _S.TERMINATED, _E.CANCELLED)  # §9.2
    on(
        [_S.INCOMING], [_I.REQ_BYE], (_A.RESPOND_OK, _A.SEND_487), _S.TERMINATED, _E.REMOTE_BYE
    )  # §15.1.2
    on([_S.INCOMING], [_I.REQ_INVITE], (_A.RESPOND_500,))  # §14.2
    on([_S.INCOMING, _S.ANSWERED, _S.ANSWERED_HANGUP], [_I.REQ_UPDATE], (_A.DELEGATE,))
    on([_S.INCOMING, _S.ANSWERED, _S.ANSWERED_HANGUP], [_I.REQ_OTHER], (_A.PASS_TO_APP,))
    # UAS after its 2xx (§13.3.1.4): the ACK confirms; none in 64*T1 -> BYE (§14.2).
    on([_S.ANSWERED], [_I.REQ_ACK], (_A.STOP_ACK_TIMER, _A.CONFIRM), _S.CONFIRMED)
    on([_S.ANSWERED], [_I.TIMER_ACK], (_A.SEND_BYE,), _S.TERMINATING, _E.ACK_TIMEOUT)
    on([_S.ANSWERED], [_I.APP_HANGUP], (), _S.ANSWERED_HANGUP)  # §15: no BYE before the ACK
    on([_S.ANSWERED], [_I.APP_REQUEST], (_A.SEND_REQUEST,))
    on([_S.ANSWERED, _S.ANSWERED_HANGUP], [_I.REQ_INVITE], (_A.RESPOND_491,))
    on(
        [_S.ANSWERED, _S.ANSWERED_HANGUP],
        [_I.REQ_BYE],
        (_A.RESPOND_OK, _A.STOP_ACK_TIMER),
        _S.TERMINATED,
        _E.REMOTE_BYE,
    )
    on(
        [_S.ANSWERED_HANGUP],
        [_I.REQ_ACK, _I.TIMER_ACK],
        (_A.STOP_ACK_TIMER, _A.SEND_BYE),
        _S.TERMINATING,
        _E.LOCAL_BYE,
    )
    t[(_S.ANSWERED_HANGUP, _I.APP_HANGUP)] = Ignore("the BYE follows the ACK")
    on([_S.ANSWERED], [_I.MEDIA_FAILED], (_A.SEND_BYE,), _S.TERMINATING, _E.MEDIA_FAILED)
    # The call is up.
    up = _S.CONFIRMED
    on([up], [_I.APP_HANGUP], (_A.SEND_BYE,), _S.TERMINATING, _E.LOCAL_BYE)
    on([up], [_I.APP_MODIFY, _I.RESP_MODIFY, _I.TIMER_GLARE], (_A.DELEGATE,))
    on([up], [_I.REQ_INVITE, _I.REQ_UPDATE, _I.REQ_ACK, _I.REQ_CANCEL], (_A.DELEGATE,))
    on([up], [_I.APP_REQUEST], (_A.SEND_REQUEST,))
    on([up], [_I.REQ_OTHER], (_A.PASS_TO_APP,))
    on(
        [up],
        [_I.REQ_BYE],
        (_A.ABORT_REMOTE_MODIFY, _A.RESPOND_OK),
        _S.TERMINATED,
        _E.REMOTE_BYE,
    )  # §15.1.2
    on([up], [_I.TIMER_ACK], (_A.SEND_BYE,), _S.TERMINATING, _E.ACK_TIMEOUT)  # §14.2
    on([up], [_I.MEDIA_FAILED], (_A.SEND_BYE,), _S.TERMINATING, _E.MEDIA_FAILED)
    on([up], [_I.DIALOG_GONE], (), _S.TERMINATED, _E.DIALOG_GONE)  # §12.2.1.2
    on([up], [_I.REQUEST_TIMEOUT], (_A.SEND_BYE,), _S.TERMINATING, _E.DIALOG_GONE)
    # Responses to our in-dialog requests, in every state that has a dialog.
    dialog_states = (_S.ANSWERED, _S.ANSWERED_HANGUP, up, _S.TERMINATING, _S.TERMINATED)
    on(dialog_states, [_I.RESP_REQUEST], (_A.REPORT_RESPONSE,))
    # 2xx retransmissions and forks (§13.2.2.4, RFC 6026 §7.2), while the session lingers.
    after = (up, _S.TERMINATING, _S.TERMINATED)
    on(after, [_I.RESP_2XX_AGAIN], (_A.RESEND_ACK,))
    on(after, [_I.RESP_2XX_FORK], (_A.ACK_AND_BYE_FORK,))
    on([_S.TERMINATING, _S.TERMINATED], [_I.RESP_MODIFY], (_A.DELEGATE,))  # ACK a late 2xx
    # BYE sent (§15.1.1).
    on([_S.TERMINATING], [_I.RESP_BYE_AUTH], (_A.RETRY_BYE,))
    on([_S.TERMINATING], [_I.RESP_BYE_FINAL], (), _S.TERMINATED)
    on([_S.TERMINATING], [_I.REQ_BYE], (_A.RESPOND_OK,))  # BYEs crossed
    on([_S.TERMINATING], [_I.REQ_INVITE, _I.REQ_UPDATE, _I.REQ_OTHER], (_A.RESPOND_481,))
    on([_S.TERMINATED], _REQS, (_A.RESPOND_481,))
    on([_S.TERMINATED], [_I.TIMER_LINGER], (_A.CLOSE,))
    for s in (_S.CANCELLING, _S.TERMINATING, _S.TERMINATED):
        t[(s, _I.APP_HANGUP)] = t.get((s, _I.APP_HANGUP)) or Ignore("already ending")

    for s in SessionState:
        for i in SessionInput:
            if (s, i) not in t:
                t[(s, i)] = (
                    Misuse(f"not allowed while {s.value}", default=True)
                    if i in _APP_INPUTS
                    else Ignore("cannot happen here, or stale", default=True)
                )
    return t


def _modify_table() -> dict[tuple[ModifyState, ModifyInput], ModifyEntry]:
    """RFC 3261 §14 (re-INVITE, 491 and the §14.1 timer), RFC 3311 §5 (UPDATE)."""
    t: dict[tuple[ModifyState, ModifyInput], ModifyEntry] = {}

    def on(
        states: Iterable[ModifyState],
        inputs: Iterable[ModifyInput],
        actions: tuple[Action, ...],
        to: ModifyState | None = None,
    ) -> None:
        for s in states:
            for i in inputs:
                t[(s, i)] = Transition(actions, s if to is None else to)

    on([_M.IDLE], [_MI.APP_REINVITE], (_A.SEND_REINVITE,), _M.LOCAL)
    on([_M.IDLE], [_MI.APP_UPDATE], (_A.SEND_UPDATE,), _M.LOCAL)
    on([_M.IDLE, _M.GLARE_WAIT], [_MI.REQ_INVITE], (_A.REMOTE_OFFER,), _M.REMOTE)
    on([_M.IDLE, _M.GLARE_WAIT], [_MI.REQ_UPDATE], (_A.ANSWER_UPDATE,))
    on(list(ModifyState), [_MI.REQ_UPDATE_NO_OFFER], (_A.RESPOND_OK,))
    # Our modification is pending.
    on([_M.LOCAL], [_MI.REQ_INVITE, _MI.REQ_UPDATE], (_A.RESPOND_491,))  # §14.2, 3311 §5.2
    on([_M.LOCAL], [_MI.RESP_2XX], (_A.ACK_MODIFY,), _M.IDLE)
    on([_M.LOCAL], [_MI.RESP_491], (_A.START_GLARE_TIMER,), _M.GLARE_WAIT)  # §14.1
    on([_M.LOCAL], [_MI.RESP_AUTH], (_A.RETRY_MODIFY,))
    on([_M.LOCAL], [_MI.RESP_FAILURE], (_A.MODIFY_FAILED,), _M.IDLE)
    on([_M.LOCAL], [_MI.RESP_GONE], (_A.MODIFY_GONE,), _M.IDLE)
    on([_M.IDLE, _M.GLARE_WAIT], [_MI.TIMER_GLARE], (_A.RESEND_AFTER_GLARE,), _M.LOCAL)
    # A late 2xx (e.g. after a BYE): still ACKed.
    on([_M.IDLE, _M.GLARE_WAIT, _M.REMOTE, _M.REMOTE_ACK], [_MI.RESP_2XX], (_A.ACK_MODIFY,))
    # Their re-INVITE is pending.
    on([_M.REMOTE], [_MI.APP_ACCEPT], (_A.ACCEPT_REMOTE,), _M.REMOTE_ACK)
    on([_M.REMOTE], [_MI.APP_REJECT], (_A.REJECT_REMOTE,), _M.IDLE)
    on([_M.REMOTE], [_MI.REQ_CANCEL], (_A.REJECT_REMOTE,), _M.IDLE)  # §9.2: 487
    on([_M.REMOTE], [_MI.REQ_INVITE, _MI.REQ_UPDATE], (_A.RESPOND_500,))  # §14.2, 3311 §5.2
    on([_M.REMOTE, _M.REMOTE_ACK], [_MI.TIMER_GLARE], (_A.DEFER_GLARE,))
    on([_M.REMOTE_ACK], [_MI.REQ_ACK], (_A.APPLY_ACK,), _M.IDLE)
    on([_M.REMOTE_ACK], [_MI.REQ_INVITE, _MI.REQ_UPDATE], (_A.RESPOND_491,))
    busy = "a re-INVITE or UPDATE is in progress (§14.1)"
    for s in (_M.LOCAL, _M.GLARE_WAIT, _M.REMOTE, _M.REMOTE_ACK):
        for i in (_MI.APP_REINVITE, _MI.APP_UPDATE):
            t[(s, i)] = Misuse(busy)

    for s in ModifyState:
        for i in ModifyInput:
            if (s, i) not in t:
                t[(s, i)] = (
                    Misuse(f"not allowed while {s.value}", default=True)
                    if i in _MOD_APP_INPUTS
                    else Ignore("cannot happen here, or stale", default=True)
                )
    return t


SESSION_TABLE = _session_table()
MODIFY_TABLE = _modify_table()


def render_markdown() -> str:
    """Both tables as Markdown (the non-default rows), for ``docs/dialogs.md``."""
    lines: list[str] = []
    tables: list[tuple[str, list[tuple[tuple[enum.Enum, enum.Enum], object]]]] = [
        (
            "Session table (`SESSION_TABLE`)",
            [((st, i), SESSION_TABLE[(st, i)]) for st in SessionState for i in SessionInput],
        ),
        (
            "Modify table (`MODIFY_TABLE`)",
            [((st, i), MODIFY_TABLE[(st, i)]) for st in ModifyState for i in ModifyInput],
        ),
    ]
    for title, table in tables:
        lines += [f"### {title}", "", "| State | Input | Actions → next state |", "|---|---|---|"]
        for (state, inp), entry in table:
            assert isinstance(entry, Transition | Ignore | Misuse)
            if isinstance(entry, Ignore | Misuse):
                if entry.default:
                    continue
                cell = f"{type(entry).__name__.lower()}: {entry.reason}"
            else:
                acts = ", ".join(a.value for a in entry.actions) or "—"
                cell = f"{acts} → **{entry.next_state.value}**"
                if entry.ends is not None:
                    cell += f" (ends: {entry.ends.value})"
            lines.append(f"| {state.value} | {inp.value} | {cell} |")
        lines.append("")
    lines.append(
        "Every other pair: an application input is misuse (`LocalProtocolError`, nothing "
        "changes); a network input or timer is ignored."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """UAC: a provisional response to our INVITE (100 included)."""

    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyMedia:
    """UAC: a provisional carried SDP answering our offer; ``media`` is where to send and
    what to expect until the final answer (it may differ per fork)."""

    media: tuple[NegotiatedMedia, ...]
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEstablished:
    """The call is up: UAC -- the 2xx arrived (and was ACKed); UAS -- the ACK arrived.
    ``message`` is that 2xx or ACK."""

    message: Request | Response


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaNegotiated:
    """An offer/answer exchange completed: the first one (``initial``) or a change by
    re-INVITE/UPDATE either way.  ``media`` per ``m=`` line (remote RTP address and
    port, payload types, directions); ``changes`` against the previous negotiation."""

    media: tuple[NegotiatedMedia, ...]
    changes: tuple[MediaChange, ...]
    initial: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ReinviteReceived:
    """A re-INVITE awaits :meth:`InviteSession.accept_reinvite` or
    :meth:`~InviteSession.reject_reinvite` (only with ``auto_accept_reinvite=False``)."""

    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class ModificationCompleted:
    """Our re-INVITE or UPDATE got its final response (after auth and 491 retries)."""

    method: str
    status: int
    response: Response | None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True, kw_only=True)
class InDialogRequest:
    """A request inside the dialog for the application (INFO, MESSAGE, NOTIFY, REFER,
    OPTIONS, ...): answer it with :meth:`InviteSession.respond`."""

    request: Request
    transaction: object


@dataclass(frozen=True, slots=True, kw_only=True)
class InDialogResponse:
    """The final response to a request the application sent with
    :meth:`InviteSession.send_request` (after an automatic credentials retry)."""

    request: Request
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded:
    """The call is over (emitted once).  ``status`` is the SIP status that ended it when
    there is one (the 486 of a rejected call, the 481 of a dead dialog...)."""

    reason: EndReason
    status: int | None = None
    message: Request | Response | None = None


Event = (
    Progress
    | EarlyMedia
    | SessionEstablished
    | MediaNegotiated
    | ReinviteReceived
    | ModificationCompleted
    | InDialogRequest
    | InDialogResponse
    | SessionEnded
)
