"""Matching (RFC 3261 §17.1.3, §17.2.3 incl. the RFC 2543 fallback), CANCEL (§9.2),
stray responses (RFC 6026 §7.2), merged requests (§8.2.2.2) and the live bound."""

from __future__ import annotations

import pytest

from sipwire.core import LocalProtocolError, RemoteProtocolError
from sipwire.core.message import Request, Response
from sipwire.core.transaction import (
    AckReceived,
    CancelReceived,
    InviteServerTransaction,
    LegacyServerKey,
    MergedRequest,
    NonInviteServerTransaction,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ServerKey,
    State,
    StrayResponse,
    TransactionTerminated,
)
from txn_script import OTHER_PEER, PEER, Script, ack_for, request, response

# ------------------------------------------------------------------ client side


def test_response_needs_branch_and_cseq_method_to_match() -> None:
    s = Script()
    req = request("INVITE", branch="z9hG4bK-m1")
    txn = s.send_request(req)
    s.expect_wire("INVITE")
    # Same branch, CSeq method CANCEL: the CANCEL's transaction, not this one.
    cancel_resp = response(request("CANCEL", branch="z9hG4bK-m1"), 200)
    s.from_wire(cancel_resp)
    s.expect_user(StrayResponse, response=cancel_resp, peer=PEER)
    other_branch = response(request("INVITE", branch="z9hG4bK-other"), 180)
    s.from_wire(other_branch)
    s.expect_user(StrayResponse, response=other_branch)
    no_cookie = response(request("INVITE", branch="1234"), 180)
    s.from_wire(no_cookie)
    s.expect_user(StrayResponse, response=no_cookie)
    assert txn.state is State.CALLING
    ok = response(req, 180)
    s.from_wire(ok, peer=OTHER_PEER)  # the source address is not part of matching
    s.expect_user(ResponseReceived, transaction=txn, response=ok)


def test_malformed_response_raises_remote_protocol_error_and_changes_nothing() -> None:
    s = Script()
    req = request("INVITE", branch="z9hG4bK-m2")
    txn = s.send_request(req)
    s.expect_wire("INVITE")
    good = response(req, 200)
    # parse_message() validates; a message built in code can still lack a CSeq.
    broken = Response(200, None, [(n, v) for n, v in good.headers if n != "CSeq"])
    with pytest.raises(RemoteProtocolError):
        s.from_wire(broken)
    s.expect_quiet()
    assert txn.state is State.CALLING


def test_non_2xx_without_to_raises_before_any_state_change() -> None:
    s = Script()
    req = request("INVITE", branch="z9hG4bK-m3")
    txn = s.send_request(req)
    s.expect_wire("INVITE")
    good = response(req, 486)
    broken = Response(486, None, [(n, v) for n, v in good.headers if n != "To"])
    with pytest.raises(RemoteProtocolError):
        s.from_wire(broken)
    s.expect_quiet()
    assert txn.state is State.CALLING and txn.ack is None


# ------------------------------------------------------------------ server side


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    s = Script()
    a = request("OPTIONS", branch="z9hG4bK-dup", via_host="a.example.com")
    b = request("OPTIONS", branch="z9hG4bK-dup", via_host="b.example.com")
    s.from_wire(a)
    ta = s.expect_user(RequestReceived, request=a).transaction
    s.from_wire(b)
    tb = s.expect_user(RequestReceived, request=b).transaction
    assert ta is not tb
    assert isinstance(ta.key, ServerKey) and ta.key.sent_by == ("a.example.com", 5060)
    # sent-by host compares case-insensitively.
    s.from_wire(request("OPTIONS", branch="z9hG4bK-dup", via_host="A.EXAMPLE.COM"))
    s.expect_quiet()


def test_same_branch_other_method_is_another_transaction() -> None:
    s = Script()
    s.from_wire(request("OPTIONS", branch="z9hG4bK-x"))
    s.expect_user(RequestReceived)
    s.from_wire(request("INFO", branch="z9hG4bK-x"))
    s.expect_user(RequestReceived)
    assert len(s.layer) == 2


def test_malformed_request_raises_and_creates_nothing() -> None:
    s = Script()
    good = request("OPTIONS", branch="z9hG4bK-bad")
    broken = Request("OPTIONS", good.uri_text, [(n, v) for n, v in good.headers if n != "CSeq"])
    with pytest.raises(RemoteProtocolError) as info:
        s.from_wire(broken)
    assert info.value.status_hint == 400
    assert len(s.layer) == 0
    s.expect_quiet()


# ---------------------------------------------------------------- RFC 2543 fallback


def _legacy_invite(**kw: object) -> Request:
    return request("INVITE", branch=None, **kw)  # type: ignore[arg-type]


def test_rfc2543_invite_retransmission_matches_without_a_branch() -> None:
    s = Script()
    req = _legacy_invite()
    s.from_wire(req)
    txn = s.expect_user(RequestReceived, request=req).transaction
    assert isinstance(txn.key, LegacyServerKey)
    s.respond(txn, 180)
    s.expect_wire("180")
    s.from_wire(_legacy_invite())  # identical: a retransmission
    s.expect_wire("180")
    s.expect_quiet()
    # Request-URI, From tag, Call-ID, CSeq or top Via differ: new transactions.
    for changed in (
        _legacy_invite(uri="sip:carol@biloxi.example.com"),
        _legacy_invite(from_tag="other"),
        _legacy_invite(call_id="call-2@atlanta.example.com"),
        _legacy_invite(cseq=2),
        _legacy_invite(via_host="other.atlanta.example.com"),
    ):
        s.from_wire(changed)
        s.expect_user(RequestReceived, request=changed)
    assert len(s.layer) == 6


def test_rfc2543_request_uri_compared_by_rfc3261_rules() -> None:
    s = Script()
    s.from_wire(_legacy_invite(uri="sip:bob@BILOXI.example.com"))
    s.expect_user(RequestReceived)
    s.from_wire(_legacy_invite(uri="sip:bob@biloxi.example.com"))  # §19.1.4: host case
    s.expect_wire("100")  # a retransmission: answered, not a new request
    s.expect_quiet()


def test_rfc2543_ack_for_non_2xx_is_absorbed() -> None:
    s = Script()
    req = _legacy_invite()
    s.from_wire(req)
    txn = s.expect_user(RequestReceived).transaction
    final = s.respond(txn, 486, to_tag="busy")
    s.expect_wire("486")
    # An ACK whose To tag is not the tag we sent is not ours: it goes up.
    stranger = ack_for(req, request("INVITE", to_tag="nope"))  # type: ignore[arg-type]
    s.from_wire(stranger)
    s.expect_user(AckReceived, request=stranger, transaction=None)
    s.from_wire(ack_for(req, final))
    s.expect_quiet()
    assert txn.state is State.CONFIRMED


def test_rfc2543_ack_for_2xx_goes_to_the_tu_with_the_transaction() -> None:
    s = Script()
    req = _legacy_invite()
    s.from_wire(req)
    txn = s.expect_user(RequestReceived).transaction
    ok = s.respond(txn, 200, to_tag="ok-tag")
    s.expect_wire("200")
    ack = ack_for(req, ok)
    s.from_wire(ack)  # RFC 6026 §6: an Accepted transaction passes the ACK up
    s.expect_user(AckReceived, request=ack, transaction=txn)


def test_rfc2543_non_invite_and_cancel() -> None:
    s = Script()
    inv = _legacy_invite()
    s.from_wire(inv)
    itxn = s.expect_user(RequestReceived).transaction
    opt = request("OPTIONS", branch=None)
    s.from_wire(opt)
    otxn = s.expect_user(RequestReceived, request=opt).transaction
    s.respond(otxn, 200)
    s.expect_wire("200")
    s.from_wire(request("OPTIONS", branch=None))
    s.expect_wire("200")
    cancel = request("CANCEL", branch=None)
    s.from_wire(cancel)
    event = s.expect_user(CancelReceived, cancel_request=cancel)
    assert event.invite_transaction is itxn
    s.expect_wire("200")


# ------------------------------------------------------------------------ CANCEL


def test_cancel_matching_an_invite_is_answered_200_by_the_layer() -> None:
    s = Script()
    inv = request("INVITE", branch="z9hG4bK-ci")
    s.from_wire(inv)
    itxn = s.expect_user(RequestReceived).transaction
    assert isinstance(itxn, InviteServerTransaction)
    s.respond(itxn, 180, to_tag="dialog-tag")
    s.expect_wire("180")
    s.advance(1)
    cancel = request("CANCEL", branch="z9hG4bK-ci")
    s.from_wire(cancel)
    event = s.expect_user(CancelReceived, cancel_request=cancel, invite_transaction=itxn)
    ctxn = event.transaction
    assert isinstance(ctxn, NonInviteServerTransaction)
    ok = s.expect_wire("200", at=1.0).message
    assert isinstance(ok, Response)
    assert ok.cseq.method == "CANCEL" and ok.to.tag == "dialog-tag"  # §9.2
    assert ctxn.state is State.COMPLETED
    # The TU answers the INVITE 487.
    s.respond(itxn, 487, to_tag="dialog-tag")
    s.expect_wire("487")
    # A CANCEL retransmission gets the 200 again; no second event.
    s.from_wire(cancel)
    s.expect_wire("200")
    s.expect_quiet()


def test_cancel_uses_the_transaction_to_tag_when_the_tu_chose_one() -> None:
    s = Script()
    s.from_wire(request("INVITE", branch="z9hG4bK-ct"))
    itxn = s.expect_user(RequestReceived).transaction
    itxn.to_tag = "chosen"
    s.from_wire(request("CANCEL", branch="z9hG4bK-ct"))
    s.expect_user(CancelReceived, invite_transaction=itxn)
    ok = s.expect_wire("200").message
    assert isinstance(ok, Response) and ok.to.tag == "chosen"


def test_cancel_before_any_tagged_response_gets_a_fresh_tag() -> None:
    s = Script()
    s.from_wire(request("INVITE", branch="z9hG4bK-cf"))
    s.expect_user(RequestReceived)
    s.from_wire(request("CANCEL", branch="z9hG4bK-cf"))
    s.expect_user(CancelReceived)
    ok = s.expect_wire("200").message
    assert isinstance(ok, Response) and ok.to.tag == "tok1"  # from random_token


def test_cancel_without_a_match_is_left_to_the_tu() -> None:
    s = Script()
    cancel = request("CANCEL", branch="z9hG4bK-nomatch")
    s.from_wire(cancel)
    event = s.expect_user(CancelReceived, cancel_request=cancel, invite_transaction=None)
    s.expect_quiet()  # no automatic answer
    s.respond(event.transaction, 481)
    s.expect_wire("481")
    s.from_wire(cancel)
    s.expect_wire("481")


def test_cancel_for_a_non_invite_is_not_matched() -> None:
    s = Script()
    s.from_wire(request("OPTIONS", branch="z9hG4bK-co"))
    s.expect_user(RequestReceived)
    s.from_wire(request("CANCEL", branch="z9hG4bK-co", cseq_method="CANCEL"))
    s.expect_user(CancelReceived, invite_transaction=None)


def test_cancel_after_the_invite_is_answered_still_gets_200() -> None:
    s = Script()
    s.from_wire(request("INVITE", branch="z9hG4bK-late"))
    itxn = s.expect_user(RequestReceived).transaction
    s.respond(itxn, 200)
    s.expect_wire("200")
    s.from_wire(request("CANCEL", branch="z9hG4bK-late"))
    s.expect_user(CancelReceived, invite_transaction=itxn)
    s.expect_wire("200")
    assert itxn.state is State.ACCEPTED  # the CANCEL has no effect (§9.2)


# ------------------------------------------------------------------ ACK, strays


def test_ack_without_a_transaction_goes_to_the_tu() -> None:
    s = Script()
    ack = request("ACK", branch="z9hG4bK-lonely", to_tag="t")
    s.from_wire(ack, peer=OTHER_PEER)
    s.expect_user(AckReceived, request=ack, peer=OTHER_PEER, transaction=None)
    assert len(s.layer) == 0


# -------------------------------------------------------------- merged requests


def test_merged_request_is_reported_when_asked() -> None:
    s = Script(detect_merged=True)
    first = request("INVITE", branch="z9hG4bK-path1")
    s.from_wire(first)
    original = s.expect_user(RequestReceived, request=first).transaction
    second = request("INVITE", branch="z9hG4bK-path2", via_host="proxy2.example.com")
    s.from_wire(second, peer=OTHER_PEER)
    event = s.expect_user(MergedRequest, request=second, original=original)
    assert event.transaction is not original
    s.respond(event.transaction, 482)
    s.expect_wire("482")
    s.from_wire(first)  # a real retransmission is not a merge
    s.expect_wire("100", at=0.0)
    s.expect_quiet()
    # With a To tag the check does not apply (§8.2.2.2).
    tagged = request("INVITE", branch="z9hG4bK-path3", to_tag="dlg", cseq=2)
    s.from_wire(tagged)
    s.expect_user(RequestReceived, request=tagged)
    # Once the original is gone, the same From tag / Call-ID / CSeq is new again.
    s.respond(original, 486)
    s.expect_wire("486")
    s.from_wire(ack_for(first, original.last_response))  # type: ignore[arg-type]
    s.advance(40)
    s.drain_user()
    s.wire.clear()
    third = request("INVITE", branch="z9hG4bK-path4")
    s.from_wire(third)
    s.expect_user(RequestReceived, request=third)


def test_merged_requests_are_not_checked_by_default() -> None:
    s = Script()
    s.from_wire(request("INVITE", branch="z9hG4bK-p1"))
    s.expect_user(RequestReceived)
    s.from_wire(request("INVITE", branch="z9hG4bK-p2", via_host="proxy2.example.com"))
    s.expect_user(RequestReceived)


# ------------------------------------------------------------------------ the bound


def test_live_transactions_are_bounded() -> None:
    s = Script(max_transactions=2)
    s.from_wire(request("OPTIONS", branch="z9hG4bK-b1"))
    t1 = s.expect_user(RequestReceived).transaction
    s.send_request(request("OPTIONS", branch="z9hG4bK-b2"))
    s.expect_wire("OPTIONS")
    assert len(s.layer) == 2
    third = request("INVITE", branch="z9hG4bK-b3")
    s.from_wire(third, peer=OTHER_PEER)
    out = s.expect_wire("503", peer=OTHER_PEER)
    assert out.key is None
    s.expect_user(RequestRejected, request=third, peer=OTHER_PEER, status=503)
    with pytest.raises(LocalProtocolError) as info:
        s.send_request(request("OPTIONS", branch="z9hG4bK-b4"))
    assert info.value.status_hint == 503
    # ACKs need no transaction and still pass; retransmissions still match.
    s.from_wire(request("ACK", branch="z9hG4bK-b5", to_tag="x"))
    s.expect_user(AckReceived)
    s.respond(t1, 200)
    s.expect_wire("200")
    s.from_wire(request("OPTIONS", branch="z9hG4bK-b1"))
    s.expect_wire("200")
    s.advance(40)
    s.wire_times("OPTIONS")
    s.drain_user()
    assert len(s.layer) == 0
    s.from_wire(third)
    s.expect_user(RequestReceived, request=third)


def test_cancel_is_allowed_at_the_bound() -> None:
    s = Script(max_transactions=1)
    req = request("INVITE", branch="z9hG4bK-cb")
    txn = s.send_request(req)
    s.expect_wire("INVITE")
    s.from_wire(response(req, 180))
    s.expect_user(ResponseReceived)
    assert s.cancel(txn) is not None  # type: ignore[arg-type]
    s.expect_wire("CANCEL")


def test_timers_of_many_transactions_fire_in_deadline_order() -> None:
    s = Script()
    for i in range(50):
        s.send_request(request("OPTIONS", branch=f"z9hG4bK-many{i}"), reliable=True)
        s.advance(0.01)
    s.wire.clear()
    s.advance(40)
    terminated = [
        e.transaction.request.top_via.branch
        for e in s.drain_user()
        if isinstance(e, TransactionTerminated)
    ]
    assert terminated == [f"z9hG4bK-many{i}" for i in range(50)]
    assert s.layer.next_deadline() is None


def test_timer_heap_stays_bounded_when_timers_are_cancelled() -> None:
    """Cancelled timers are skipped lazily; the heap is compacted so it stays bounded."""
    s = Script(max_transactions=10_000)
    for i in range(3000):
        req = request("INVITE", branch=f"z9hG4bK-h{i}", call_id=f"h{i}")
        s.send_request(req)
        s.from_wire(response(req, 180))  # cancels Timer A and Timer B
    s.wire.clear()
    s.drain_user()
    live_timers = sum(len(t._timers) for t in s.layer.transactions())
    assert live_timers == 0
    assert len(s.layer._heap) <= 2 * live_timers + 256 + 1
    assert s.layer.next_deadline() is None


def test_new_request_without_to_raises_and_creates_nothing() -> None:
    s = Script()
    s.from_wire(request("INVITE", branch="z9hG4bK-nt"))
    s.expect_user(RequestReceived)
    good = request("CANCEL", branch="z9hG4bK-nt")
    broken = Request("CANCEL", good.uri_text, [(n, v) for n, v in good.headers if n != "To"])
    with pytest.raises(RemoteProtocolError):
        s.from_wire(broken)
    assert len(s.layer) == 1
    s.expect_quiet()


def test_response_without_cseq_from_the_tu_is_misuse() -> None:
    s = Script()
    req = request("OPTIONS", branch="z9hG4bK-nc")
    s.from_wire(req)
    txn = s.expect_user(RequestReceived).transaction
    built = Response(200, None, [("Via", req.headers.get("Via") or "")])
    with pytest.raises(LocalProtocolError):
        s.send_response(txn, built)
    assert txn.state is State.TRYING
