"""The RFC 3261 §17 transaction layer, sans-IO (RFC 6026 applied).

:class:`TransactionLayer` owns every client and server transaction of one SIP element.
It never touches a socket or a clock: the shell feeds it inputs --

* :meth:`~TransactionLayer.receive` a message from the transport,
* :meth:`~TransactionLayer.send_request` / :meth:`~TransactionLayer.send_response` /
  :meth:`~TransactionLayer.cancel` from the transaction user (TU),
* :meth:`~TransactionLayer.transport_error` when a send failed,
* :meth:`~TransactionLayer.handle_timer` when :meth:`~TransactionLayer.next_deadline`
  has passed --

and after each input drains :meth:`~TransactionLayer.outgoing` (messages for the
transport) and then :meth:`~TransactionLayer.events` (for the TU).  Every call that can
start or fire a timer takes ``now`` (seconds, monotonic).

The four state machines are the tables of :mod:`sipwire.core._txn_tables`; this module
interprets their actions and does the matching of §17.1.3 / §17.2.3.  See
``docs/transactions.md`` for the diagrams and the event reference.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import deque
from collections.abc import Callable, Hashable, Iterator

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core._txn_match import (
    client_key_for_request,
    client_key_for_response,
    legacy_ack_key,
    merge_key,
    server_key,
)
from sipwire.core._txn_tables import (
    INVITE_CLIENT,
    INVITE_SERVER,
    MACHINES,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    TIMER_INPUTS,
    TIMER_STARTS,
    Action,
    Ignore,
    Input,
    Misuse,
    State,
    TimerConfig,
    Transition,
    render_markdown,
    render_mermaid,
)
from sipwire.core._txn_types import (
    MAGIC_COOKIE,
    AckReceived,
    CancelReceived,
    ClientKey,
    ClientTransaction,
    Event,
    InviteClientTransaction,
    InviteServerTransaction,
    LegacyServerKey,
    MergedRequest,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Outgoing,
    Peer,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ServerKey,
    ServerTransaction,
    StrayResponse,
    Transaction,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from sipwire.core.message import Request, Response, make_ack, make_cancel, make_response

__all__ = [
    "DEFAULT_MAX_TRANSACTIONS",
    "INVITE_CLIENT",
    "INVITE_SERVER",
    "MACHINES",
    "NON_INVITE_CLIENT",
    "NON_INVITE_SERVER",
    "AckReceived",
    "CancelReceived",
    "ClientKey",
    "ClientTransaction",
    "Event",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "LegacyServerKey",
    "MergedRequest",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Outgoing",
    "Peer",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "ServerKey",
    "ServerTransaction",
    "State",
    "StrayResponse",
    "TimerConfig",
    "Transaction",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailure",
    "render_markdown",
    "render_mermaid",
]

DEFAULT_MAX_TRANSACTIONS = 100_000
"""Live transactions one layer keeps (client + server) before it sheds load."""


def _default_token() -> str:
    return secrets.token_hex(10)


def _response_input(status: int, *, tu: bool) -> Input:
    if 100 <= status <= 199:
        return Input.TU_1XX if tu else Input.RESP_1XX
    if 200 <= status <= 299:
        return Input.TU_2XX if tu else Input.RESP_2XX
    return Input.TU_300_699 if tu else Input.RESP_300_699


# Heap entry: (deadline, token, timer, transaction); the token is unique, so the
# transaction is never compared.
_HeapEntry = tuple[float, int, Input, Transaction]
_Msg = Request | Response | None
_Step = tuple[Input, float, _Msg, Peer]  # what a table action may need
_ActionHandler = Callable[[Transaction, Action, _Step], None]


class TransactionLayer:
    """All transactions of one SIP element; see the module docstring for the protocol.

    ``random_token`` returns a fresh random token (letters/digits); it makes branch
    parameters (:meth:`new_branch`) and the To tag of the 200 the layer sends to a
    CANCEL when the INVITE has no tagged response yet.  ``max_transactions`` bounds
    the live transactions (default 100 000): beyond it a new request is answered 503
    statelessly (:class:`RequestRejected`) and :meth:`send_request` raises
    :class:`LocalProtocolError` (a CANCEL made by :meth:`cancel` is always allowed, so
    at most one more per INVITE).  ``detect_merged=True`` turns on the §8.2.2.2
    merged-request check (a UAS; proxies must leave it off).
    """

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        random_token: Callable[[], str] = _default_token,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
        detect_merged: bool = False,
    ) -> None:
        if max_transactions < 1:
            raise ValueError("max_transactions must be >= 1")
        self.config = config if config is not None else TimerConfig()
        self.max_transactions = max_transactions
        self.detect_merged = detect_merged
        self._random_token = random_token
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey | LegacyServerKey, ServerTransaction] = {}
        # Secondary indexes of server transactions: RFC 2543 ACK matching and the
        # §8.2.2.2 merged-request check.  Entries die with their transaction.
        self._index: dict[Hashable, ServerTransaction] = {}
        self._heap: list[_HeapEntry] = []
        self._tokens = itertools.count()
        self._live_timers = 0
        self._immediate: deque[tuple[int, Input, Transaction]] = deque()
        self._out: list[Outgoing] = []
        self._events: list[Event] = []
        self._actions = self._build_actions()
        self._durations: dict[tuple[Input, bool], float | None] = {}
        self._durations_for: TimerConfig | None = None

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        """Live transactions (client + server)."""
        return len(self._clients) + len(self._servers)

    def transactions(self) -> Iterator[Transaction]:
        """Every live transaction, clients first."""
        yield from self._clients.values()
        yield from self._servers.values()

    def get(self, key: TransactionKey) -> Transaction | None:
        """The live transaction with ``key``, if any."""
        if isinstance(key, ClientKey):
            return self._clients.get(key)
        return self._servers.get(key)

    def new_branch(self) -> str:
        """A fresh branch parameter with the RFC 3261 magic cookie (§8.1.1.7)."""
        return MAGIC_COOKIE + self._random_token()

    # ---------------------------------------------------------------------- output

    def outgoing(self) -> list[Outgoing]:
        """Messages queued for the transport since the last call, in order."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[Event]:
        """Events queued for the TU since the last call, in order."""
        events, self._events = self._events, []
        return events

    def send_stateless(self, message: Request | Response, *, peer: Peer, reliable: bool) -> None:
        """Queue ``message`` for the transport outside any transaction: the ACK for a
        2xx (§13.2.2.4), 2xx retransmissions once the INVITE server transaction has
        gone, stateless proxying."""
        self._out.append(Outgoing(message=message, peer=peer, reliable=reliable))

    # ---------------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called; None when no timer runs."""
        heap = self._heap
        while heap:
            _, token, timer, txn = heap[0]
            if txn._timers.get(timer) == token:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (earliest first)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, timer, txn = heapq.heappop(heap)
            if txn._timers.get(timer) != token:
                continue  # cancelled or restarted: skipped lazily
            del txn._timers[timer]
            self._live_timers -= 1
            self._feed(txn, timer, now)
            self._run_immediate(now)

    def _start_timer(self, txn: Transaction, timer: Input, delay: float, now: float) -> None:
        token = next(self._tokens)
        if timer not in txn._timers:
            self._live_timers += 1
        txn._timers[timer] = token
        if delay <= 0.0:
            self._immediate.append((token, timer, txn))
            return
        heapq.heappush(self._heap, (now + delay, token, timer, txn))
        if len(self._heap) > 2 * self._live_timers + 256:
            self._compact_heap()

    def _cancel_timer(self, txn: Transaction, timer: Input) -> None:
        if txn._timers.pop(timer, None) is not None:
            self._live_timers -= 1

    def _compact_heap(self) -> None:
        self._heap = [e for e in self._heap if e[3]._timers.get(e[2]) == e[1]]
        heapq.heapify(self._heap)

    def _run_immediate(self, now: float) -> None:
        """Zero-length timers (D, I, J, K on reliable transports) fire right away."""
        while self._immediate:
            token, timer, txn = self._immediate.popleft()
            if txn._timers.get(timer) != token:
                continue
            del txn._timers[timer]
            self._live_timers -= 1
            self._feed(txn, timer, now)

    # ------------------------------------------------------------ the state machine

    def _feed(
        self,
        txn: Transaction,
        inp: Input,
        now: float,
        message: Request | Response | None = None,
        peer: Peer = None,
    ) -> None:
        """Apply one table entry to ``txn``."""
        machine = txn.machine
        old = txn._state
        entry = machine.table.get((old, inp))
        if type(entry) is not Transition:
            if entry is None:
                entry = machine.entry(old, inp)
            if isinstance(entry, Misuse):
                raise LocalProtocolError(f"{machine.name}: {entry.reason}")
            return  # Ignore
        actions = self._actions
        step = (inp, now, message, peer)
        for action in entry.actions:
            actions[action](txn, action, step)
        new = entry.next_state
        if new is old:
            return
        txn._state = new
        if txn._timers:
            ignored = _IGNORED_TIMERS[machine.name][new]
            for timer in [t for t in txn._timers if t in ignored]:
                self._cancel_timer(txn, timer)  # a timer the new state ignores
        if old is State.CALLING and isinstance(txn, InviteClientTransaction):
            self._invite_left_calling(txn, now)
        if new is State.TERMINATED:
            self._destroy(txn)

    def _act(
        self,
        txn: Transaction,
        action: Action,
        inp: Input,
        now: float,
        *,
        message: Request | Response | None,
        peer: Peer,
    ) -> None:
        """Perform one table action (dispatched through ``self._actions``)."""
        self._actions[action](txn, action, (inp, now, message, peer))

    def _build_actions(self) -> dict[Action, _ActionHandler]:
        table: dict[Action, _ActionHandler] = {
            Action.SEND_REQUEST: self._do_send_request,
            Action.PASS_TO_TU: self._do_pass_to_tu,
            Action.SEND_ACK: self._do_send_ack,
            Action.SEND_RESPONSE: self._do_send_response,
            Action.RESEND_RESPONSE: self._do_resend_response,
            Action.SEND_TRYING: self._do_send_trying,
            Action.STOP_TRYING: self._do_stop_trying,
            Action.ACK_TO_TU: self._do_ack_to_tu,
            Action.INFORM_TIMEOUT: self._do_inform_timeout,
            Action.INFORM_TRANSPORT_ERROR: self._do_inform_transport_error,
        }
        for action in _RETRANSMIT_ACTIONS:
            table[action] = self._do_retransmit_timer
        for action in _START_ACTIONS:
            table[action] = self._do_start_timer
        missing = set(Action) - set(table)
        assert not missing, f"actions without a handler: {missing}"
        return table

    # One handler per Action: (txn, action, (input, now, message, peer)).

    def _do_send_request(self, txn: Transaction, action: Action, step: _Step) -> None:
        self._send(txn, txn.request)

    def _do_pass_to_tu(self, txn: Transaction, action: Action, step: _Step) -> None:
        message = step[2]
        if isinstance(txn, ClientTransaction):
            assert isinstance(message, Response)
            txn.last_response = message
            self._events.append(ResponseReceived(transaction=txn, response=message))
        else:
            assert isinstance(txn, ServerTransaction)
            self._announce(txn)

    def _do_send_ack(self, txn: Transaction, action: Action, step: _Step) -> None:
        message = step[2]
        assert isinstance(txn, InviteClientTransaction)
        if txn.ack is None:
            assert isinstance(message, Response)
            txn.ack = make_ack(txn.request, message)
        self._send(txn, txn.ack)

    def _do_send_response(self, txn: Transaction, action: Action, step: _Step) -> None:
        message = step[2]
        assert isinstance(message, Response)
        txn.last_response = message
        self._send(txn, message)

    def _do_resend_response(self, txn: Transaction, action: Action, step: _Step) -> None:
        if txn.last_response is not None:
            self._send(txn, txn.last_response)
        elif isinstance(txn, InviteServerTransaction):
            self._send_trying(txn)

    def _do_send_trying(self, txn: Transaction, action: Action, step: _Step) -> None:
        self._send_trying(txn)

    def _do_stop_trying(self, txn: Transaction, action: Action, step: _Step) -> None:
        self._cancel_timer(txn, Input.TIMER_TRYING)

    def _do_ack_to_tu(self, txn: Transaction, action: Action, step: _Step) -> None:
        message, peer = step[2], step[3]
        assert isinstance(message, Request) and isinstance(txn, InviteServerTransaction)
        self._events.append(AckReceived(request=message, peer=peer, transaction=txn))

    def _do_inform_timeout(self, txn: Transaction, action: Action, step: _Step) -> None:
        inp = step[0]
        self._events.append(TransactionTimeout(transaction=txn, timer=inp.value))

    def _do_inform_transport_error(self, txn: Transaction, action: Action, step: _Step) -> None:
        self._events.append(TransportFailure(transaction=txn))

    def _do_retransmit_timer(self, txn: Transaction, action: Action, step: _Step) -> None:
        now = step[1]
        timer, interval = _RETRANSMIT_ACTIONS[action](txn._interval, self.config)
        if txn.reliable:
            return  # §17.1.1.2, §17.1.2.2, §17.2.1: no retransmissions
        txn._interval = interval
        self._start_timer(txn, timer, interval, now)

    def _do_start_timer(self, txn: Transaction, action: Action, step: _Step) -> None:
        now = step[1]
        timer = _START_ACTIONS[action]
        if self._durations_for is not self.config:  # TimerConfig.duration(), tabulated
            cfg = self._durations_for = self.config
            self._durations = {
                (t, reliable): cfg.duration(t, reliable=reliable)
                for t in TIMER_INPUTS
                for reliable in (False, True)
            }
        delay = self._durations[timer, txn.reliable]
        assert delay is not None
        self._start_timer(txn, timer, delay, now)

    def _send(self, txn: Transaction, message: Request | Response) -> None:
        self._out.append(
            Outgoing(
                message=message,
                peer=txn.peer,
                reliable=txn.reliable,
                key=txn.key,
                transaction=txn,
            )
        )

    def _send_trying(self, txn: Transaction) -> None:
        """§17.2.1: 100 Trying, unless the TU already responded."""
        self._cancel_timer(txn, Input.TIMER_TRYING)
        if txn.last_response is None:
            trying = make_response(txn.request, 100)
            txn.last_response = trying
            self._send(txn, trying)

    def _destroy(self, txn: Transaction) -> None:
        """Terminated: "destroyed immediately" (RFC 6026 §8.4, §8.7)."""
        for timer in list(txn._timers):
            self._cancel_timer(txn, timer)
        key = txn.key
        if isinstance(key, ClientKey):
            if self._clients.get(key) is txn:
                del self._clients[key]
        elif self._servers.get(key) is txn:
            del self._servers[key]
        if isinstance(txn, ServerTransaction):
            for ikey in txn._index_keys:
                if self._index.get(ikey) is txn:
                    del self._index[ikey]
            txn._index_keys.clear()
        self._events.append(TransactionTerminated(transaction=txn))

    # ------------------------------------------------------------------ client side

    def send_request(
        self, request: Request, *, peer: Peer, reliable: bool, now: float
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` and queue it for ``peer``.

        The TU must already have put a Via with a magic-cookie branch on top
        (:meth:`new_branch`).  ACK is never sent in a transaction (use
        :meth:`send_stateless`).  Raises :class:`LocalProtocolError` on misuse, a
        duplicate branch, or when ``max_transactions`` are live.
        """
        if not isinstance(request, Request):
            raise LocalProtocolError("send_request() needs a Request")
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not sent in a transaction; use send_stateless()")
        key = client_key_for_request(request)
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction {key} is already live")
        if len(self) >= self.max_transactions:
            raise LocalProtocolError(f"too many live transactions ({self.max_transactions})", 503)
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = InviteClientTransaction(
                key=key, request=request, peer=peer, reliable=reliable, now=now
            )
        else:
            txn = NonInviteClientTransaction(
                key=key, request=request, peer=peer, reliable=reliable, now=now
            )
        self._clients[key] = txn
        self._feed(txn, Input.TU_REQUEST, now)
        self._run_immediate(now)
        return txn

    def cancel(
        self, transaction: InviteClientTransaction, *, now: float
    ) -> NonInviteClientTransaction | None:
        """Cancel an INVITE client transaction (RFC 3261 §9.1).

        Builds the CANCEL (same Request-URI, Call-ID, To, From, CSeq number, top Via)
        and starts a non-INVITE client transaction for it to the INVITE's peer.  If no
        provisional response has arrived yet, the CANCEL waits (in ``State.INITIAL``)
        and is sent when one does; if a final response arrives first, it is dropped
        (:class:`TransactionTerminated`).  Once sent, the INVITE gets 64*T1 to see a
        final response, then times out (:class:`TransactionTimeout`, "CANCEL timer").
        Returns the CANCEL transaction (the same one on a second call), or None when
        the INVITE already has a final response (nothing to cancel).
        """
        if not isinstance(transaction, InviteClientTransaction):
            raise LocalProtocolError("only an INVITE client transaction can be cancelled")
        if transaction.cancel_transaction is not None:
            return transaction.cancel_transaction
        if transaction.state not in (State.CALLING, State.PROCEEDING):
            return None
        request = make_cancel(transaction.request)
        key = client_key_for_request(request)
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction {key} is already live")
        cancel = NonInviteClientTransaction(
            key=key,
            request=request,
            peer=transaction.peer,
            reliable=transaction.reliable,
            now=now,
        )
        cancel.cancels = transaction
        transaction.cancel_transaction = cancel
        self._clients[key] = cancel
        if transaction.state is State.PROCEEDING:
            self._start_cancel(transaction, cancel, now)
            self._run_immediate(now)
        return cancel

    def _start_cancel(
        self, invite: InviteClientTransaction, cancel: NonInviteClientTransaction, now: float
    ) -> None:
        self._feed(cancel, Input.TU_REQUEST, now)
        self._feed(invite, Input.CANCEL_SENT, now)

    def _invite_left_calling(self, txn: InviteClientTransaction, now: float) -> None:
        """§9.1: a CANCEL waiting for a provisional is sent now, or dropped."""
        pending = txn.cancel_transaction
        if pending is None or pending.state is not State.INITIAL:
            return
        if txn.state is State.PROCEEDING:
            self._start_cancel(txn, pending, now)
        else:
            self._feed(pending, Input.ABANDON, now)

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        key = client_key_for_response(response)
        txn = self._clients.get(key) if key is not None else None
        if txn is None or txn.state is State.INITIAL:
            self._events.append(StrayResponse(response=response, peer=peer))
            return
        inp = _response_input(response.status, tu=False)
        if inp is Input.RESP_300_699 and txn.is_invite:
            _ = response.to  # the ACK copies To: validate before any state changes
        self._feed(txn, inp, now, response)

    # ------------------------------------------------------------------ server side

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Pass the TU's ``response`` to ``transaction`` (§17.2.1, §17.2.2).

        Raises :class:`LocalProtocolError` when the state forbids it (a second final
        response, a provisional after the final...).  A 2xx retransmission for an
        INVITE server transaction that has already terminated is discarded (RFC 6026
        §8.3); use :meth:`send_stateless` to send it anyway.
        """
        if not isinstance(transaction, ServerTransaction):
            raise LocalProtocolError("send_response() needs a server transaction")
        if not isinstance(response, Response):
            raise LocalProtocolError("send_response() needs a Response")
        request = transaction.request
        try:
            # A response made from the request copies its CSeq: use the parsed one.
            headers = response.headers
            same = headers.get("CSeq") == request.headers.get("CSeq")
            cseq = request.cseq if same else response.cseq
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"the response has no valid CSeq: {exc.reason}") from None
        if cseq.method != transaction.method:
            raise LocalProtocolError(
                f"response CSeq {cseq} does not answer the {transaction.method} transaction"
            )
        self._feed(transaction, _response_input(response.status, tu=True), now, response)
        self._run_immediate(now)

    def _announce(self, txn: ServerTransaction) -> None:
        """PASS_TO_TU on a server transaction: the event depends on how it arrived."""
        request = txn.request
        if request.method == "CANCEL":
            self._announce_cancel(txn)
            return
        if self.detect_merged and request.to.tag is None:
            key = merge_key(request)
            original = self._index.get(key)
            if original is not None and original is not txn:
                self._events.append(
                    MergedRequest(request=request, transaction=txn, original=original)
                )
                return
            self._add_index(txn, key)
        self._events.append(RequestReceived(request=request, transaction=txn))

    def _cancel_target(self, cancel: Request) -> InviteServerTransaction | None:
        """§9.2: the INVITE server transaction a CANCEL refers to (§17.2.3 matching,
        the method not considered)."""
        target = self._servers.get(server_key(cancel, "INVITE"))
        return target if isinstance(target, InviteServerTransaction) else None

    def _announce_cancel(self, txn: ServerTransaction) -> None:
        assert isinstance(txn, NonInviteServerTransaction)
        invite = self._cancel_target(txn.request)
        self._events.append(
            CancelReceived(cancel_request=txn.request, transaction=txn, invite_transaction=invite)
        )

    def _answer_cancel(
        self, txn: ServerTransaction, invite: InviteServerTransaction, now: float
    ) -> None:
        """§9.2: a CANCEL that matched is answered 200 by the layer itself, with the To
        tag of the INVITE's responses when known (``invite.to_tag``, else the tag of
        its last response), else a fresh one."""
        tag = invite.to_tag
        if tag is None and invite.last_response is not None:
            tag = invite.last_response.to.tag
        if tag is None and txn.request.to.tag is None:
            tag = self._random_token()
        self._feed(txn, Input.TU_2XX, now, make_response(txn.request, 200, to_tag=tag))

    def _add_index(self, txn: ServerTransaction, key: Hashable) -> None:
        if key not in self._index:
            self._index[key] = txn
            txn._index_keys.append(key)

    def _receive_request(self, request: Request, peer: Peer, reliable: bool, now: float) -> None:
        method = request.method
        if method == "ACK":
            self._receive_ack(request, peer, now)
            return
        key = server_key(request)
        txn = self._servers.get(key)
        if txn is not None:
            self._feed(txn, Input.REQUEST, now, request, peer)  # a retransmission
            return
        # A new transaction: check what its handling reads before any state changes
        # (server_key read the Via and CSeq; the merge key is From tag, Call-ID, CSeq).
        _ = (request.from_, request.to, request.call_id)
        if method == "CANCEL":
            server_key(request, "INVITE")
        if len(self) >= self.max_transactions:
            response = make_response(request, 503)
            self._out.append(Outgoing(message=response, peer=peer, reliable=reliable))
            self._events.append(RequestRejected(request=request, peer=peer, status=503))
            return
        new: ServerTransaction
        if method == "INVITE":
            new = InviteServerTransaction(
                key=key, request=request, peer=peer, reliable=reliable, now=now
            )
            if isinstance(key, LegacyServerKey):
                self._add_index(new, legacy_ack_key(request))
        else:
            new = NonInviteServerTransaction(
                key=key, request=request, peer=peer, reliable=reliable, now=now
            )
        self._servers[key] = new
        self._feed(new, Input.REQUEST, now, request, peer)
        if method == "CANCEL":
            invite = self._cancel_target(request)
            if invite is not None:
                self._answer_cancel(new, invite, now)

    def _receive_ack(self, request: Request, peer: Peer, now: float) -> None:
        """§17.2.3: an ACK matches the INVITE server transaction (non-2xx ACK, or any
        ACK in Accepted); otherwise it is a 2xx ACK for the TU."""
        key = server_key(request, "INVITE")
        txn = self._servers.get(key)
        if txn is None and isinstance(key, LegacyServerKey):
            candidate = self._index.get(legacy_ack_key(request))
            if (
                candidate is not None
                and candidate.last_response is not None
                and candidate.last_response.to.tag == request.to.tag
            ):
                txn = candidate
        if txn is None:
            self._events.append(AckReceived(request=request, peer=peer))
            return
        self._feed(txn, Input.ACK, now, request, peer)

    # --------------------------------------------------------------- other inputs

    def receive(
        self, message: Request | Response, *, peer: Peer, reliable: bool, now: float
    ) -> None:
        """A message from the transport (§18.1.2, §18.2.1).

        Raises :class:`~sipwire.core._errors.RemoteProtocolError` (status 400) if a
        header matching needs (Via, CSeq, Call-ID, From, To) is missing or malformed;
        nothing has changed then, and the shell may answer a request statelessly with
        ``make_response(request, err.status_hint)``.
        """
        if isinstance(message, Response):
            self._receive_response(message, peer, now)
        else:
            self._receive_request(message, peer, reliable, now)
        self._run_immediate(now)

    def transport_error(self, key: TransactionKey, now: float) -> None:
        """The transport failed to send a message of transaction ``key``
        (``Outgoing.key``).  Unknown keys (the transaction is gone) are ignored."""
        txn = self.get(key)
        if txn is not None:
            self._feed(txn, Input.TRANSPORT_ERROR, now)
            self._run_immediate(now)


def _backoff_a(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_A, 2 * interval


def _start_a(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_A, cfg.t1


def _start_e(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_E, cfg.t1


def _backoff_e(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_E, min(2 * interval, cfg.t2)


def _e_at_t2(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_E, cfg.t2


def _start_g(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_G, cfg.t1


def _backoff_g(interval: float, cfg: TimerConfig) -> tuple[Input, float]:
    return Input.TIMER_G, min(2 * interval, cfg.t2)


# Retransmission timers: (current interval, config) -> (timer, next interval).
_RETRANSMIT_ACTIONS: dict[Action, Callable[[float, TimerConfig], tuple[Input, float]]] = {
    Action.START_A: _start_a,
    Action.DOUBLE_A: _backoff_a,
    Action.START_E: _start_e,
    Action.BACKOFF_E: _backoff_e,
    Action.E_AT_T2: _e_at_t2,
    Action.START_G: _start_g,
    Action.BACKOFF_G: _backoff_g,
}

# One-shot timers: the duration comes from TimerConfig.duration().
_START_ACTIONS: dict[Action, Input] = {
    action: timer for action, timer in TIMER_STARTS.items() if action not in _RETRANSMIT_ACTIONS
}

# For each machine and state: the timers that state ignores, cancelled on entering it.
_IGNORED_TIMERS: dict[str, dict[State, frozenset[Input]]] = {
    machine.name: {
        state: frozenset(
            timer for timer in TIMER_INPUTS if isinstance(machine.table.get((state, timer)), Ignore)
        )
        for state in machine.states
    }
    for machine in MACHINES
}
