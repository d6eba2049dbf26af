"""Transaction objects, keys, outputs and events of the transaction layer.

The transaction objects are read-only views for the transaction user (TU): the
:class:`~sipwire.core.transaction.TransactionLayer` owns their state and is the only
thing that changes it.  Events are frozen, keyword-only dataclasses (DESIGN rule 12).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from sipwire.core._txn_tables import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Input,
    Machine,
    State,
)
from sipwire.core.message import Request, Response

__all__ = [
    "AckReceived",
    "CancelReceived",
    "ClientKey",
    "ClientTransaction",
    "Event",
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
    "StrayResponse",
    "Transaction",
    "TransactionKey",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailure",
]

Peer = Hashable
"""Opaque, hashable transport + address chosen by the shell; outputs carry it back."""

MAGIC_COOKIE = "z9hG4bK"


# --------------------------------------------------------------------------- keys


# The keys are named tuples: built and hashed in C on every message, immutable.


class ClientKey(NamedTuple):
    """RFC 3261 §17.1.3: top-Via branch + CSeq method (CANCEL is its own transaction)."""

    branch: str
    method: str


class ServerKey(NamedTuple):
    """RFC 3261 §17.2.3, magic-cookie branch: branch + sent-by + method (ACK -> INVITE)."""

    branch: str
    sent_by: tuple[str, int | None]
    method: str


class LegacyServerKey(NamedTuple):
    """RFC 3261 §17.2.3, RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID,
    CSeq (number and method) and the top Via."""

    request_uri: Hashable
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq: int
    method: str
    via: Hashable


TransactionKey = ClientKey | ServerKey | LegacyServerKey


# ---------------------------------------------------------------------- transactions


class Transaction:
    """State shared by the four transaction kinds (read-only for the TU)."""

    machine: ClassVar[Machine]
    is_invite: ClassVar[bool]
    is_client: ClassVar[bool]

    __slots__ = (
        "_interval",
        "_state",
        "_timers",
        "created_at",
        "key",
        "last_response",
        "peer",
        "reliable",
        "request",
    )

    def __init__(
        self,
        *,
        key: TransactionKey,
        request: Request,
        peer: Peer,
        reliable: bool,
        now: float,
    ) -> None:
        self.key: TransactionKey = key
        self.request: Request = request
        self.peer: Peer = peer
        self.reliable: bool = reliable
        self.created_at: float = now
        #: client: the last response received; server: the last response sent.
        self.last_response: Response | None = None
        self._state = State.INITIAL
        self._timers: dict[Input, int] = {}
        self._interval = 0.0

    @property
    def state(self) -> State:
        """The current :class:`~sipwire.core._txn_tables.State`."""
        return self._state

    @property
    def method(self) -> str:
        """The method of the request that created the transaction."""
        return self.request.method

    @property
    def terminated(self) -> bool:
        return self._state is State.TERMINATED

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self._state.value} {self.key}>"


class ClientTransaction(Transaction):
    """A client transaction (RFC 3261 §17.1)."""

    is_client = True
    __slots__ = ()


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026 (Accepted state, Timer M)."""

    machine = INVITE_CLIENT
    is_invite = True
    __slots__ = ("ack", "cancel_transaction")

    def __init__(
        self, *, key: TransactionKey, request: Request, peer: Peer, reliable: bool, now: float
    ) -> None:
        super().__init__(key=key, request=request, peer=peer, reliable=reliable, now=now)
        #: The ACK this transaction built for a 300-699 response (§17.1.1.3).
        self.ack: Request | None = None
        #: The CANCEL transaction created by ``TransactionLayer.cancel`` (§9.1).
        self.cancel_transaction: NonInviteClientTransaction | None = None


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2."""

    machine = NON_INVITE_CLIENT
    is_invite = False
    __slots__ = ("cancels",)

    def __init__(
        self, *, key: TransactionKey, request: Request, peer: Peer, reliable: bool, now: float
    ) -> None:
        super().__init__(key=key, request=request, peer=peer, reliable=reliable, now=now)
        #: For a CANCEL made by ``TransactionLayer.cancel``: the INVITE it cancels.
        self.cancels: InviteClientTransaction | None = None


class ServerTransaction(Transaction):
    """A server transaction (RFC 3261 §17.2)."""

    is_client = False
    __slots__ = ("_index_keys", "to_tag")

    def __init__(
        self, *, key: TransactionKey, request: Request, peer: Peer, reliable: bool, now: float
    ) -> None:
        super().__init__(key=key, request=request, peer=peer, reliable=reliable, now=now)
        self._index_keys: list[Hashable] = []
        #: The To tag the TU uses for its responses, if it chose one (settable).  The
        #: layer's own 200 to a CANCEL of this INVITE reuses it (§9.2: "SHOULD be the same").
        self.to_tag: str | None = None


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026 (Accepted state, Timer L)."""

    machine = INVITE_SERVER
    is_invite = True
    __slots__ = ()


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2."""

    machine = NON_INVITE_SERVER
    is_invite = False
    __slots__ = ()


# ---------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """A message for the transport: send ``message`` to ``peer``.

    ``key`` names the transaction that sent it (``None`` for stateless sends); give it
    back to ``TransactionLayer.transport_error`` if the transport fails (§17.1.4, §17.2.4).
    ``transaction`` is that transaction itself (read-only, e.g. to reuse the parsed top
    Via of the request a response answers).
    """

    message: Request | Response
    peer: Peer
    reliable: bool
    key: TransactionKey | None = None
    transaction: Transaction | None = None


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request (not ACK, not CANCEL) created ``transaction``; answer it with
    ``TransactionLayer.send_response`` (the TU must answer every request)."""

    request: Request
    transaction: ServerTransaction


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """An ACK the transaction layer does not absorb: an ACK for a 2xx (a new transaction
    of its own, §17.1.1.3), or an ACK matching an INVITE server transaction in Accepted
    (RFC 6026 §7.1) -- then ``transaction`` is that transaction."""

    request: Request
    peer: Peer
    transaction: InviteServerTransaction | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """A CANCEL created the server transaction ``transaction`` (RFC 3261 §9.2).

    If it matched ``invite_transaction`` the layer already answered the CANCEL with
    200; the TU should answer the INVITE with 487 if it is still in Proceeding.  If
    ``invite_transaction`` is None, the TU answers 481 on ``transaction`` (a UAS) or
    forwards the CANCEL (a proxy, §16.10).
    """

    cancel_request: Request
    transaction: NonInviteServerTransaction
    invite_transaction: InviteServerTransaction | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedRequest:
    """RFC 3261 §8.2.2.2: ``request`` has no To tag and the From tag, Call-ID and CSeq of
    ``original`` but is a different transaction (it came by another path of a fork).
    A UAS answers 482 (Loop Detected) on ``transaction``.  Only reported when the layer
    was built with ``detect_merged=True`` (proxies must not do this)."""

    request: Request
    transaction: ServerTransaction
    original: ServerTransaction


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRejected:
    """The layer answered ``request`` statelessly with ``status`` (503: too many
    live transactions) without creating a transaction."""

    request: Request
    peer: Peer
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response for a client transaction: provisional or final; in Accepted, every
    2xx (retransmissions and other fork branches) is passed up again (RFC 6026)."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class StrayResponse:
    """A response that matches no client transaction (RFC 6026 §7.2), e.g. a 2xx
    retransmission after Timer M: a UA core re-ACKs it; a proxy must drop it."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimeout:
    """Timer B, F or H fired, or the §9.1 CANCEL timer (no final response 64*T1 after a
    CANCEL); ``timer`` names it ("Timer B", ...)."""

    transaction: Transaction
    timer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailure:
    """The transport reported a failure for this transaction (§17.1.4, §17.2.4)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    """The transaction reached Terminated and was destroyed; free per-transaction state."""

    transaction: Transaction


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | MergedRequest
    | RequestRejected
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransportFailure
    | TransactionTerminated
)
