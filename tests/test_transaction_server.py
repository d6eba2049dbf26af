"""Server transactions: RFC 3261 §17.2.1 (Figure 7 as replaced by RFC 6026 §8.6-8.7),
§17.2.2 (Figure 8) and §17.2.4 as replaced by RFC 6026 §8.8, as two-sided scripts."""

from __future__ import annotations

import pytest

from sipwire.core import LocalProtocolError
from sipwire.core.message import Request, Response, make_response
from sipwire.core.transaction import (
    AckReceived,
    InviteServerTransaction,
    NonInviteServerTransaction,
    RequestReceived,
    State,
    TimerConfig,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from txn_script import PEER, Script, ack_for, all_close, request


def _invite_arrives(
    s: Script, *, reliable: bool = False, **kw: object
) -> tuple[Request, InviteServerTransaction]:
    req = request("INVITE", branch="z9hG4bK-srv1", **kw)  # type: ignore[arg-type]
    s.from_wire(req, reliable=reliable)
    event = s.expect_user(RequestReceived, request=req)
    txn = event.transaction
    assert isinstance(txn, InviteServerTransaction)
    assert txn.state is State.PROCEEDING and txn.peer == PEER
    return req, txn


def _options_arrives(
    s: Script, *, reliable: bool = False
) -> tuple[Request, NonInviteServerTransaction]:
    req = request("OPTIONS", branch="z9hG4bK-opt1")
    s.from_wire(req, reliable=reliable)
    txn = s.expect_user(RequestReceived, request=req).transaction
    assert isinstance(txn, NonInviteServerTransaction) and txn.state is State.TRYING
    return req, txn


# ------------------------------------------------------------ INVITE server: 100 Trying


def test_100_trying_after_200_ms_when_the_tu_is_silent() -> None:
    s = Script()
    req, _txn = _invite_arrives(s)
    s.advance(0.2 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    trying = s.expect_wire("100", at=0.2, peer=PEER).message
    assert isinstance(trying, Response)
    assert trying.to.tag is None and trying.cseq.method == "INVITE"
    assert trying.top_via.branch == req.top_via.branch
    s.advance(10)
    s.expect_quiet()  # never repeated on its own


def test_no_100_trying_when_the_tu_answers_first() -> None:
    s = Script()
    _req, txn = _invite_arrives(s)
    s.advance(0.1)
    s.respond(txn, 180)
    s.expect_wire("180", at=0.1)
    s.advance(5)
    s.expect_quiet()


def test_trying_delay_zero_sends_100_at_once() -> None:
    s = Script(TimerConfig(trying_delay=0.0))
    _invite_arrives(s)
    s.expect_wire("100", at=0.0)
    s.expect_quiet()


def test_100_trying_on_reliable_transport_too() -> None:
    s = Script()
    _invite_arrives(s, reliable=True)
    s.advance(1)
    s.expect_wire("100", at=0.2, reliable=True)


def test_invite_retransmission_in_proceeding_resends_the_last_provisional() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    s.advance(0.05)
    s.from_wire(req)  # nothing sent yet: answer with 100 at once (§17.2.1 allows it)
    s.expect_wire("100", at=0.05)
    s.advance(0.5)
    s.expect_quiet()  # the trying timer was stopped
    s.respond(txn, 180)
    s.expect_wire("180")
    s.respond(txn, 183)
    s.expect_wire("183")
    s.from_wire(req)
    assert s.expect_wire("183").message is txn.last_response
    s.expect_quiet()  # retransmissions are not passed to the TU


# ------------------------------------------------- INVITE server: non-2xx and Timer G/H/I


def test_timer_g_backs_off_to_t2_until_timer_h() -> None:
    s = Script()
    _req, txn = _invite_arrives(s)
    s.advance(0.1)
    s.respond(txn, 486)
    s.expect_wire("486", at=0.1)
    assert txn.state is State.COMPLETED
    s.advance(40)
    sent = [t - 0.1 for t in s.wire_times("486")]
    assert all_close(sent, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    # Timer H = 64*T1: the ACK never came; the TU is told.
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer H", at=32.1)
    s.expect_user(TransactionTerminated, transaction=txn)
    s.expect_quiet()


def test_ack_stops_retransmissions_and_is_absorbed() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    final = s.respond(txn, 404, to_tag="t404")
    s.expect_wire("404", at=0.0)
    s.advance(1.0)
    assert all_close(s.wire_times("404"), [0.5])
    s.from_wire(req)  # INVITE retransmission in Completed: resend the final response
    assert s.expect_wire("404", at=1.0).message is final
    ack = ack_for(req, final)
    s.from_wire(ack)
    assert txn.state is State.CONFIRMED
    s.from_wire(ack)  # ACK retransmission absorbed
    s.from_wire(req)  # late INVITE absorbed
    s.expect_quiet()  # the ACK of a non-2xx never reaches the TU
    s.advance(5 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn, at=6.0)  # Timer I = T4


def test_reliable_non_2xx_no_timer_g_and_timer_i_zero() -> None:
    s = Script()
    req, txn = _invite_arrives(s, reliable=True)
    final = s.respond(txn, 603)
    s.expect_wire("603", reliable=True)
    s.advance(10)
    s.expect_quiet()
    s.from_wire(ack_for(req, final), reliable=True)
    s.expect_user(TransactionTerminated, transaction=txn, at=10.0)
    assert len(s.layer) == 0


def test_reliable_non_2xx_timer_h_still_runs() -> None:
    s = Script()
    _req, txn = _invite_arrives(s, reliable=True)
    s.respond(txn, 480)
    s.expect_wire("480")
    s.advance(33)
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer H", at=32.0)
    s.expect_user(TransactionTerminated)


# ------------------------------------------------------- INVITE server: 2xx / Accepted


def test_2xx_moves_to_accepted_and_the_tu_owns_retransmission() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    ok = s.respond(txn, 200, to_tag="uas")
    s.expect_wire("200", at=0.0)
    assert txn.state is State.ACCEPTED
    s.advance(3)
    s.expect_quiet()  # RFC 6026 §7.1: the transaction does not retransmit 2xx
    s.from_wire(req)  # INVITE retransmission absorbed, not passed up
    s.expect_quiet()
    s.send_response(txn, ok)  # the TU retransmits: passed to the transport
    s.expect_wire("200", at=3.0)
    ack = ack_for(req, ok, branch="z9hG4bK-ack-new")  # 2xx ACK: a new transaction
    s.from_wire(ack)
    s.expect_user(AckReceived, request=ack, peer=PEER, transaction=None)
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 180)
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 486)
    s.advance(32 - 3 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn, at=32.0)  # Timer L = 64*T1
    # RFC 6026 §8.3: a 2xx for a gone transaction is discarded.
    s.send_response(txn, ok)
    s.expect_quiet()
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 180)
    # After Timer L an INVITE retransmission would be a new request.
    s.from_wire(req)
    s.expect_user(RequestReceived, request=req)


def test_ack_with_the_invite_branch_in_accepted_goes_to_the_tu() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    ok = s.respond(txn, 200)
    s.expect_wire("200")
    ack = ack_for(req, ok)  # same branch as the INVITE: matches the transaction
    s.from_wire(ack)
    s.expect_user(AckReceived, request=ack, transaction=txn)
    s.from_wire(ack)
    s.expect_user(AckReceived, request=ack, transaction=txn)
    assert txn.state is State.ACCEPTED


def test_ack_in_proceeding_is_ignored() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    s.respond(txn, 180)
    s.expect_wire("180")
    s.from_wire(ack_for(req, Response(180, None, [("To", "<sip:b@b>;tag=x")])))
    s.expect_quiet()
    assert txn.state is State.PROCEEDING


def test_second_final_response_is_misuse() -> None:
    s = Script()
    _req, txn = _invite_arrives(s)
    s.respond(txn, 486)
    s.expect_wire("486")
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 200)
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 180)
    s.expect_quiet()
    assert txn.state is State.COMPLETED


def test_response_for_another_method_is_misuse() -> None:
    s = Script()
    _req, txn = _invite_arrives(s)
    other = request("BYE", branch="z9hG4bK-bye")
    with pytest.raises(LocalProtocolError):
        s.send_response(txn, make_response(other, 200))
    with pytest.raises(LocalProtocolError):
        s.layer.send_response(txn, other, s.now)  # type: ignore[arg-type]
    s.expect_quiet()


@pytest.mark.parametrize("state_status", [None, 180, 486, 200])
def test_invite_server_transport_error_keeps_the_state(state_status: int | None) -> None:
    s = Script()
    _req, txn = _invite_arrives(s)
    if state_status is not None:
        s.respond(txn, state_status)
        s.expect_wire(str(state_status))
    before = txn.state
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_user(TransportFailure, transaction=txn)
    assert txn.state is before  # RFC 6026 §7.1: state is kept to absorb retransmissions
    assert s.layer.get(txn.key) is txn


def test_transport_error_in_confirmed_is_ignored() -> None:
    s = Script()
    req, txn = _invite_arrives(s)
    final = s.respond(txn, 486)
    s.expect_wire("486")
    s.from_wire(ack_for(req, final))
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_quiet()


# --------------------------------------------------------------- non-INVITE server


def test_non_invite_retransmissions_before_and_after_responses() -> None:
    s = Script()
    req, txn = _options_arrives(s)
    s.from_wire(req)  # Trying: absorbed, nothing to resend
    s.expect_quiet()
    s.advance(0.1)
    s.respond(txn, 100)
    s.expect_wire("100")
    assert txn.state is State.PROCEEDING
    s.from_wire(req)
    s.expect_wire("100", at=0.1)
    s.respond(txn, 200)
    s.expect_wire("200")
    assert txn.state is State.COMPLETED
    s.advance(10)
    s.expect_quiet()  # the server never retransmits on its own
    s.from_wire(req)
    s.expect_wire("200", at=10.1)
    with pytest.raises(LocalProtocolError):
        s.respond(txn, 500)
    s.advance(32 - 10 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn, at=32.1)  # Timer J = 64*T1
    s.from_wire(req)  # now it is a new request
    s.expect_user(RequestReceived, request=req)


def test_non_invite_final_from_trying() -> None:
    s = Script()
    req, txn = _options_arrives(s)
    s.respond(txn, 405)
    s.expect_wire("405")
    assert txn.state is State.COMPLETED
    s.from_wire(req)
    s.expect_wire("405")


def test_non_invite_reliable_timer_j_is_zero() -> None:
    s = Script()
    _req, txn = _options_arrives(s, reliable=True)
    s.respond(txn, 200)
    s.expect_wire("200", reliable=True)
    s.expect_user(TransactionTerminated, transaction=txn, at=0.0)
    assert len(s.layer) == 0


@pytest.mark.parametrize("status", [180, 200])
def test_non_invite_transport_error_keeps_the_state(status: int) -> None:
    s = Script()
    req, txn = _options_arrives(s)
    s.respond(txn, status)
    out = s.expect_wire(str(status))
    s.transport_error(out)
    s.expect_user(TransportFailure, transaction=txn)
    s.from_wire(req)  # still absorbs the retransmission (RFC 6026 §8.8)
    s.expect_wire(str(status))


def test_non_invite_transport_error_in_trying_is_ignored() -> None:
    s = Script()
    _req, txn = _options_arrives(s)
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_quiet()


def test_non_invite_server_misuse_after_terminated() -> None:
    s = Script()
    _req, txn = _options_arrives(s, reliable=True)
    s.respond(txn, 200)
    s.expect_wire("200")
    s.expect_user(TransactionTerminated)
    with pytest.raises(LocalProtocolError, match="terminated"):
        s.respond(txn, 200)


@pytest.mark.parametrize("status", [200, 486])
def test_non_invite_several_provisionals_then_final(status: int) -> None:
    s = Script()
    req, txn = _options_arrives(s)
    s.respond(txn, 100)
    s.expect_wire("100")
    s.respond(txn, 183)
    s.expect_wire("183")
    s.from_wire(req)
    s.expect_wire("183")  # the most recent provisional
    s.respond(txn, status)
    s.expect_wire(str(status))
    assert txn.state is State.COMPLETED
