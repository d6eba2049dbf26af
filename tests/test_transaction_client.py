"""Client transactions: RFC 3261 §17.1.1 (Figure 5 as replaced by RFC 6026 §8.4),
§17.1.2 (Figure 6), §17.1.4 and the §9.1 CANCEL rules, as two-sided scripts."""

from __future__ import annotations

import pytest

from sipwire.core import LocalProtocolError
from sipwire.core.message import Request
from sipwire.core.transaction import (
    InviteClientTransaction,
    NonInviteClientTransaction,
    ResponseReceived,
    State,
    StrayResponse,
    TimerConfig,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from txn_script import PEER, Script, all_close, request, response

T1 = 0.5


def _invite(s: Script, *, reliable: bool = False) -> tuple[Request, InviteClientTransaction]:
    req = request("INVITE", branch="z9hG4bK-inv1")
    txn = s.send_request(req, reliable=reliable)
    assert isinstance(txn, InviteClientTransaction)
    out = s.expect_wire("INVITE", at=0.0, peer=PEER, reliable=reliable)
    assert out.message is req and out.key == txn.key
    return req, txn


def _register(s: Script, *, reliable: bool = False) -> tuple[Request, NonInviteClientTransaction]:
    req = request("REGISTER", branch="z9hG4bK-reg1", uri="sip:registrar.biloxi.example.com")
    txn = s.send_request(req, reliable=reliable)
    assert isinstance(txn, NonInviteClientTransaction)
    s.expect_wire("REGISTER", at=0.0)
    return req, txn


# ------------------------------------------------------------------ INVITE client


def test_timer_a_doubles_until_timer_b_times_out() -> None:
    s = Script()
    _req, txn = _invite(s)
    assert txn.state is State.CALLING
    s.advance(64 * T1 + 10)
    # Timer A: T1, 2*T1, 4*T1... no cap (§17.1.1.2); Timer B at 64*T1 = 32 s.
    assert all_close(s.wire_times("INVITE"), [0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer B", at=32.0)
    s.expect_user(TransactionTerminated, transaction=txn, at=32.0)
    s.expect_quiet()
    assert txn.state is State.TERMINATED and len(s.layer) == 0
    assert s.layer.next_deadline() is None


def test_timer_values_follow_the_config() -> None:
    s = Script(TimerConfig(t1=0.1, t2=0.4))
    _invite(s)
    s.advance(10)
    assert all_close(s.wire_times("INVITE"), [0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    s.expect_user(TransactionTimeout, timer="Timer B", at=6.4)


def test_reliable_transport_never_retransmits_the_invite() -> None:
    s = Script()
    _req, txn = _invite(s, reliable=True)
    s.advance(31.9)
    s.expect_quiet()
    s.advance(1)
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer B", at=32.0)
    s.expect_user(TransactionTerminated)


def test_provisional_stops_timer_a_and_timer_b() -> None:
    s = Script()
    req, txn = _invite(s)
    s.advance(0.7)
    s.expect_wire("INVITE", at=0.5)
    ringing = response(req, 180)
    s.from_wire(ringing)
    s.expect_user(ResponseReceived, transaction=txn, response=ringing, at=0.7)
    assert txn.state is State.PROCEEDING
    s.advance(600)  # Proceeding has no timer: the TU decides (CANCEL)
    s.expect_quiet()
    s.from_wire(response(req, 183))
    s.expect_user(ResponseReceived)
    assert txn.state is State.PROCEEDING


@pytest.mark.parametrize("first", [None, 180])
def test_2xx_goes_to_accepted_and_retransmissions_reach_the_tu(first: int | None) -> None:
    s = Script()
    req, txn = _invite(s)
    if first is not None:
        s.from_wire(response(req, first))
        s.expect_user(ResponseReceived)
    s.advance(1)
    s.wire_times("INVITE")
    ok = response(req, 200, to_tag="fork-a")
    s.from_wire(ok)
    s.expect_user(ResponseReceived, transaction=txn, response=ok, at=1.0)
    assert txn.state is State.ACCEPTED
    s.expect_quiet()  # RFC 6026: the transaction never ACKs a 2xx
    s.advance(2)
    s.from_wire(response(req, 200, to_tag="fork-a"))  # retransmission
    s.expect_user(ResponseReceived, transaction=txn, at=3.0)
    s.from_wire(response(req, 200, to_tag="fork-b"))  # another branch of a fork
    event = s.expect_user(ResponseReceived, transaction=txn)
    assert event.response.to.tag == "fork-b"
    s.from_wire(response(req, 180))  # late provisional: ignored
    s.from_wire(response(req, 486))  # non-2xx after a 2xx: ignored
    s.expect_quiet()
    # Timer M = 64*T1 after entering Accepted.
    s.advance(32.0 - 2 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn, at=33.0)
    late = response(req, 200, to_tag="fork-a")
    s.from_wire(late)
    s.expect_user(StrayResponse, response=late, peer=PEER)
    s.expect_quiet()


def test_non_2xx_final_is_acked_and_retransmissions_re_ack() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 100))
    s.expect_user(ResponseReceived)
    busy = response(req, 486, to_tag="busy-tag")
    s.advance(0.3)
    s.from_wire(busy)
    s.expect_user(ResponseReceived, transaction=txn, response=busy)
    ack_out = s.expect_wire("ACK", at=0.3, peer=PEER)
    ack = ack_out.message
    assert isinstance(ack, Request)
    # §17.1.1.3: same branch and Request-URI, To from the response, CSeq number + ACK.
    assert ack.top_via.branch == "z9hG4bK-inv1"
    assert ack.uri_text == req.uri_text
    assert ack.to.tag == "busy-tag"
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack_out.key == txn.key
    assert txn.state is State.COMPLETED and txn.ack is ack
    s.advance(5)
    s.from_wire(response(req, 486, to_tag="busy-tag"))
    again = s.expect_wire("ACK", at=5.3)
    assert again.message is ack  # re-sent, not passed up
    s.expect_quiet()
    # Timer D: 32 s on unreliable transports.
    s.advance(32 - 5 - 1e-6)
    s.expect_quiet()
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn)
    s.expect_quiet()


def test_non_2xx_on_reliable_transport_acks_once_and_terminates() -> None:
    s = Script()
    req, txn = _invite(s, reliable=True)
    s.from_wire(response(req, 603), reliable=True)
    s.expect_user(ResponseReceived, transaction=txn)
    s.expect_wire("ACK", reliable=True)  # "even if the transport is reliable"
    s.expect_user(TransactionTerminated, transaction=txn, at=0.0)  # Timer D = 0
    assert len(s.layer) == 0


def test_timer_d_is_configurable() -> None:
    s = Script(TimerConfig(timer_d=40.0))
    req, txn = _invite(s)
    s.from_wire(response(req, 500))
    s.expect_user(ResponseReceived)
    s.expect_wire("ACK")
    s.advance(39.9)
    s.expect_quiet()
    s.advance(0.2)
    s.expect_user(TransactionTerminated, transaction=txn)


def test_2xx_after_a_non_2xx_is_still_passed_up() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 404))
    s.expect_user(ResponseReceived)
    s.expect_wire("ACK")
    ok = response(req, 200, to_tag="other-branch")
    s.from_wire(ok)
    s.expect_user(ResponseReceived, transaction=txn, response=ok)
    s.from_wire(response(req, 180))
    s.expect_quiet()


def test_transport_error_in_calling_informs_the_tu() -> None:
    s = Script()
    req = request("INVITE", branch="z9hG4bK-te")
    txn = s.send_request(req)
    out = s.expect_wire("INVITE")
    s.transport_error(out)
    s.expect_user(TransportFailure, transaction=txn)
    s.expect_user(TransactionTerminated, transaction=txn)
    s.advance(100)
    s.expect_quiet()
    # A second report for a gone transaction is ignored.
    s.transport_error(out)
    s.expect_quiet()


def test_transport_error_on_the_ack_informs_the_tu() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 486))
    s.expect_user(ResponseReceived)
    ack = s.expect_wire("ACK")
    s.transport_error(ack)
    s.expect_user(TransportFailure, transaction=txn)
    s.expect_user(TransactionTerminated, transaction=txn)


def test_transport_error_in_proceeding_is_ignored() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 180))
    s.expect_user(ResponseReceived)
    s.layer.transport_error(txn.key, s.now)
    s.expect_quiet()
    assert txn.state is State.PROCEEDING


def test_invite_client_misuse() -> None:
    s = Script()
    req, _txn = _invite(s)
    with pytest.raises(LocalProtocolError):
        s.send_request(req)  # same branch: already live
    with pytest.raises(LocalProtocolError):
        s.send_request(request("INVITE", branch="no-cookie"))
    with pytest.raises(LocalProtocolError):
        s.send_request(request("INVITE", branch=None))
    with pytest.raises(LocalProtocolError):
        s.send_request(request("ACK", branch="z9hG4bK-ack"))
    assert len(s.layer) == 1
    s.expect_quiet()


# ---------------------------------------------------------------------- CANCEL (§9.1)


def test_cancel_in_proceeding_is_sent_at_once() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 180))
    s.expect_user(ResponseReceived)
    s.advance(2)
    cancel = s.cancel(txn)
    assert cancel is not None and cancel.cancels is txn and txn.cancel_transaction is cancel
    assert s.cancel(txn) is cancel  # idempotent
    out = s.expect_wire("CANCEL", at=2.0, peer=PEER)
    msg = out.message
    assert isinstance(msg, Request)
    assert msg.top_via.branch == req.top_via.branch  # §9.1: same top Via
    assert (msg.cseq.seq, msg.cseq.method) == (1, "CANCEL")
    # The CANCEL is its own non-INVITE transaction (§17.1.3: CSeq method differs).
    cancel_ok = response(msg, 200)
    s.from_wire(cancel_ok)
    s.expect_user(ResponseReceived, transaction=cancel, response=cancel_ok)
    terminated = response(req, 487)
    s.from_wire(terminated)
    s.expect_user(ResponseReceived, transaction=txn, response=terminated)
    s.expect_wire("ACK")
    s.advance(40)
    events = s.drain_user()
    assert {id(e.transaction) for e in events if isinstance(e, TransactionTerminated)} == {
        id(txn),
        id(cancel),
    }
    assert not any(isinstance(e, TransactionTimeout) for e in events)


def test_cancel_before_a_provisional_waits_for_one() -> None:
    s = Script()
    req, txn = _invite(s)
    cancel = s.cancel(txn)
    assert cancel is not None and cancel.state is State.INITIAL
    s.advance(1.0)
    assert all_close(s.wire_times("INVITE"), [0.5])
    s.expect_quiet()  # §9.1: MUST NOT be sent before a provisional
    s.from_wire(response(req, 100))
    s.expect_user(ResponseReceived, transaction=txn)
    s.expect_wire("CANCEL", at=1.0)
    assert cancel.state is State.TRYING


def test_cancel_before_a_provisional_is_dropped_on_a_final_response() -> None:
    s = Script()
    req, txn = _invite(s)
    cancel = s.cancel(txn)
    assert cancel is not None
    ok = response(req, 200)
    s.from_wire(ok)
    s.expect_user(ResponseReceived, transaction=txn, response=ok)
    s.expect_user(TransactionTerminated, transaction=cancel)
    s.expect_quiet()
    assert s.cancel(txn) is cancel
    s.from_wire(response(req, 180))
    s.expect_quiet()


def test_cancel_before_a_provisional_is_dropped_when_the_invite_times_out() -> None:
    s = Script()
    _req, txn = _invite(s)
    cancel = s.cancel(txn)
    s.advance(33)
    s.wire_times("INVITE")
    s.expect_user(TransactionTimeout, transaction=txn)
    s.expect_user(TransactionTerminated, transaction=cancel)
    s.expect_user(TransactionTerminated, transaction=txn)
    s.expect_quiet()


def test_cancel_after_a_final_response_sends_nothing() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 486))
    s.expect_user(ResponseReceived)
    s.expect_wire("ACK")
    assert s.cancel(txn) is None
    s.expect_quiet()


def test_invite_times_out_64_t1_after_an_unanswered_cancel() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 180))
    s.expect_user(ResponseReceived)
    s.advance(10)
    cancel = s.cancel(txn)
    assert cancel is not None
    s.expect_wire("CANCEL", at=10.0)
    s.from_wire(response(cancel.request, 200))
    s.expect_user(ResponseReceived, transaction=cancel)
    s.advance(32 - 1e-6)
    s.expect_user(TransactionTerminated, transaction=cancel, at=15.0)  # Timer K = T4
    s.expect_quiet()
    s.advance(1e-3)
    # §9.1: no final response 64*T1 after the CANCEL: the INVITE is given up.
    s.expect_user(TransactionTimeout, transaction=txn, timer="CANCEL timer", at=42.0)
    s.expect_user(TransactionTerminated, transaction=txn)


def test_cancel_needs_an_invite_client_transaction() -> None:
    s = Script()
    _req, reg = _register(s)
    with pytest.raises(LocalProtocolError):
        s.layer.cancel(reg, now=s.now)  # type: ignore[arg-type]


# --------------------------------------------------------------- non-INVITE client


def test_timer_e_backs_off_to_t2_until_timer_f() -> None:
    s = Script()
    _req, txn = _register(s)
    assert txn.state is State.TRYING
    s.advance(40)
    expected = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all_close(s.wire_times("REGISTER"), expected)
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer F", at=32.0)
    s.expect_user(TransactionTerminated, transaction=txn, at=32.0)
    s.expect_quiet()


def test_timer_e_is_t2_in_proceeding() -> None:
    s = Script()
    req, txn = _register(s)
    s.advance(0.7)
    s.from_wire(response(req, 100))
    s.expect_user(ResponseReceived, transaction=txn, at=0.7)
    assert txn.state is State.PROCEEDING
    s.advance(12)
    # E fires at its scheduled 1.5, then every T2 (§17.1.2.2).
    assert all_close(s.wire_times("REGISTER"), [0.5, 1.5, 5.5, 9.5])
    s.advance(30)
    s.wire_times("REGISTER")
    s.expect_user(TransactionTimeout, timer="Timer F", at=32.0)
    s.expect_user(TransactionTerminated)


def test_non_invite_reliable_no_retransmission() -> None:
    s = Script()
    _req, txn = _register(s, reliable=True)
    s.advance(31)
    s.expect_quiet()
    s.advance(2)
    s.expect_user(TransactionTimeout, transaction=txn, timer="Timer F")
    s.expect_user(TransactionTerminated)


@pytest.mark.parametrize("status", [200, 302, 401, 503])
def test_final_response_completes_and_timer_k_ends_it(status: int) -> None:
    s = Script()
    req, txn = _register(s)
    s.advance(0.6)
    s.wire_times("REGISTER")
    final = response(req, status)
    s.from_wire(final)
    s.expect_user(ResponseReceived, transaction=txn, response=final, at=0.6)
    assert txn.state is State.COMPLETED and txn.last_response is final
    s.from_wire(response(req, status))  # retransmission absorbed
    s.from_wire(response(req, 100))
    s.advance(5 - 1e-6)
    s.expect_quiet()  # and Timer E no longer fires
    s.advance(1e-3)
    s.expect_user(TransactionTerminated, transaction=txn, at=5.6)  # Timer K = T4


def test_final_response_on_reliable_transport_terminates_at_once() -> None:
    s = Script()
    req, txn = _register(s, reliable=True)
    s.from_wire(response(req, 200), reliable=True)
    s.expect_user(ResponseReceived, transaction=txn)
    s.expect_user(TransactionTerminated, transaction=txn)  # Timer K = 0
    s.expect_quiet()


@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_transport_error(provisional: bool) -> None:
    s = Script()
    req, txn = _register(s)
    if provisional:
        s.from_wire(response(req, 100))
        s.expect_user(ResponseReceived)
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_user(TransportFailure, transaction=txn)
    s.expect_user(TransactionTerminated, transaction=txn)
    s.advance(60)
    s.expect_quiet()


def test_transport_error_in_completed_is_ignored() -> None:
    s = Script()
    req, txn = _register(s)
    s.from_wire(response(req, 200))
    s.expect_user(ResponseReceived)
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_quiet()
    assert txn.state is State.COMPLETED


@pytest.mark.parametrize("status", [200, 404])
def test_non_invite_proceeding_passes_provisionals_then_completes(status: int) -> None:
    s = Script()
    req, txn = _register(s)
    s.from_wire(response(req, 100))
    s.expect_user(ResponseReceived, transaction=txn)
    s.from_wire(response(req, 183))
    s.expect_user(ResponseReceived, transaction=txn)
    assert txn.state is State.PROCEEDING
    final = response(req, status)
    s.from_wire(final)
    s.expect_user(ResponseReceived, transaction=txn, response=final)
    assert txn.state is State.COMPLETED


def test_transport_error_in_accepted_is_ignored() -> None:
    s = Script()
    req, txn = _invite(s)
    s.from_wire(response(req, 200))
    s.expect_user(ResponseReceived)
    s.layer.transport_error(txn.key, s.now)
    s._collect()
    s.expect_quiet()
    assert txn.state is State.ACCEPTED
