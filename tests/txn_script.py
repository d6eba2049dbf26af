"""Two-sided script harness for the transaction layer (reSIProcate style).

A :class:`Script` wraps one :class:`~sipwire.core.transaction.TransactionLayer` with a
manual clock.  A test drives it from both sides and checks both sides:

* ``from_wire(msg)`` -- a message arrives from the transport;
* ``send_request(req)`` / ``send_response(txn, resp)`` / ``cancel(txn)`` -- the TU acts;
* ``advance(seconds)`` -- time passes; timers fire exactly at their deadlines (the clock
  steps from deadline to deadline, like the asyncio shell's ``call_at``);
* ``expect_wire(...)`` / ``expect_user(...)`` -- pop the oldest unexpected output on
  that side and check it; ``expect_quiet()`` -- nothing is left on either side.

Every output is stamped with the clock value at which it was produced, so scripts
assert exact retransmission times (``wire_times()``).  Messages are built as text and
parsed with :func:`sipwire.core.message.parse_message`, like wire input.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.transaction import (
    ClientTransaction,
    Event,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Outgoing,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
)

PEER: Hashable = ("udp", "192.0.2.10", 5060)
OTHER_PEER: Hashable = ("udp", "192.0.2.20", 5060)

E = TypeVar("E")


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-c1",
    cseq: int = 1,
    cseq_method: str | None = None,
    uri: str = "sip:bob@biloxi.example.com",
    from_tag: str | None = "ft1",
    to_tag: str | None = None,
    call_id: str = "call-1@atlanta.example.com",
    via_host: str = "pc33.atlanta.example.com",
    via_port: int | None = 5060,
    transport: str = "UDP",
    extra: str = "",
) -> Request:
    """A request parsed from text, as if it came from the wire."""
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    branch_param = "" if branch is None else f";branch={branch}"
    from_param = "" if from_tag is None else f";tag={from_tag}"
    to_param = "" if to_tag is None else f";tag={to_tag}"
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by}{branch_param}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: Alice <sip:alice@atlanta.example.com>{from_param}\r\n"
        f"To: Bob <sip:bob@biloxi.example.com>{to_param}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response(req: Request, status: int, *, to_tag: str | None = "tt1") -> Response:
    """A response to ``req`` as the wire would deliver it (serialized and re-parsed)."""
    built = make_response(req, status, to_tag=None if status == 100 else to_tag)
    parsed = parse_message(built.to_bytes())
    assert isinstance(parsed, Response)
    return parsed


def ack_for(req: Request, resp: Response, *, branch: str | None = None) -> Request:
    """An ACK from the wire: for a non-2xx, the §17.1.1.3 ACK (same branch); pass
    ``branch`` for a 2xx ACK (a new transaction)."""
    via = req.headers.get("Via")
    assert via is not None
    if branch is not None:
        via = via.split(";branch=")[0] + f";branch={branch}"
    text = (
        f"ACK {req.uri_text} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {req.headers.get('From')}\r\n"
        f"To: {resp.headers.get('To')}\r\n"
        f"Call-ID: {req.call_id}\r\n"
        f"CSeq: {req.cseq.seq} ACK\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


@dataclass(frozen=True)
class Stamped:
    at: float
    item: Any


def _describe(message: Request | Response) -> str:
    if isinstance(message, Request):
        return message.method
    return str(message.status)


class Script:
    """One layer, a manual clock, and the two output queues."""

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        max_transactions: int = 1000,
        detect_merged: bool = False,
        start: float = 100.0,
    ) -> None:
        counter = itertools.count(1)
        self.layer = TransactionLayer(
            config or TimerConfig(),
            random_token=lambda: f"tok{next(counter)}",
            max_transactions=max_transactions,
            detect_merged=detect_merged,
        )
        self.start = start
        self.now = start
        self.wire: deque[Stamped] = deque()
        self.user: deque[Stamped] = deque()

    # -------------------------------------------------------------- plumbing

    @property
    def elapsed(self) -> float:
        return self.now - self.start

    def _collect(self) -> None:
        for out in self.layer.outgoing():
            self.wire.append(Stamped(self.elapsed, out))
        for event in self.layer.events():
            self.user.append(Stamped(self.elapsed, event))

    # ----------------------------------------------------------------- inputs

    def from_wire(
        self, message: Request | Response, *, peer: Hashable = PEER, reliable: bool = False
    ) -> None:
        self.layer.receive(message, peer=peer, reliable=reliable, now=self.now)
        self._collect()

    def send_request(
        self, req: Request, *, peer: Hashable = PEER, reliable: bool = False
    ) -> ClientTransaction:
        txn = self.layer.send_request(req, peer=peer, reliable=reliable, now=self.now)
        self._collect()
        return txn

    def send_response(self, txn: ServerTransaction, resp: Response) -> None:
        self.layer.send_response(txn, resp, self.now)
        self._collect()

    def respond(
        self, txn: ServerTransaction, status: int, *, to_tag: str | None = "uas-tag"
    ) -> Response:
        """The TU answers ``txn`` with ``status`` (built with make_response)."""
        resp = make_response(txn.request, status, to_tag=None if status == 100 else to_tag)
        self.send_response(txn, resp)
        return resp

    def cancel(self, txn: InviteClientTransaction) -> NonInviteClientTransaction | None:
        result = self.layer.cancel(txn, now=self.now)
        self._collect()
        return result

    def transport_error(self, out: Outgoing) -> None:
        assert out.key is not None
        self.layer.transport_error(out.key, self.now)
        self._collect()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, firing every timer at its exact deadline."""
        target = self.now + seconds
        while True:
            deadline = self.layer.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = deadline
            self.layer.handle_timer(self.now)
            self._collect()
        self.now = target

    # ------------------------------------------------------------- expectations

    def expect_wire(
        self,
        what: str | None = None,
        *,
        at: float | None = None,
        peer: Hashable | None = None,
        reliable: bool | None = None,
    ) -> Outgoing:
        """Pop the oldest message sent to the wire; ``what`` is a method or a status."""
        assert self.wire, f"expected {what or 'a message'} on the wire, nothing was sent"
        stamped = self.wire.popleft()
        out: Outgoing = stamped.item
        if what is not None:
            assert _describe(out.message) == what, (
                f"expected {what} on the wire, got {_describe(out.message)} at {stamped.at}"
            )
        if at is not None:
            assert close(stamped.at, at), f"{what} sent at {stamped.at}, expected {at}"
        if peer is not None:
            assert out.peer == peer
        if reliable is not None:
            assert out.reliable is reliable
        return out

    def expect_user(self, kind: type[E], *, at: float | None = None, **fields: Any) -> E:
        """Pop the oldest event for the TU and check its type and ``fields``."""
        assert self.user, f"expected {kind.__name__} for the TU, nothing was reported"
        stamped = self.user.popleft()
        event: Event = stamped.item
        assert isinstance(event, kind), f"expected {kind.__name__}, got {event!r}"
        for name, value in fields.items():
            actual = getattr(event, name)
            if isinstance(value, Request | Response):
                assert actual is value or actual == value, f"{name}: {actual!r} != {value!r}"
            elif isinstance(value, type):
                assert isinstance(actual, value), f"{name}: {actual!r} is not a {value}"
            else:
                assert actual is value or actual == value, f"{name}: {actual!r} != {value!r}"
        if at is not None:
            assert close(stamped.at, at), f"{kind.__name__} at {stamped.at}, expected {at}"
        return event

    def expect_quiet(self) -> None:
        """Nothing unexpected was sent or reported."""
        assert not self.wire, "unexpected wire output: " + ", ".join(
            f"{_describe(s.item.message)}@{s.at}" for s in self.wire
        )
        assert not self.user, "unexpected events: " + ", ".join(
            f"{type(s.item).__name__}@{s.at}" for s in self.user
        )

    def wire_times(self, what: str) -> list[float]:
        """Pop every queued wire message of kind ``what`` and return their send times."""
        times = [s.at for s in self.wire if _describe(s.item.message) == what]
        self.wire = deque(s for s in self.wire if _describe(s.item.message) != what)
        return times

    def drain_user(self) -> list[Event]:
        events = [s.item for s in self.user]
        self.user.clear()
        return events


def close(a: float, b: float) -> bool:
    """Equal within 1e-9 (timer sums like 0.5 + 1.0 + 2.0 are not exact in binary)."""
    return abs(a - b) < 1e-9


def all_close(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(map(close, actual, expected))
