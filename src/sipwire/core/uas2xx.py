"""The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4, RFC 6026 §8.5), sans-IO.

Once a UAS sends a 2xx to an INVITE, the INVITE server transaction is no longer
responsible for it: the UAS core retransmits the 2xx with an interval starting at T1
and doubling up to T2 until the ACK arrives, and gives up after 64*T1 (the session
SHOULD then be ended with a BYE). The ACK of a 2xx is a new transaction with its own
branch, so it is matched by dialog: Call-ID, CSeq number and From tag (§13.2.2.4 says
its CSeq number equals the INVITE's).

Time is an argument; the shell calls :meth:`TwoXXRetransmitter.handle_timer` at
:meth:`~TwoXXRetransmitter.next_deadline` and sends what it returns.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

from sipwire.core.message import Request, Response

__all__ = ["DEFAULT_MAX_PENDING", "AckKey", "Pending2xx", "TwoXXRetransmitter", "ack_key"]

#: Unacknowledged 2xx responses tracked at once; beyond it the oldest is given up.
DEFAULT_MAX_PENDING = 50_000

AckKey = tuple[str, int, str]


def ack_key(message: Request | Response) -> AckKey:
    """Call-ID, CSeq number and From tag: what ties a 2xx to the ACK that answers it."""
    return (message.call_id, message.cseq.seq, message.from_.tag or "")


@dataclass(slots=True, kw_only=True)
class Pending2xx:
    """One 2xx awaiting its ACK."""

    response: Response
    peer: Hashable
    started: float
    interval: float
    deadline: float
    retransmissions: int = 0
    token: int = field(default=0)
    #: Whatever the caller passed to :meth:`TwoXXRetransmitter.start` (the shell's
    #: server-transaction handle), handed back by :meth:`~TwoXXRetransmitter.acknowledge_pending`.
    owner: object = None


class TwoXXRetransmitter:
    """Every 2xx of one UAS core still waiting for an ACK.

    :meth:`start` when a 2xx is sent, :meth:`acknowledge` when an ACK arrives (returns
    True if it matched), :meth:`handle_timer` returns ``(resends, given_up)``: the 2xx to
    send again and the ones that reached 64*T1 without an ACK.
    """

    def __init__(
        self, *, t1: float = 0.5, t2: float = 4.0, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        self.t1 = t1
        self.t2 = t2
        self.max_pending = max_pending
        self._pending: dict[AckKey, Pending2xx] = {}
        self._heap: list[tuple[float, int, AckKey]] = []
        self._tokens = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self,
        response: Response,
        *,
        peer: Hashable,
        reliable: bool,
        now: float,
        owner: object = None,
        key: AckKey | None = None,
    ) -> None:
        """Track a 2xx just sent. Over a reliable transport it is not retransmitted, but
        the 64*T1 wait for the ACK still runs (§13.3.1.4). ``owner`` is kept with it
        (see :meth:`acknowledge_pending`). ``key`` is :func:`ack_key` of the response
        when the caller has it (``ack_key(request)``: the response copies Call-ID, CSeq
        and From), else it is computed."""
        if key is None:
            key = ack_key(response)
        token = next(self._tokens)
        interval = float("inf") if reliable else self.t1
        deadline = now + (64 * self.t1 if reliable else self.t1)
        if key not in self._pending and len(self._pending) >= self.max_pending:
            pending = self._pending
            del pending[min(pending, key=lambda k: pending[k].started)]
        self._pending[key] = Pending2xx(
            response=response,
            peer=peer,
            started=now,
            interval=interval,
            deadline=deadline,
            token=token,
            owner=owner,
        )
        heapq.heappush(self._heap, (deadline, token, key))

    def acknowledge(self, ack: Request) -> Response | None:
        """The ACK ``ack`` arrived: stop retransmitting; returns the 2xx it acknowledged."""
        pending = self._pending.pop(ack_key(ack), None)
        return None if pending is None else pending.response

    def acknowledge_pending(self, ack: Request) -> Pending2xx | None:
        """Like :meth:`acknowledge`, but returns the whole entry (with its ``owner``)."""
        return self._pending.pop(ack_key(ack), None)

    def is_pending(self, key: AckKey) -> bool:
        return key in self._pending

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, token, key = self._heap[0]
            pending = self._pending.get(key)
            if pending is not None and pending.token == token:
                return deadline
            heapq.heappop(self._heap)
        return None

    def handle_timer(self, now: float) -> tuple[list[Pending2xx], list[Pending2xx]]:
        resend: list[Pending2xx] = []
        given_up: list[Pending2xx] = []
        while self._heap and self._heap[0][0] <= now:
            _, token, key = heapq.heappop(self._heap)
            pending = self._pending.get(key)
            if pending is None or pending.token != token:
                continue
            if now - pending.started >= 64 * self.t1 - 1e-9:
                del self._pending[key]
                given_up.append(pending)
                continue
            pending.retransmissions += 1
            pending.interval = min(pending.interval * 2, self.t2)
            pending.deadline = min(now + pending.interval, pending.started + 64 * self.t1)
            pending.token = next(self._tokens)
            heapq.heappush(self._heap, (pending.deadline, pending.token, key))
            resend.append(pending)
        return resend, given_up
