"""Pair harness: a client layer and a server layer wired through an in-memory lossy
network with a manual clock.  Every transaction still completes when a
deterministic subset of the messages is dropped (RFC 3261 §17 reliability over UDP).

The TUs on both sides are small scripts: the UAC sends INVITEs (to be accepted,
rejected or cancelled) and non-INVITE requests, ACKs every 2xx it sees (§13.2.2.4);
the UAS answers, retransmits its 2xx until the ACK arrives (§13.3.1.4) and answers
487 after a CANCEL.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import pytest

from sipwire.core.message import Request, Response, make_response, parse_message
from sipwire.core.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from txn_script import ack_for, request

UAC: Hashable = ("udp", "uac.example.com", 5060)
UAS: Hashable = ("udp", "uas.example.com", 5060)
LATENCY = 0.03

DropRule = Callable[[int, Request | Response], bool]


def _label(message: Request | Response) -> tuple[str, str, str]:
    kind = message.method if isinstance(message, Request) else str(message.status)
    return (kind, message.call_id, message.cseq.method)


def drop_nothing() -> DropRule:
    return lambda index, message: False


def drop_every_first_copy() -> DropRule:
    """Each distinct message (kind, Call-ID, CSeq method) is lost the first time."""
    seen: set[tuple[str, str, str]] = set()

    def rule(index: int, message: Request | Response) -> bool:
        label = _label(message)
        if label in seen:
            return False
        seen.add(label)
        return True

    return rule


def drop_every_third() -> DropRule:
    return lambda index, message: index % 3 == 1


def drop_random(seed: int, rate: float) -> DropRule:
    rng = random.Random(seed)
    return lambda index, message: rng.random() < rate


@dataclass
class World:
    drop: DropRule
    reliable: bool = False
    uac: TransactionLayer = field(init=False)
    uas: TransactionLayer = field(init=False)
    now: float = 0.0
    sent: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        tokens = itertools.count()
        self.uac = TransactionLayer(TimerConfig(), random_token=lambda: f"c{next(tokens)}")
        self.uas = TransactionLayer(TimerConfig(), random_token=lambda: f"s{next(tokens)}")
        self._order = itertools.count()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    def transmit(self, source: Hashable, out: Outgoing) -> None:
        index = self.sent
        self.sent += 1
        if self.drop(index, out.message):
            self.dropped += 1
            return
        data = out.message.to_bytes()
        target = self.uas if out.peer == UAS else self.uac

        def deliver() -> None:
            message = parse_message(data)
            target.receive(message, peer=source, reliable=self.reliable, now=self.now)

        self.at(self.now + LATENCY, deliver)

    def run(self, until: float, pump: Callable[[], None]) -> None:
        while True:
            candidates = [t for t in (self.uac.next_deadline(), self.uas.next_deadline()) if t]
            if self._queue:
                candidates.append(self._queue[0][0])
            if not candidates:
                break
            when = min(candidates)
            if when > until:
                break
            self.now = max(self.now, when)
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, action = heapq.heappop(self._queue)
                action()
                pump()
            pump()
        self.now = until


class Scenario:
    """The two TUs."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.finals: dict[str, list[int]] = defaultdict(list)  # Call-ID -> final statuses
        self.acked: set[str] = set()  # Call-IDs whose 2xx was ACKed at the UAS
        self.failures: list[object] = []
        self.client_txns: dict[str, ClientTransaction] = {}
        self.server_terminated = 0
        self.client_terminated = 0
        self.ok_sent: dict[str, tuple[InviteServerTransaction, Response]] = {}

    # ----------------------------------------------------------------- UAC TU

    def start(self, call_id: str, method: str, user: str) -> None:
        req = request(
            method,
            branch=self.w.uac.new_branch(),
            uri=f"sip:{user}@uas.example.com",
            call_id=call_id,
            via_host="uac.example.com",
        )
        txn = self.w.uac.send_request(req, peer=UAS, reliable=self.w.reliable, now=self.w.now)
        self.client_txns[call_id] = txn
        if user == "slow":
            assert isinstance(txn, InviteClientTransaction)
            self.w.at(self.w.now + 1.0, lambda: self._cancel(txn))

    def _cancel(self, txn: InviteClientTransaction) -> None:
        self.w.uac.cancel(txn, now=self.w.now)

    def _uac_event(self, event: object) -> None:
        if isinstance(event, ResponseReceived | StrayResponse):
            resp = event.response
            if resp.status >= 200 and resp.cseq.method != "CANCEL":
                self.finals[resp.call_id].append(resp.status)
            if 200 <= resp.status < 300 and resp.cseq.method == "INVITE":
                original = self.client_txns[resp.call_id].request
                ack = ack_for(original, resp, branch=self.w.uac.new_branch())
                self.w.uac.send_stateless(ack, peer=UAS, reliable=self.w.reliable)
        elif isinstance(event, TransactionTerminated):
            self.client_terminated += 1
        elif isinstance(event, TransactionTimeout | TransportFailure):
            self.failures.append(event)

    # ----------------------------------------------------------------- UAS TU

    def _uas_event(self, event: object) -> None:
        uas = self.w.uas
        if isinstance(event, RequestReceived):
            txn = event.transaction
            req = event.request
            if req.method != "INVITE":
                uas.send_response(txn, make_response(req, 200, to_tag="uas"), self.w.now)
                return
            assert isinstance(txn, InviteServerTransaction)
            txn.to_tag = "uas"
            user = req.uri_text.split(":")[1].split("@")[0]
            if user == "reject":
                uas.send_response(txn, make_response(req, 486, to_tag="uas"), self.w.now)
                return
            uas.send_response(txn, make_response(req, 180, to_tag="uas"), self.w.now)
            if user == "accept":
                self.w.at(self.w.now + 0.3, lambda: self._accept(txn))
        elif isinstance(event, CancelReceived):
            invite = event.invite_transaction
            if invite is None:
                uas.send_response(
                    event.transaction, make_response(event.cancel_request, 481), self.w.now
                )
            elif invite.state.value == "Proceeding":
                uas.send_response(
                    invite, make_response(invite.request, 487, to_tag="uas"), self.w.now
                )
        elif isinstance(event, AckReceived):
            self.acked.add(event.request.call_id)
        elif isinstance(event, TransactionTerminated):
            self.server_terminated += 1
        elif isinstance(event, TransactionTimeout | TransportFailure):
            self.failures.append(event)

    def _accept(self, txn: InviteServerTransaction) -> None:
        if txn.state.value != "Proceeding":
            return
        ok = make_response(txn.request, 200, to_tag="uas")
        self.w.uas.send_response(txn, ok, self.w.now)
        self.ok_sent[txn.request.call_id] = (txn, ok)
        self._retransmit_2xx(txn, ok, 0.5, self.w.now)

    def _retransmit_2xx(
        self, txn: ServerTransaction, ok: Response, interval: float, first: float
    ) -> None:
        """§13.3.1.4: T1, doubling to T2, until the ACK or 64*T1."""

        def again() -> None:
            call_id = txn.request.call_id
            if call_id in self.acked or self.w.now - first >= 32.0 or txn.terminated:
                return
            self.w.uas.send_response(txn, ok, self.w.now)
            self._retransmit_2xx(txn, ok, min(2 * interval, 4.0), first)

        self.w.at(self.w.now + interval, again)

    # ---------------------------------------------------------------- plumbing

    def pump(self) -> None:
        for _ in range(100):
            busy = False
            for out in self.w.uac.outgoing():
                busy = True
                self.w.transmit(UAC, out)
            for event in self.w.uac.events():
                busy = True
                self._uac_event(event)
            for out in self.w.uas.outgoing():
                busy = True
                self.w.transmit(UAS, out)
            for event in self.w.uas.events():
                busy = True
                self._uas_event(event)
            if not busy:
                return
        raise AssertionError("the TUs never settle")


CALLS = [
    ("INVITE", "accept"),
    ("INVITE", "reject"),
    ("INVITE", "slow"),
    ("OPTIONS", "ping"),
    ("REGISTER", "alice"),
    ("INVITE", "accept"),
    ("MESSAGE", "bob"),
    ("INVITE", "slow"),
]
EXPECTED = {"accept": 200, "reject": 486, "slow": 487, "ping": 200, "alice": 200, "bob": 200}


@pytest.mark.parametrize(
    "make_rule",
    [
        drop_nothing,
        drop_every_first_copy,
        drop_every_third,
        *(lambda seed=seed: drop_random(seed, 0.3) for seed in range(6)),
    ],
    ids=["none", "first-copy", "every-third", *(f"random30-{seed}" for seed in range(6))],
)
def test_every_transaction_completes_over_a_lossy_network(
    make_rule: Callable[[], DropRule],
) -> None:
    world = World(make_rule())
    scenario = Scenario(world)
    for i, (method, user) in enumerate(CALLS):
        call_id = f"call-{i}"
        world.at(0.1 * i, lambda c=call_id, m=method, u=user: scenario.start(c, m, u))
    world.run(until=300.0, pump=scenario.pump)

    for i, (_method, user) in enumerate(CALLS):
        call_id = f"call-{i}"
        finals = scenario.finals[call_id]
        assert finals, f"{call_id} ({user}) got no final response"
        assert finals[0] == EXPECTED[user], f"{call_id}: {finals}"
        if user == "accept":
            assert call_id in scenario.acked, f"{call_id}: the 2xx was never ACKed"
    assert scenario.failures == []
    # Everything ends: no live transaction, no timer, on either side.
    assert len(world.uac) == 0 and len(world.uas) == 0
    assert world.uac.next_deadline() is None and world.uas.next_deadline() is None
    cancels = sum(1 for _, user in CALLS if user == "slow")
    assert scenario.client_terminated == len(CALLS) + cancels
    assert scenario.server_terminated == len(CALLS) + cancels
    if make_rule is not drop_nothing:
        assert world.dropped > 0


def test_reliable_transport_completes_without_retransmissions() -> None:
    world = World(drop_nothing(), reliable=True)
    scenario = Scenario(world)
    for i, (method, user) in enumerate(CALLS):
        world.at(0.1 * i, lambda c=f"call-{i}", m=method, u=user: scenario.start(c, m, u))
    labels: list[tuple[str, str, str]] = []

    def record(index: int, message: Request | Response) -> bool:
        labels.append(_label(message))
        return False  # nothing is lost

    world.drop = record
    world.run(until=300.0, pump=scenario.pump)
    for i, (_method, user) in enumerate(CALLS):
        assert scenario.finals[f"call-{i}"][0] == EXPECTED[user]
    assert scenario.failures == []
    assert len(world.uac) == 0 and len(world.uas) == 0
    # Requests go out once each: no Timer A/E retransmissions on a reliable transport.
    requests = [label for label in labels if label[0] == label[2] and label[0] != "ACK"]
    assert len(requests) == len(set(requests))


def test_first_copy_loss_forces_every_retransmission_path() -> None:
    """With every first copy lost, each message is only delivered by a retransmission:
    the INVITE by Timer A, the 180 by the INVITE retransmission, the 2xx by the TU,
    the 486 by Timer G, the CANCEL and non-INVITEs by Timer E."""
    world = World(drop_every_first_copy())
    scenario = Scenario(world)
    for i, (method, user) in enumerate(CALLS):
        world.at(0.1 * i, lambda c=f"call-{i}", m=method, u=user: scenario.start(c, m, u))
    world.run(until=300.0, pump=scenario.pump)
    assert all(scenario.finals[f"call-{i}"] for i in range(len(CALLS)))
    assert world.dropped >= 20
