"""The four transaction state machines of RFC 3261 §17 as tables (RFC 6026 applied).

Every machine is a total table ``(State, Input) -> Entry``: for each state and each
input the machine accepts there is exactly one entry, which is either

* a :class:`Transition` -- the actions to run, in order, and the next state;
* an :class:`Ignore` -- the input is absorbed, with the reason written down; or
* a :class:`Misuse` -- the transaction user (TU) asked for something the RFC forbids;
  :class:`~sipwire.core._errors.LocalProtocolError` is raised and nothing changes.

Network inputs and timers never map to :class:`Misuse` (``tests/test_transaction_tables.py``
checks both totality and that rule).  The tables are data: the manager in
:mod:`sipwire.core.transaction` interprets the :class:`Action` values, and
``docs/transactions.md`` is generated from the same tables by :func:`render_markdown`.

Sources:

* INVITE client transaction -- RFC 3261 §17.1.1, Figure 5 as replaced by RFC 6026 §8.4.
* non-INVITE client transaction -- RFC 3261 §17.1.2, Figure 6.
* INVITE server transaction -- RFC 3261 §17.2.1, Figure 7 as replaced by RFC 6026 §8.6.
* non-INVITE server transaction -- RFC 3261 §17.2.2, Figure 8, with the transport-error
  rule of §17.2.4 as replaced by RFC 6026 §8.8 (the transaction stays in its state).

Timer values (RFC 3261 Table 4, RFC 6026 §8.11) are computed by
:meth:`TimerConfig.duration`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "INVITE_CLIENT",
    "INVITE_SERVER",
    "MACHINES",
    "NON_INVITE_CLIENT",
    "NON_INVITE_SERVER",
    "TIMER_INPUTS",
    "TIMER_STARTS",
    "TU_INPUTS",
    "Action",
    "Entry",
    "Ignore",
    "Input",
    "Machine",
    "Misuse",
    "State",
    "TimerConfig",
    "Transition",
    "render_all",
    "render_markdown",
    "render_mermaid",
]


class State(enum.Enum):
    """Transaction states, named as in the RFC figures.

    ``INITIAL`` is the point before the first input (the arrow into the first state of
    each figure).  A client transaction stays there only while a CANCEL waits for a
    provisional response to its INVITE (RFC 3261 §9.1).
    """

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    INITIAL = "Initial"
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """Everything that can happen to a transaction."""

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    # From the transaction user.
    TU_REQUEST = "request from TU"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_300_699 = "300-699 from TU"
    # From the layer itself (TransactionLayer.cancel, RFC 3261 §9.1).
    ABANDON = "CANCEL abandoned"  # a final response arrived before any provisional
    CANCEL_SENT = "CANCEL sent"  # the CANCEL of this INVITE went out
    # From the network.
    REQUEST = "request"
    ACK = "ACK"
    RESP_1XX = "1xx"
    RESP_2XX = "2xx"
    RESP_300_699 = "300-699"
    TRANSPORT_ERROR = "transport error"
    # Timers (RFC 3261 Table 4, RFC 6026 §8.11).
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "100 Trying timer"  # §17.2.1: send 100 if the TU won't in 200 ms
    TIMER_CANCEL = "CANCEL timer"  # §9.1: no final response 64*T1 after CANCEL


TU_INPUTS = frozenset({Input.TU_REQUEST, Input.TU_1XX, Input.TU_2XX, Input.TU_300_699})
TIMER_INPUTS = frozenset(i for i in Input if i.name.startswith("TIMER_"))


class Action(enum.Enum):
    """Side effects a transition asks the manager to perform, in table order."""

    __hash__ = object.__hash__  # members are singletons: identity hash, in C

    SEND_REQUEST = "send request"
    SEND_ACK = "send ACK"  # §17.1.1.3, built once and re-sent for retransmitted finals
    PASS_TO_TU = "pass to TU"  # the request (server) or the response (client)
    ACK_TO_TU = "ACK to TU"  # RFC 6026 §7.1: ACK in Accepted goes to the TU
    SEND_RESPONSE = "send response"  # the response the TU just passed
    RESEND_RESPONSE = "resend last response"  # 100 Trying if none was sent yet (INVITE)
    SEND_TRYING = "send 100 Trying"  # only if no response has been sent yet
    STOP_TRYING = "stop 100 Trying timer"
    INFORM_TIMEOUT = "inform TU: timeout"
    INFORM_TRANSPORT_ERROR = "inform TU: transport error"
    START_A = "start A = T1"
    DOUBLE_A = "reset A = 2*A"
    START_B = "start B = 64*T1"
    START_D = "start D"
    START_E = "start E = T1"
    BACKOFF_E = "reset E = min(2*E, T2)"
    E_AT_T2 = "reset E = T2"
    START_F = "start F = 64*T1"
    START_G = "start G = T1"
    BACKOFF_G = "reset G = min(2*G, T2)"
    START_H = "start H = 64*T1"
    START_I = "start I"
    START_J = "start J"
    START_K = "start K"
    START_L = "start L = 64*T1"
    START_M = "start M = 64*T1"
    START_TRYING = "start 100 Trying timer"
    START_CANCEL = "start CANCEL timer = 64*T1"


TIMER_STARTS: Mapping[Action, Input] = {
    Action.START_A: Input.TIMER_A,
    Action.DOUBLE_A: Input.TIMER_A,
    Action.START_B: Input.TIMER_B,
    Action.START_D: Input.TIMER_D,
    Action.START_E: Input.TIMER_E,
    Action.BACKOFF_E: Input.TIMER_E,
    Action.E_AT_T2: Input.TIMER_E,
    Action.START_F: Input.TIMER_F,
    Action.START_G: Input.TIMER_G,
    Action.BACKOFF_G: Input.TIMER_G,
    Action.START_H: Input.TIMER_H,
    Action.START_I: Input.TIMER_I,
    Action.START_J: Input.TIMER_J,
    Action.START_K: Input.TIMER_K,
    Action.START_L: Input.TIMER_L,
    Action.START_M: Input.TIMER_M,
    Action.START_TRYING: Input.TIMER_TRYING,
    Action.START_CANCEL: Input.TIMER_CANCEL,
}
"""The timer each (re)start action arms."""


@dataclass(frozen=True, slots=True)
class Transition:
    """Run ``actions`` in order, then move to ``next_state``."""

    actions: tuple[Action, ...]
    next_state: State


@dataclass(frozen=True, slots=True)
class Ignore:
    """The input is absorbed without effect; ``reason`` says why (it ends up in the docs).

    ``default`` marks entries filled in by the table builder rather than written out.
    """

    reason: str
    default: bool = False


@dataclass(frozen=True, slots=True)
class Misuse:
    """The TU did something the RFC forbids in this state: LocalProtocolError(reason)."""

    reason: str
    default: bool = False


Entry = Transition | Ignore | Misuse


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Timer values in seconds (RFC 3261 §17.1.1.1 and Table 4; RFC 6026 §8.11).

    * ``t1`` -- round-trip estimate (500 ms); A, E, G start at T1; B, F, H, J, L, M = 64*T1.
    * ``t2`` -- cap of the non-INVITE and INVITE-response retransmit intervals (4 s).
    * ``t4`` -- how long a message may stay in the network (5 s): timers I and K.
    * ``timer_c`` -- proxy INVITE timer (§16.6 step 11, > 3 min); used by proxies,
      not by this layer.
    * ``trying_delay`` -- an INVITE server transaction sends ``100 Trying`` itself when
      the TU has not responded within this time (§17.2.1: 200 ms).
    * ``timer_d`` -- wait for response retransmissions in Completed (RFC 6026 §8.4:
      at least 32 s on unreliable transports).

    On reliable transports timers A, E and G are never started and D, I, J, K are zero.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = 180.0
    trying_delay: float = 0.2
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4", "timer_c", "trying_delay", "timer_d"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"TimerConfig.{name} must be >= 0, got {value!r}")
        if self.t1 <= 0.0:
            raise ValueError("TimerConfig.t1 must be > 0")

    def duration(self, timer: Input, *, reliable: bool) -> float | None:
        """Initial value of ``timer``; ``None`` when the timer is not started at all."""
        t1 = self.t1
        if timer in (Input.TIMER_A, Input.TIMER_E, Input.TIMER_G):
            return None if reliable else t1
        if timer in (
            Input.TIMER_B,
            Input.TIMER_F,
            Input.TIMER_H,
            Input.TIMER_L,
            Input.TIMER_M,
            Input.TIMER_CANCEL,
        ):
            return 64 * t1
        if timer is Input.TIMER_D:
            return 0.0 if reliable else self.timer_d
        if timer is Input.TIMER_J:
            return 0.0 if reliable else 64 * t1
        if timer in (Input.TIMER_I, Input.TIMER_K):
            return 0.0 if reliable else self.t4
        if timer is Input.TIMER_TRYING:
            return self.trying_delay
        raise ValueError(f"{timer} is not a timer")


@dataclass(frozen=True, slots=True)
class Machine:
    """One state machine: its figure, states, inputs and total table."""

    name: str
    source: str
    states: tuple[State, ...]
    inputs: tuple[Input, ...]
    table: Mapping[tuple[State, Input], Entry]

    def entry(self, state: State, inp: Input) -> Entry:
        """The table entry for ``(state, inp)``; inputs foreign to the machine are misuse."""
        found = self.table.get((state, inp))
        if found is None:
            return Misuse(f"{inp.value!r} is not an input of the {self.name}")
        return found


# --------------------------------------------------------------------------- helpers

_T = Transition
_A = Action
_S = State
_I = Input


def _fill(
    states: tuple[State, ...],
    inputs: tuple[Input, ...],
    explicit: dict[tuple[State, Input], Entry],
    *,
    default_tu: str,
    default_other: str,
) -> dict[tuple[State, Input], Entry]:
    """Complete a table: every pair not written explicitly gets a documented default.

    TU inputs default to :class:`Misuse`, network inputs and timers to :class:`Ignore`.
    The explicit entries are what the figures draw; the defaults are the "anything not
    in a table is an explicit ignore or an error" rule (docs/transactions.md lists them).
    """
    table: dict[tuple[State, Input], Entry] = {}
    for state in states:
        for inp in inputs:
            key = (state, inp)
            if key in explicit:
                table[key] = explicit[key]
            elif inp in TU_INPUTS:
                if state is State.TERMINATED:
                    reason = "the transaction has terminated"
                elif state is State.INITIAL:
                    reason = "the transaction has not started"
                else:
                    reason = default_tu.format(state=state.value, input=inp.value)
                table[key] = Misuse(reason, default=True)
            elif inp in TIMER_INPUTS:
                table[key] = Ignore(f"{inp.value} is not running in {state.value}", default=True)
            else:
                reason = default_other.format(state=state.value, input=inp.value)
                table[key] = Ignore(reason, default=True)
    for key in explicit:
        if key[0] not in states or key[1] not in inputs:
            raise AssertionError(f"table entry {key} outside the machine")  # pragma: no cover
    return table


_TERMINATED_NET = "the transaction is gone; the layer never delivers {input} here"

# ----------------------------------------------------- INVITE client (Figure 5, RFC 6026)

_IC_STATES = (_S.INITIAL, _S.CALLING, _S.PROCEEDING, _S.COMPLETED, _S.ACCEPTED, _S.TERMINATED)
_IC_INPUTS = (
    _I.TU_REQUEST,
    _I.RESP_1XX,
    _I.RESP_2XX,
    _I.RESP_300_699,
    _I.TRANSPORT_ERROR,
    _I.TIMER_A,
    _I.TIMER_B,
    _I.TIMER_D,
    _I.TIMER_M,
    _I.TIMER_CANCEL,
    _I.CANCEL_SENT,
)
_IC_FINAL_ERR = _T((_A.PASS_TO_TU, _A.SEND_ACK, _A.START_D), _S.COMPLETED)
_IC_2XX = _T((_A.PASS_TO_TU, _A.START_M), _S.ACCEPTED)

INVITE_CLIENT = Machine(
    name="INVITE client transaction",
    source="RFC 3261 §17.1.1, Figure 5 as replaced by RFC 6026 §8.4; §9.1 for the CANCEL timer",
    states=_IC_STATES,
    inputs=_IC_INPUTS,
    table=_fill(
        _IC_STATES,
        _IC_INPUTS,
        {
            (_S.INITIAL, _I.TU_REQUEST): _T((_A.SEND_REQUEST, _A.START_A, _A.START_B), _S.CALLING),
            (_S.CALLING, _I.TIMER_A): _T((_A.SEND_REQUEST, _A.DOUBLE_A), _S.CALLING),
            (_S.CALLING, _I.TIMER_B): _T((_A.INFORM_TIMEOUT,), _S.TERMINATED),
            (_S.CALLING, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
            (_S.CALLING, _I.RESP_1XX): _T((_A.PASS_TO_TU,), _S.PROCEEDING),
            (_S.CALLING, _I.RESP_2XX): _IC_2XX,
            (_S.CALLING, _I.RESP_300_699): _IC_FINAL_ERR,
            (_S.PROCEEDING, _I.RESP_1XX): _T((_A.PASS_TO_TU,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.RESP_2XX): _IC_2XX,
            (_S.PROCEEDING, _I.RESP_300_699): _IC_FINAL_ERR,
            (_S.PROCEEDING, _I.CANCEL_SENT): _T((_A.START_CANCEL,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TIMER_CANCEL): _T((_A.INFORM_TIMEOUT,), _S.TERMINATED),
            (_S.PROCEEDING, _I.TRANSPORT_ERROR): Ignore(
                "nothing is sent in Proceeding (Figure 5 has no such arrow)"
            ),
            (_S.COMPLETED, _I.RESP_1XX): Ignore("late provisional response"),
            (_S.COMPLETED, _I.RESP_2XX): _T((_A.PASS_TO_TU,), _S.COMPLETED),
            (_S.COMPLETED, _I.RESP_300_699): _T((_A.SEND_ACK,), _S.COMPLETED),
            (_S.COMPLETED, _I.TIMER_D): _T((), _S.TERMINATED),
            (_S.COMPLETED, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
            (_S.ACCEPTED, _I.RESP_1XX): Ignore("late provisional response"),
            (_S.ACCEPTED, _I.RESP_2XX): _T((_A.PASS_TO_TU,), _S.ACCEPTED),
            (_S.ACCEPTED, _I.RESP_300_699): Ignore(
                "a 2xx was accepted; RFC 6026 gives a later non-2xx no meaning"
            ),
            (_S.ACCEPTED, _I.TIMER_M): _T((), _S.TERMINATED),
            (_S.ACCEPTED, _I.TRANSPORT_ERROR): Ignore("nothing is sent in Accepted"),
        },
        default_tu="the INVITE was already sent ({state})",
        default_other="{input} cannot reach a transaction in {state}",
    ),
)

# ----------------------------------------------------------- non-INVITE client (Figure 6)

_NC_STATES = (_S.INITIAL, _S.TRYING, _S.PROCEEDING, _S.COMPLETED, _S.TERMINATED)
_NC_INPUTS = (
    _I.TU_REQUEST,
    _I.ABANDON,
    _I.RESP_1XX,
    _I.RESP_2XX,
    _I.RESP_300_699,
    _I.TRANSPORT_ERROR,
    _I.TIMER_E,
    _I.TIMER_F,
    _I.TIMER_K,
)
_NC_FINAL = _T((_A.PASS_TO_TU, _A.START_K), _S.COMPLETED)

NON_INVITE_CLIENT = Machine(
    name="non-INVITE client transaction",
    source="RFC 3261 §17.1.2, Figure 6; §9.1 for a CANCEL that waits for a provisional",
    states=_NC_STATES,
    inputs=_NC_INPUTS,
    table=_fill(
        _NC_STATES,
        _NC_INPUTS,
        {
            (_S.INITIAL, _I.TU_REQUEST): _T((_A.SEND_REQUEST, _A.START_E, _A.START_F), _S.TRYING),
            (_S.INITIAL, _I.ABANDON): _T((), _S.TERMINATED),
            (_S.TRYING, _I.TIMER_E): _T((_A.SEND_REQUEST, _A.BACKOFF_E), _S.TRYING),
            (_S.TRYING, _I.TIMER_F): _T((_A.INFORM_TIMEOUT,), _S.TERMINATED),
            (_S.TRYING, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
            (_S.TRYING, _I.RESP_1XX): _T((_A.PASS_TO_TU,), _S.PROCEEDING),
            (_S.TRYING, _I.RESP_2XX): _NC_FINAL,
            (_S.TRYING, _I.RESP_300_699): _NC_FINAL,
            (_S.PROCEEDING, _I.TIMER_E): _T((_A.SEND_REQUEST, _A.E_AT_T2), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TIMER_F): _T((_A.INFORM_TIMEOUT,), _S.TERMINATED),
            (_S.PROCEEDING, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
            (_S.PROCEEDING, _I.RESP_1XX): _T((_A.PASS_TO_TU,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.RESP_2XX): _NC_FINAL,
            (_S.PROCEEDING, _I.RESP_300_699): _NC_FINAL,
            (_S.COMPLETED, _I.RESP_1XX): Ignore("response retransmission absorbed"),
            (_S.COMPLETED, _I.RESP_2XX): Ignore("response retransmission absorbed"),
            (_S.COMPLETED, _I.RESP_300_699): Ignore("response retransmission absorbed"),
            (_S.COMPLETED, _I.TIMER_K): _T((), _S.TERMINATED),
            (_S.COMPLETED, _I.TRANSPORT_ERROR): Ignore("nothing is sent in Completed"),
        },
        default_tu="the request was already sent ({state})",
        default_other="{input} cannot reach a transaction in {state}",
    ),
)

# ------------------------------------------------------ INVITE server (Figure 7, RFC 6026)

_IS_STATES = (_S.INITIAL, _S.PROCEEDING, _S.COMPLETED, _S.CONFIRMED, _S.ACCEPTED, _S.TERMINATED)
_IS_INPUTS = (
    _I.REQUEST,
    _I.ACK,
    _I.TU_1XX,
    _I.TU_2XX,
    _I.TU_300_699,
    _I.TRANSPORT_ERROR,
    _I.TIMER_TRYING,
    _I.TIMER_G,
    _I.TIMER_H,
    _I.TIMER_I,
    _I.TIMER_L,
)
_FINAL_SENT = "a final response was already sent ({state})"

INVITE_SERVER = Machine(
    name="INVITE server transaction",
    source="RFC 3261 §17.2.1, Figure 7 as replaced by RFC 6026 §8.6 and §8.7",
    states=_IS_STATES,
    inputs=_IS_INPUTS,
    table=_fill(
        _IS_STATES,
        _IS_INPUTS,
        {
            (_S.INITIAL, _I.REQUEST): _T((_A.PASS_TO_TU, _A.START_TRYING), _S.PROCEEDING),
            (_S.PROCEEDING, _I.REQUEST): _T((_A.RESEND_RESPONSE,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.ACK): Ignore("no final response was sent yet"),
            (_S.PROCEEDING, _I.TIMER_TRYING): _T((_A.SEND_TRYING,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TU_1XX): _T((_A.STOP_TRYING, _A.SEND_RESPONSE), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TU_2XX): _T((_A.SEND_RESPONSE, _A.START_L), _S.ACCEPTED),
            (_S.PROCEEDING, _I.TU_300_699): _T(
                (_A.SEND_RESPONSE, _A.START_G, _A.START_H), _S.COMPLETED
            ),
            (_S.PROCEEDING, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.PROCEEDING),
            (_S.COMPLETED, _I.REQUEST): _T((_A.RESEND_RESPONSE,), _S.COMPLETED),
            (_S.COMPLETED, _I.ACK): _T((_A.START_I,), _S.CONFIRMED),
            (_S.COMPLETED, _I.TIMER_G): _T((_A.RESEND_RESPONSE, _A.BACKOFF_G), _S.COMPLETED),
            (_S.COMPLETED, _I.TIMER_H): _T((_A.INFORM_TIMEOUT,), _S.TERMINATED),
            (_S.COMPLETED, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.COMPLETED),
            (_S.CONFIRMED, _I.REQUEST): Ignore("late INVITE retransmission absorbed"),
            (_S.CONFIRMED, _I.ACK): Ignore("ACK retransmission absorbed"),
            (_S.CONFIRMED, _I.TIMER_I): _T((), _S.TERMINATED),
            (_S.CONFIRMED, _I.TRANSPORT_ERROR): Ignore("nothing is sent in Confirmed"),
            (_S.ACCEPTED, _I.REQUEST): Ignore(
                "INVITE retransmission absorbed; the TU retransmits the 2xx (RFC 6026 §7.1)"
            ),
            (_S.ACCEPTED, _I.ACK): _T((_A.ACK_TO_TU,), _S.ACCEPTED),
            (_S.ACCEPTED, _I.TU_2XX): _T((_A.SEND_RESPONSE,), _S.ACCEPTED),
            (_S.ACCEPTED, _I.TIMER_L): _T((), _S.TERMINATED),
            (_S.ACCEPTED, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.ACCEPTED),
            (_S.TERMINATED, _I.TU_2XX): Ignore(
                "2xx retransmission after Timer L is discarded (RFC 6026 §8.3)"
            ),
        },
        default_tu=_FINAL_SENT,
        default_other="{input} cannot reach a transaction in {state}",
    ),
)

# ---------------------------------------------------------- non-INVITE server (Figure 8)

_NS_STATES = (_S.INITIAL, _S.TRYING, _S.PROCEEDING, _S.COMPLETED, _S.TERMINATED)
_NS_INPUTS = (
    _I.REQUEST,
    _I.TU_1XX,
    _I.TU_2XX,
    _I.TU_300_699,
    _I.TRANSPORT_ERROR,
    _I.TIMER_J,
)
_NS_FINAL = _T((_A.SEND_RESPONSE, _A.START_J), _S.COMPLETED)

NON_INVITE_SERVER = Machine(
    name="non-INVITE server transaction",
    source="RFC 3261 §17.2.2, Figure 8; §17.2.4 as replaced by RFC 6026 §8.8",
    states=_NS_STATES,
    inputs=_NS_INPUTS,
    table=_fill(
        _NS_STATES,
        _NS_INPUTS,
        {
            (_S.INITIAL, _I.REQUEST): _T((_A.PASS_TO_TU,), _S.TRYING),
            (_S.TRYING, _I.REQUEST): Ignore("retransmission absorbed: no response yet"),
            (_S.TRYING, _I.TU_1XX): _T((_A.SEND_RESPONSE,), _S.PROCEEDING),
            (_S.TRYING, _I.TU_2XX): _NS_FINAL,
            (_S.TRYING, _I.TU_300_699): _NS_FINAL,
            (_S.TRYING, _I.TRANSPORT_ERROR): Ignore("nothing is sent in Trying"),
            (_S.PROCEEDING, _I.REQUEST): _T((_A.RESEND_RESPONSE,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TU_1XX): _T((_A.SEND_RESPONSE,), _S.PROCEEDING),
            (_S.PROCEEDING, _I.TU_2XX): _NS_FINAL,
            (_S.PROCEEDING, _I.TU_300_699): _NS_FINAL,
            (_S.PROCEEDING, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.PROCEEDING),
            (_S.COMPLETED, _I.REQUEST): _T((_A.RESEND_RESPONSE,), _S.COMPLETED),
            (_S.COMPLETED, _I.TIMER_J): _T((), _S.TERMINATED),
            (_S.COMPLETED, _I.TRANSPORT_ERROR): _T((_A.INFORM_TRANSPORT_ERROR,), _S.COMPLETED),
        },
        default_tu=_FINAL_SENT,
        default_other="{input} cannot reach a transaction in {state}",
    ),
)

MACHINES: tuple[Machine, ...] = (INVITE_CLIENT, NON_INVITE_CLIENT, INVITE_SERVER, NON_INVITE_SERVER)


# ------------------------------------------------------------------------ documentation


def _cell(entry: Entry, state: State) -> str:
    if isinstance(entry, Transition):
        actions = ", ".join(a.value for a in entry.actions) or "-"
        target = "" if entry.next_state is state else f" → **{entry.next_state.value}**"
        return f"{actions}{target}"
    if isinstance(entry, Ignore):
        return f"*ignore*: {entry.reason}"
    return f"*error*: {entry.reason}"


def render_markdown(machine: Machine) -> str:
    """A Markdown table of ``machine``: one row per (state, input) that is not a default.

    Defaults (timers not running, TU inputs after the final response) are summarised
    in one line so the table stays readable; the full table is in the code.
    """
    lines = [
        f"### {machine.name[0].upper()}{machine.name[1:]}",
        "",
        f"Source: {machine.source}.",
        "",
        "| State | Input | Actions → next state |",
        "|---|---|---|",
    ]
    for state in machine.states:
        for inp in machine.inputs:
            entry = machine.table[(state, inp)]
            if isinstance(entry, Ignore | Misuse) and entry.default:
                continue
            lines.append(f"| {state.value} | {inp.value} | {_cell(entry, state)} |")
    lines += [
        "",
        "Every other (state, input) pair is filled in by the table builder: a timer that "
        "is not running and a network input that cannot reach the state are ignored, a TU "
        "input is an error (`LocalProtocolError`).",
    ]
    return "\n".join(lines)


def render_mermaid(machine: Machine) -> str:
    """A Mermaid ``stateDiagram-v2`` drawn from the transitions of ``machine``."""
    lines = ["stateDiagram-v2", "    [*] --> Initial", "    Terminated --> [*]"]
    seen: dict[tuple[State, State], list[str]] = {}
    for state in machine.states:
        for inp in machine.inputs:
            entry = machine.table[(state, inp)]
            if not isinstance(entry, Transition):
                continue
            label = inp.value
            acts = [a.value for a in entry.actions if not a.name.startswith(("START_", "STOP_"))]
            if acts:
                label += " / " + ", ".join(acts)
            seen.setdefault((state, entry.next_state), []).append(label)
    for (src, dst), labels in seen.items():
        lines.append(f"    {src.value} --> {dst.value}: {'<br/>'.join(labels)}")
    return "\n".join(lines)


def render_all() -> str:
    """The generated part of ``docs/transactions.md``: a diagram and a table per machine.

    Regenerate with ``python -m sipwire.core._txn_tables``; a test keeps the two equal.
    """
    parts: list[str] = []
    for machine in MACHINES:
        parts.append(render_markdown(machine))
        parts.append("")
        parts.append("```mermaid")
        parts.append(render_mermaid(machine))
        parts.append("```")
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_all(), end="")
