"""The INVITE session (RFC 3261 §13-15, RFC 6026, RFC 3311, RFC 3264 glue), two-sided.

Most tests run two (or three) user agents over the in-memory network of ``ua_pair``: real
transaction layers, the UAS 2xx retransmitter and a manual clock.  They assert what each
side's application sees (events) and what went over the wire.
"""

from __future__ import annotations

from typing import Any

import pytest

from sipwire.core._errors import LocalProtocolError
from sipwire.core.digest import DigestClient, DigestServer
from sipwire.core.invite import (
    MODIFY_TABLE,
    SESSION_TABLE,
    EarlyMedia,
    EndReason,
    Ignore,
    InDialogRequest,
    InDialogResponse,
    InviteSession,
    MediaNegotiated,
    Misuse,
    ModificationCompleted,
    ModifyInput,
    ModifyState,
    Progress,
    ReinviteReceived,
    SessionConfig,
    SessionEnded,
    SessionEstablished,
    SessionInput,
    SessionState,
    render_markdown,
)
from sipwire.core.message import Request
from sipwire.core.sdp import Direction, SessionDescription
from ua_pair import Network, Phone, Proxy

T1 = 0.5


def ring_and_answer(phone: Phone, session: InviteSession) -> None:
    session.ring(phone.net.now)
    session.answer(phone.net.now)


def only_ring(phone: Phone, session: InviteSession) -> None:
    session.ring(phone.net.now)


def of_type(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def ended(phone: Phone, session: InviteSession) -> SessionEnded:
    found = of_type(phone.events(session), SessionEnded)
    assert len(found) == 1, phone.event_types(session)
    return found[0]  # type: ignore[no-any-return]


def pair(**bob_kw: Any) -> tuple[Network, Phone, Phone]:
    net = Network()
    alice = Phone(net, "alice.test", user="alice", port=4000)
    bob = Phone(net, "bob.test", user="bob", port=5000, **bob_kw)
    return net, alice, bob


def call_up(**bob_kw: Any) -> tuple[Network, Phone, Phone, InviteSession, InviteSession]:
    bob_kw.setdefault("on_invite", ring_and_answer)
    net, alice, bob = pair(**bob_kw)
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    assert a.state is SessionState.CONFIRMED and b.state is SessionState.CONFIRMED
    return net, alice, bob, a, b


def sdp_direction(message: Request | Any) -> Direction:
    sdp = SessionDescription.parse(message.body)
    return sdp.direction_of(0)


# ------------------------------------------------------------------------- the tables


def test_tables_are_total_and_network_inputs_are_never_misuse() -> None:
    for state in SessionState:
        for inp in SessionInput:
            entry = SESSION_TABLE[(state, inp)]
            if isinstance(entry, Misuse):
                assert inp.name.startswith("APP_"), (state, inp)
    for mstate in ModifyState:
        for minp in ModifyInput:
            entry2 = MODIFY_TABLE[(mstate, minp)]
            if isinstance(entry2, Misuse):
                assert minp.name.startswith("APP_"), (mstate, minp)


def test_terminated_answers_every_request_481_and_ignores_acks() -> None:
    for inp in (SessionInput.REQ_BYE, SessionInput.REQ_INVITE, SessionInput.REQ_OTHER):
        entry = SESSION_TABLE[(SessionState.TERMINATED, inp)]
        assert not isinstance(entry, Ignore | Misuse)
        assert [a.value for a in entry.actions] == ["answer 481"]
    assert isinstance(SESSION_TABLE[(SessionState.TERMINATED, SessionInput.REQ_ACK)], Ignore)


def test_docs_show_the_current_tables() -> None:
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "dialogs.md"
    assert render_markdown() in doc.read_text(encoding="utf-8")


# ----------------------------------------------------------------------- basic calls


def test_basic_call_negotiates_media_on_both_sides_and_bye_ends_it() -> None:
    net, alice, bob, a, b = call_up()
    assert net.lines() == [
        "INVITE sip:bob@bob.test SIP/2.0",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
        "ACK sip:bob@bob.test SIP/2.0",
    ]
    assert alice.event_types(a) == ["Progress", "SessionEstablished", "MediaNegotiated"]
    (media_a,) = of_type(alice.events(a), MediaNegotiated)
    (media_b,) = of_type(bob.events(b), MediaNegotiated)
    # Each side learns where the other receives RTP and which payload type to send.
    assert (media_a.media[0].remote_address, media_a.media[0].remote_port) == ("192.0.2.8", 5000)
    assert (media_b.media[0].remote_address, media_b.media[0].remote_port) == ("192.0.2.10", 4000)
    assert media_a.media[0].send_codec.payload_type == 0
    assert media_a.initial and media_b.initial
    assert media_a.media[0].sending and media_b.media[0].receiving
    # The ACK: same Call-ID and tags, CSeq number of the INVITE, its own branch.
    invite, ack = net.messages("INVITE")[0], net.messages("ACK")[0]
    assert ack.cseq.seq == invite.cseq.seq and ack.cseq.method == "ACK"
    assert ack.top_via.branch != invite.top_via.branch
    assert ack.to.tag == b.local_tag and ack.from_.tag == a.local_tag
    assert a.dialog is not None and a.dialog.remote_target == b.contact.uri

    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    assert ended(alice, a).reason is EndReason.LOCAL_BYE
    assert ended(bob, b).reason is EndReason.REMOTE_BYE
    assert net.lines()[-2:] == ["BYE sip:bob@bob.test SIP/2.0", "SIP/2.0 200 OK"]
    bye = net.messages("BYE")[0]
    assert bye.cseq.seq == invite.cseq.seq + 1
    assert a.state is SessionState.TERMINATED and b.state is SessionState.TERMINATED


def test_bye_from_the_callee() -> None:
    net, alice, bob, a, b = call_up()
    bob.act(b, lambda: b.hangup(net.now))
    net.run()
    assert ended(bob, b).reason is EndReason.LOCAL_BYE
    assert ended(alice, a).reason is EndReason.REMOTE_BYE
    bye = net.messages("BYE", src="bob.test")[0]
    # The callee's first request picks its own CSeq; its To/From are swapped.
    assert bye.from_.tag == b.local_tag and bye.to.tag == a.local_tag
    assert bye.uri == a.contact.uri


def test_terminated_session_lingers_then_closes() -> None:
    net, alice, _bob, a, _b = call_up()
    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    assert not a.closed and a.key in alice.sessions
    net.advance(64 * T1 + 1)
    assert a.closed and a.key not in alice.sessions


@pytest.mark.parametrize(("status", "reason"), [(603, "Decline"), (486, "Busy Here")])
def test_rejected_call(status: int, reason: str) -> None:
    net, alice, bob = pair(on_invite=lambda p, s: s.reject(status, p.net.now))
    a = alice.call("sip:bob@bob.test")
    net.run()
    assert net.lines() == [
        "INVITE sip:bob@bob.test SIP/2.0",
        f"SIP/2.0 {status} {reason}",
        "ACK sip:bob@bob.test SIP/2.0",  # the transaction layer's ACK (§17.1.1.3)
    ]
    end = ended(alice, a)
    assert (end.reason, end.status) == (EndReason.REJECTED, status)
    (b,) = bob.incoming
    assert ended(bob, b).reason is EndReason.DECLINED
    assert a.state is SessionState.TERMINATED


def test_early_media_then_answer() -> None:
    def early(phone: Phone, s: InviteSession) -> None:
        s.ring(phone.net.now, status=183, early_media=True)

    net, alice, bob = pair(on_invite=early)
    a = alice.call("sip:bob@bob.test")
    net.run()
    (media,) = of_type(alice.events(a), EarlyMedia)
    assert media.response.status == 183
    assert media.media[0].remote_port == 5000
    (b,) = bob.incoming
    bob.act(b, lambda: b.answer(net.now))
    net.run()
    assert a.established and b.established


def test_invite_without_offer_gets_the_offer_in_2xx_and_answers_in_ack() -> None:
    net, alice, bob = pair(on_invite=ring_and_answer)
    a = alice.call("sip:bob@bob.test", offer=False)
    net.run()
    invite, ok = net.messages("INVITE")[0], net.trace[2].message
    ack = net.messages("ACK")[0]
    assert invite.body == b""
    assert ok.body and ack.body  # offer in the 2xx, answer in the ACK (§13.2.1)
    (b,) = bob.incoming
    assert of_type(alice.events(a), MediaNegotiated) and of_type(bob.events(b), MediaNegotiated)
    assert bob.event_types(b) == ["SessionEstablished", "MediaNegotiated"]


def test_incoming_invite_requiring_100rel_gets_420() -> None:
    net, alice, bob = pair(on_invite=ring_and_answer)
    a = alice.call("sip:bob@bob.test", headers=[("Require", "100rel")])
    net.run()
    assert net.lines()[1] == "SIP/2.0 420 Bad Extension"
    assert net.trace[1].message.headers.get("Unsupported") == "100rel"
    assert ended(alice, a).status == 420
    assert ended(bob, bob.incoming[0]).reason is EndReason.INCOMPATIBLE


def test_unacceptable_offer_gets_488() -> None:
    net, alice, _bob = pair(on_invite=ring_and_answer)
    video_only = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    video_only += "m=video 6000 RTP/AVP 99\r\na=rtpmap:99 H264/90000\r\n"
    a = alice.call(
        "sip:bob@bob.test", media=None, body=video_only.encode(), content_type="application/sdp"
    )
    net.run()
    assert net.lines()[1] == "SIP/2.0 488 Not Acceptable Here"
    assert ended(alice, a).reason is EndReason.REJECTED


# ------------------------------------------------------------------------------ CANCEL


def test_cancel_before_answer_gets_487() -> None:
    net, alice, bob = pair(on_invite=only_ring)
    a = alice.call("sip:bob@bob.test")
    net.run()
    alice.act(a, lambda: a.hangup(net.now))
    assert a.state is SessionState.CANCELLING
    net.run()
    assert net.lines() == [
        "INVITE sip:bob@bob.test SIP/2.0",
        "SIP/2.0 180 Ringing",
        "CANCEL sip:bob@bob.test SIP/2.0",
        "SIP/2.0 200 OK",
        "SIP/2.0 487 Request Terminated",
        "ACK sip:bob@bob.test SIP/2.0",
    ]
    end = ended(alice, a)
    assert (end.reason, end.status) == (EndReason.CANCELLED, 487)
    assert ended(bob, bob.incoming[0]).reason is EndReason.CANCELLED


def test_cancel_before_any_provisional_waits_for_one() -> None:
    net, alice, bob = pair(on_invite=None)  # bob's application does nothing yet
    a = alice.call("sip:bob@bob.test")
    alice.act(a, lambda: a.cancel(net.now))
    net.run()
    assert "CANCEL sip:bob@bob.test SIP/2.0" not in net.lines()  # §9.1: held back
    (b,) = bob.incoming
    bob.act(b, lambda: b.ring(net.now))
    net.run()
    assert "CANCEL sip:bob@bob.test SIP/2.0" in net.lines()
    assert ended(alice, a).reason is EndReason.CANCELLED
    assert b.state is SessionState.TERMINATED


def test_cancel_racing_200_is_acked_then_byed() -> None:
    net, alice, bob = pair(on_invite=only_ring)
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    # Both act before either message arrives: the CANCEL and the 200 cross.
    alice.act(a, lambda: a.hangup(net.now))
    bob.act(b, lambda: b.answer(net.now))
    net.run()
    lines = net.lines(src="alice.test")
    assert lines == [
        "INVITE sip:bob@bob.test SIP/2.0",
        "CANCEL sip:bob@bob.test SIP/2.0",
        "ACK sip:bob@bob.test SIP/2.0",
        "BYE sip:bob@bob.test SIP/2.0",
    ]
    assert ended(alice, a).reason is EndReason.CANCELLED
    assert of_type(alice.events(a), SessionEstablished) == []  # never reported as up
    assert bob.event_types(b)[-2:] == ["SessionEstablished", "SessionEnded"]
    assert ended(bob, b).reason is EndReason.REMOTE_BYE
    assert a.state is SessionState.TERMINATED and b.state is SessionState.TERMINATED


# ------------------------------------------------------------------- forking and retrans


def forked() -> tuple[Network, Phone, Phone, Phone, Proxy]:
    net = Network()
    alice = Phone(net, "alice.test", user="alice", port=4000)
    bob1 = Phone(net, "bob1.test", user="bob", port=5000, on_invite=ring_and_answer)
    bob2 = Phone(net, "bob2.test", user="bob", port=6000, on_invite=ring_and_answer)
    proxy = Proxy(net, "proxy.test", {"bob": ["bob1.test", "bob2.test"]})
    return net, alice, bob1, bob2, proxy


def test_forked_invite_two_2xx_keeps_the_first_and_acks_and_byes_the_second() -> None:
    net, alice, bob1, bob2, _ = forked()
    a = alice.call("sip:bob@proxy.test")
    net.run()
    (b1,), (b2,) = bob1.incoming, bob2.incoming
    assert a.state is SessionState.CONFIRMED
    assert a.dialog is not None and a.dialog.id.remote_tag == b1.local_tag
    # bob2's 2xx was ACKed (so it stops retransmitting) and then BYEd (§13.2.2.4).
    assert bob2.event_types(b2) == ["MediaNegotiated", "SessionEstablished", "SessionEnded"]
    assert ended(bob2, b2).reason is EndReason.REMOTE_BYE
    assert b1.state is SessionState.CONFIRMED and not b1.ended
    assert alice.event_types(a).count("SessionEstablished") == 1
    assert not a.ended
    byes = net.messages("BYE", src="alice.test")
    assert [b.to.tag for b in byes] == [b2.local_tag]
    # Two early dialogs then two confirmed ones, one of them already gone.
    assert a.dialog_set is not None and len(a.dialog_set) == 1
    net.advance(40)
    assert not bob2.uas2xx and not bob1.uas2xx


def test_lost_ack_brings_a_2xx_retransmission_that_is_acked_again() -> None:
    net, alice, bob = pair(on_invite=ring_and_answer)
    lost: list[str] = []

    def drop_first_ack(src: str, dst: str, message: Any) -> bool:
        if isinstance(message, Request) and message.method == "ACK" and not lost:
            lost.append("ACK")
            return True
        return False

    net.drop = drop_first_ack
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    assert b.state is SessionState.ANSWERED
    net.advance(T1)  # the UAS core retransmits its 2xx after T1 (§13.3.1.4)
    assert b.state is SessionState.CONFIRMED
    acks = net.messages("ACK")
    assert len(acks) == 1 and len(net.dropped) == 1
    assert acks[0].cseq == net.dropped[0].message.cseq
    assert alice.event_types(a).count("SessionEstablished") == 1


def test_no_ack_within_64_t1_makes_the_callee_send_bye() -> None:
    net, alice, bob = pair(on_invite=ring_and_answer)
    net.drop = lambda src, dst, m: isinstance(m, Request) and m.method == "ACK"
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    net.advance(64 * T1 - 0.01)
    assert b.state is SessionState.ANSWERED
    net.advance(0.02)
    assert ended(bob, b).reason is EndReason.ACK_TIMEOUT
    assert "BYE sip:alice@alice.test SIP/2.0" in net.lines(src="bob.test")
    assert ended(alice, a).reason is EndReason.REMOTE_BYE


def test_callee_hangup_before_ack_waits_for_the_ack() -> None:
    net, alice, bob = pair(on_invite=ring_and_answer)
    held: list[Any] = []
    net.drop = lambda src, dst, m: (
        isinstance(m, Request) and m.method == "ACK" and not held and not held.append(m)
    )
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    bob.act(b, lambda: b.hangup(net.now))
    net.run()
    assert b.state is SessionState.ANSWERED_HANGUP
    assert net.messages("BYE") == []  # §15: not before the ACK
    net.advance(T1)  # 2xx retransmitted, ACKed again, then the BYE goes
    assert [m.method for m in net.messages("BYE", src="bob.test")] == ["BYE"]
    assert ended(alice, a).reason is EndReason.REMOTE_BYE


# --------------------------------------------------------------------------- re-INVITE


def test_hold_and_resume_by_reinvite() -> None:
    net, alice, bob, a, b = call_up()
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    reinvite = net.messages("INVITE")[-1]
    assert sdp_direction(reinvite) is Direction.SENDONLY
    ok = [h.message for h in net.trace if h.first_line == "SIP/2.0 200 OK"][-1]
    assert sdp_direction(ok) is Direction.RECVONLY
    held_a = of_type(alice.events(a), MediaNegotiated)[-1]
    held_b = of_type(bob.events(b), MediaNegotiated)[-1]
    assert held_a.media[0].held_locally and not held_a.media[0].receiving
    assert held_b.media[0].held_by_remote and not held_b.media[0].sending
    assert held_b.changes[0].direction_changed
    assert of_type(alice.events(a), ModificationCompleted)[-1].accepted
    assert net.lines()[-1] == "ACK sip:bob@bob.test SIP/2.0"

    alice.act(a, lambda: a.resume(net.now))
    net.run()
    assert sdp_direction(net.messages("INVITE")[-1]) is Direction.SENDRECV
    resumed = of_type(bob.events(b), MediaNegotiated)[-1]
    assert resumed.media[0].sending and resumed.media[0].receiving
    # The o= version went up with each change (RFC 3264 §8).
    versions = [
        SessionDescription.parse(m.body).origin.session_version for m in net.messages("INVITE")
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_reinvite_rejected_keeps_the_session_and_rolls_back() -> None:
    net, alice, bob, a, b = call_up(config=SessionConfig(auto_accept_reinvite=False))
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    assert of_type(bob.events(b), ReinviteReceived)
    bob.act(b, lambda: b.reject_reinvite(488, net.now))
    net.run()
    result = of_type(alice.events(a), ModificationCompleted)[-1]
    assert (result.accepted, result.status) == (False, 488)
    assert a.established and b.established
    assert a.media is not None and not a.media.held
    assert a.media.negotiated[0].sending  # the old negotiation still stands
    # A later modification works (the offer state was rolled back).
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    bob.act(b, lambda: b.accept_reinvite(net.now))
    net.run()
    assert of_type(alice.events(a), ModificationCompleted)[-1].accepted


def test_reinvite_glare_gets_491_and_each_side_retries_on_its_own_timer() -> None:
    net = Network()
    # The caller owns the Call-ID: 2.1-4 s; the callee 0-2 s (§14.1), 10 ms units.
    alice = Phone(net, "alice.test", user="alice", port=4000, rand=lambda n: 50)
    bob = Phone(
        net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer, rand=lambda n: 50
    )
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    net.advance(10)
    start = net.now
    alice.act(a, lambda: a.hold(net.now))
    bob.act(b, lambda: b.reinvite(net.now))
    net.run()
    assert net.lines().count("SIP/2.0 491 Request Pending") == 2
    assert a.mod_state is ModifyState.GLARE_WAIT and b.mod_state is ModifyState.GLARE_WAIT
    net.advance(5)
    times = [
        round(h.time - start, 2)
        for h in net.trace
        if h.first_line.startswith("INVITE") and h.time > start
    ]
    # bob retries after 0.50 s, alice after 2.10 + 0.50 s.
    assert times == [0.5, 2.6]
    assert [e.accepted for e in of_type(alice.events(a), ModificationCompleted)] == [True]
    assert [e.accepted for e in of_type(bob.events(b), ModificationCompleted)] == [True]
    assert a.media is not None and a.media.negotiated[0].held_locally
    assert a.mod_state is ModifyState.IDLE and b.mod_state is ModifyState.IDLE


def test_reinvite_while_ours_is_pending_is_misuse() -> None:
    net, alice, _bob, a, _b = call_up()
    alice.act(a, lambda: a.hold(net.now))
    with pytest.raises(LocalProtocolError):
        a.resume(net.now)
    net.run()
    alice.act(a, lambda: a.resume(net.now))  # fine once the first one completed
    net.run()
    assert len(of_type(alice.events(a), ModificationCompleted)) == 2


def test_bye_while_their_reinvite_is_pending_answers_it_487() -> None:
    net, alice, bob, a, b = call_up(config=SessionConfig(auto_accept_reinvite=False))
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    assert "SIP/2.0 487 Request Terminated" in net.lines(src="bob.test")
    assert ended(bob, b).reason is EndReason.REMOTE_BYE
    assert ended(alice, a).reason is EndReason.LOCAL_BYE


def test_update_with_offer_is_answered_in_its_200() -> None:
    net, alice, bob, a, b = call_up()
    alice.act(a, lambda: a.update(net.now))
    net.run()
    assert net.lines()[-2:] == ["UPDATE sip:bob@bob.test SIP/2.0", "SIP/2.0 200 OK"]
    assert of_type(alice.events(a), ModificationCompleted)[-1].method == "UPDATE"
    assert len(of_type(bob.events(b), MediaNegotiated)) == 2


# ------------------------------------------------------------------- in-dialog requests


def test_info_inside_the_dialog_reaches_the_app_and_its_response_comes_back() -> None:
    net, alice, bob, a, b = call_up()
    alice.act(
        a,
        lambda: a.send_request(
            "INFO", net.now, body=b"Signal=5\r\n", content_type="application/dtmf-relay"
        ),
    )
    net.run()
    (info,) = of_type(bob.events(b), InDialogRequest)
    assert info.request.body == b"Signal=5\r\n"
    bob.act(b, lambda: b.respond(info.request, 200, net.now, transaction=info.transaction))
    net.run()
    (done,) = of_type(alice.events(a), InDialogResponse)
    assert done.response.status == 200 and done.request.method == "INFO"


def test_requests_for_unknown_or_ended_dialogs_get_481() -> None:
    net, alice, _bob, a, b = call_up()
    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    # The dialog is gone on bob's side (terminated): an INFO gets 481; so does one
    # naming a tag bob never used.
    info = Request(
        "INFO",
        "sip:bob@bob.test",
        [
            ("From", f"<sip:alice@alice.test>;tag={a.local_tag}"),
            ("To", f"<sip:bob@bob.test>;tag={b.local_tag}"),
            ("Call-ID", a.call_id),
            ("CSeq", "99 INFO"),
            ("Max-Forwards", "70"),
        ],
    )
    alice.via(info)
    net.send("alice.test", "bob.test", info)
    bogus = info.copy()
    bogus.headers.set("To", "<sip:bob@bob.test>;tag=nope")
    bogus.headers.set("Via", f"SIP/2.0/UDP alice.test;branch={alice.txl.new_branch()}")
    net.send("alice.test", "bob.test", bogus)
    net.run()
    assert net.lines(src="bob.test")[-2:] == [
        "SIP/2.0 481 Call/Transaction Does Not Exist",
        "SIP/2.0 481 Call/Transaction Does Not Exist",
    ]


def test_out_of_order_cseq_gets_500() -> None:
    net, alice, bob, a, b = call_up()
    assert a.dialog is not None
    old = a.dialog.create_request("INFO")
    newer = a.dialog.create_request("INFO")
    for request in (newer, old):
        alice.via(request)
        net.send("alice.test", "bob.test", request)
    net.run()
    statuses = [h.first_line for h in net.trace if h.src == "bob.test"][-2:]
    assert statuses[1] == "SIP/2.0 500 Server Internal Error"
    assert len(of_type(bob.events(b), InDialogRequest)) == 1


def test_481_to_an_in_dialog_request_ends_the_session() -> None:
    net, alice, bob, a, _b = call_up()
    bob.sessions.clear()  # bob forgets the call (a reboot)
    alice.act(a, lambda: a.send_request("OPTIONS", net.now))
    net.run()
    end = ended(alice, a)
    assert (end.reason, end.status) == (EndReason.DIALOG_GONE, 481)


# ----------------------------------------------------------------------- authentication


def challenged(**kw: Any) -> tuple[Network, Phone, Phone]:
    server = DigestServer("test", secret=b"k" * 32, random=lambda n: b"r" * n)
    net = Network()
    alice = Phone(
        net,
        "alice.test",
        user="alice",
        port=4000,
        auth=DigestClient("bob", "secret", random=lambda n: b"c" * n),
    )
    bob = Phone(
        net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer, challenge=server, **kw
    )
    return net, alice, bob


@pytest.mark.parametrize(
    ("status", "header"), [(401, "Authorization"), (407, "Proxy-Authorization")]
)
def test_challenged_invite_is_resent_with_credentials_new_cseq_same_call(
    status: int, header: str
) -> None:
    net, alice, _bob = challenged(challenge_status=status)
    a = alice.call("sip:bob@bob.test")
    net.run()
    first, second = net.messages("INVITE")
    assert net.lines()[1].startswith(f"SIP/2.0 {status} ")
    assert net.lines()[2] == "ACK sip:bob@bob.test SIP/2.0"
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert header in second.headers and header not in first.headers
    assert a.established
    # The ACK of the 2xx repeats the INVITE's credentials (§22.1).
    assert net.messages("ACK")[-1].headers.get(header) == second.headers.get(header)


def test_wrong_password_ends_the_call_without_looping() -> None:
    server = DigestServer("test", secret=b"k" * 32, random=lambda n: b"r" * n)
    net = Network()
    alice = Phone(
        net,
        "alice.test",
        user="alice",
        port=4000,
        auth=DigestClient("bob", "wrong", random=lambda n: b"c" * n),
    )
    Phone(net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer, challenge=server)
    a = alice.call("sip:bob@bob.test")
    net.run()
    assert len(net.messages("INVITE")) == 2
    assert ended(alice, a).reason is EndReason.AUTH_FAILED


def test_401_on_bye_is_answered_with_credentials() -> None:
    net, alice, bob = challenged(challenge_methods=("BYE",))
    a = alice.call("sip:bob@bob.test")
    net.run()
    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    byes = net.messages("BYE")
    assert len(byes) == 2 and "Authorization" in byes[1].headers
    assert byes[1].cseq.seq == byes[0].cseq.seq + 1
    assert net.lines()[-1] == "SIP/2.0 200 OK"
    assert ended(bob, bob.incoming[0]).reason is EndReason.REMOTE_BYE
    assert a.state is SessionState.TERMINATED


# --------------------------------------------------------------------------- routing


def test_record_route_builds_the_route_set_on_both_sides() -> None:
    net = Network()
    alice = Phone(net, "alice.test", user="alice", port=4000)
    bob = Phone(net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer)
    proxy = Proxy(net, "proxy.test", {"bob": ["bob.test"]})
    a = alice.call("sip:bob@proxy.test")
    net.run()
    (b,) = bob.incoming
    assert a.dialog is not None and b.dialog is not None
    assert [str(r.uri) for r in a.dialog.route_set] == ["sip:proxy.test;lr"]
    assert [str(r.uri) for r in b.dialog.route_set] == ["sip:proxy.test;lr"]
    # The ACK and BYE go through the proxy, Request-URI = the remote target.
    assert [m.method for m in proxy.seen] == ["INVITE", "ACK"]
    bob.act(b, lambda: b.hangup(net.now))
    net.run()
    bye = proxy.seen[-1]
    assert bye.method == "BYE" and str(bye.uri) == "sip:alice@alice.test"
    assert [str(r.uri) for r in bye.route] == ["sip:proxy.test;lr"]
    assert ended(alice, a).reason is EndReason.REMOTE_BYE


def test_strict_router_in_the_route_set() -> None:
    net = Network()
    alice = Phone(net, "alice.test", user="alice", port=4000)
    bob = Phone(net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer)
    proxy = Proxy(net, "proxy.test", {"bob": ["bob.test"]}, strict=True)
    a = alice.call("sip:bob@proxy.test")
    net.run()
    assert a.established
    alice.act(a, lambda: a.hangup(net.now))
    net.run()
    bye = proxy.seen[-1]
    # §12.2.1.1: the strict router's URI is the Request-URI, the remote target the last Route.
    assert bye.method == "BYE" and str(bye.uri) == "sip:proxy.test"
    assert [str(r.uri) for r in bye.route] == ["sip:bob@bob.test"]
    assert ended(bob, bob.incoming[0]).reason is EndReason.REMOTE_BYE


# ---------------------------------------------------------------------- misuse and events


def test_app_misuse_raises_and_changes_nothing() -> None:
    net, alice, bob = pair(on_invite=only_ring)
    a = alice.call("sip:bob@bob.test")
    net.run()
    with pytest.raises(LocalProtocolError):
        a.answer(net.now)  # the caller cannot answer
    with pytest.raises(LocalProtocolError):
        a.hold(net.now)  # not confirmed yet
    assert a.state is SessionState.EARLY and a.outgoing() == []
    (b,) = bob.incoming
    with pytest.raises(LocalProtocolError):
        b.cancel(net.now)
    with pytest.raises(LocalProtocolError):
        b.reject(200, net.now)


def test_progress_events_for_every_provisional() -> None:
    net, alice, bob = pair(on_invite=None)
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    bob.act(b, lambda: b.ring(net.now, status=183))
    bob.act(b, lambda: b.ring(net.now))
    net.run()
    statuses = [e.response.status for e in of_type(alice.events(a), Progress)]
    assert statuses == [183, 180]
    assert a.state is SessionState.EARLY
    assert a.dialog_set is not None and [d.is_early for d in a.dialog_set] == [True]


# ----------------------------------------------------------------------- more edge paths


def test_offerless_reinvite_gets_our_offer_in_2xx_and_the_answer_in_ack() -> None:
    net, alice, bob, a, b = call_up()
    alice.act(a, lambda: a.reinvite(net.now, offer=False))
    net.run()
    reinvite = net.messages("INVITE")[-1]
    ack = net.messages("ACK")[-1]
    assert reinvite.body == b"" and ack.body != b""
    assert ack.cseq.seq == reinvite.cseq.seq
    assert len(of_type(bob.events(b), MediaNegotiated)) == 2
    assert len(of_type(alice.events(a), MediaNegotiated)) == 2
    assert of_type(alice.events(a), ModificationCompleted)[-1].accepted


def test_401_on_reinvite_resends_the_same_offer_with_credentials() -> None:
    net, alice, bob = challenged()
    a = alice.call("sip:bob@bob.test")
    net.run()
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    invites = net.messages("INVITE")
    assert len(invites) == 4  # INVITE, INVITE + credentials, re-INVITE, re-INVITE + credentials
    assert invites[3].body == invites[2].body and "Authorization" in invites[3].headers
    assert invites[3].cseq.seq == invites[2].cseq.seq + 1
    assert of_type(alice.events(a), ModificationCompleted)[-1].accepted
    (b,) = bob.incoming
    assert of_type(bob.events(b), MediaNegotiated)[-1].media[0].held_by_remote


def test_401_on_an_in_dialog_request_is_retried_once() -> None:
    net, alice, bob = challenged(challenge_methods=("INFO",))
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    alice.act(a, lambda: a.send_request("INFO", net.now, body=b"x", content_type="text/plain"))
    net.run()
    (info,) = of_type(bob.events(b), InDialogRequest)
    assert "Authorization" in info.request.headers and info.request.body == b"x"
    bob.act(b, lambda: b.respond(info.request, 200, net.now, transaction=info.transaction))
    net.run()
    assert [e.response.status for e in of_type(alice.events(a), InDialogResponse)] == [200]


def test_reinvite_answered_481_ends_the_session() -> None:
    net, alice, bob, a, _b = call_up()
    bob.sessions.clear()
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    result = of_type(alice.events(a), ModificationCompleted)[-1]
    assert (result.accepted, result.status) == (False, 481)
    end = ended(alice, a)
    assert (end.reason, end.status) == (EndReason.DIALOG_GONE, 481)
    assert net.messages("BYE") == []  # nothing to BYE after a 481


def test_update_without_offer_is_answered_200() -> None:
    net, alice, _bob, a, _b = call_up()
    assert a.dialog is not None
    update = a.dialog.create_request("UPDATE")
    alice.via(update)
    net.send("alice.test", "bob.test", update)
    net.run()
    assert net.lines()[-1] == "SIP/2.0 200 OK"
    assert net.trace[-1].message.contact  # a 2xx to a target refresh carries Contact


def test_glare_timer_waits_while_their_reinvite_is_pending() -> None:
    net = Network()
    alice = Phone(
        net,
        "alice.test",
        user="alice",
        port=4000,
        rand=lambda n: 50,
        config=SessionConfig(auto_accept_reinvite=False),
    )
    bob = Phone(
        net, "bob.test", user="bob", port=5000, on_invite=ring_and_answer, rand=lambda n: 50
    )
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    net.advance(10)
    start = net.now
    alice.act(a, lambda: a.hold(net.now))
    bob.act(b, lambda: b.reinvite(net.now))
    net.run()
    net.advance(3.0)  # bob retried at 0.5; alice's own timer fired at 2.6 and waited
    assert a.mod_state is ModifyState.REMOTE
    assert of_type(alice.events(a), ReinviteReceived)
    alice.act(a, lambda: a.accept_reinvite(net.now))
    net.advance(1.0)
    sent = [
        round(h.time - start, 2)
        for h in net.trace
        if h.src == "alice.test" and h.first_line.startswith("INVITE") and h.time >= start
    ]
    assert sent == [0.0, 3.1]  # the glare, then the retry once theirs was done
    assert of_type(alice.events(a), ModificationCompleted)[-1].accepted


def test_2xx_retransmitted_after_the_invite_transaction_ended_is_acked_again() -> None:
    net, alice, _bob, a, _b = call_up()
    ok = next(h.message for h in net.trace if h.first_line == "SIP/2.0 200 OK")
    net.advance(64 * T1 + 1)  # Timer M: alice's INVITE client transaction is gone
    assert len(alice.txl) == 0
    net.send("bob.test", "alice.test", ok)  # a late retransmission: a stray response
    net.run()
    acks = net.messages("ACK", src="alice.test")
    assert len(acks) == 2 and acks[0].cseq == acks[1].cseq
    assert alice.event_types(a).count("SessionEstablished") == 1


def test_lost_acks_of_a_reinvite_2xx_end_the_call() -> None:
    net, alice, bob, a, b = call_up()
    net.drop = lambda src, dst, m: isinstance(m, Request) and m.method == "ACK"
    alice.act(a, lambda: a.hold(net.now))
    net.run()
    assert b.mod_state is ModifyState.REMOTE_ACK
    net.advance(64 * T1 + 0.1)
    assert ended(bob, b).reason is EndReason.ACK_TIMEOUT
    assert ended(alice, a).reason is EndReason.REMOTE_BYE


def test_non_sdp_body_in_invite_gets_415() -> None:
    net, alice, _bob = pair(on_invite=ring_and_answer)
    a = alice.call("sip:bob@bob.test", media=None, body=b"<xml/>", content_type="text/xml")
    net.run()
    assert net.lines()[1] == "SIP/2.0 415 Unsupported Media Type"
    assert net.trace[1].message.headers.get("Accept") == "application/sdp"
    assert ended(alice, a).status == 415


def test_caller_bye_before_answer_in_early_dialog_gets_200_and_487() -> None:
    net, alice, bob = pair(on_invite=only_ring)
    a = alice.call("sip:bob@bob.test")
    net.run()
    (b,) = bob.incoming
    early = a.dialog_set.early[0] if a.dialog_set is not None else None
    assert early is not None
    bye = early.create_request("BYE")  # §15: the caller may BYE an early dialog
    alice.via(bye)
    net.send("alice.test", "bob.test", bye)
    net.run()
    assert "SIP/2.0 487 Request Terminated" in net.lines(src="bob.test")
    assert ended(bob, b).reason is EndReason.REMOTE_BYE
    assert ended(alice, a).status == 487


def test_refused_credentials_on_an_in_dialog_request_keep_cseq_contiguous() -> None:
    server = DigestServer("test", secret=b"k" * 32, random=lambda n: b"r" * n)
    net = Network()
    alice = Phone(
        net,
        "alice.test",
        user="alice",
        port=4000,
        auth=DigestClient("bob", "wrong", random=lambda n: b"c" * n),
    )
    Phone(
        net,
        "bob.test",
        user="bob",
        port=5000,
        on_invite=ring_and_answer,
        challenge=server,
        challenge_methods=("INFO",),
    )
    a = alice.call("sip:bob@bob.test")
    net.run()
    alice.act(a, lambda: a.send_request("INFO", net.now))
    net.run()
    (done,) = of_type(alice.events(a), InDialogResponse)
    assert done.response.status == 401  # tried once with credentials, then reported
    alice.act(a, lambda: a.send_request("MESSAGE", net.now))
    net.run()
    seqs = [m.cseq.seq for m in net.trace_requests("alice.test") if m.method != "ACK"]
    assert seqs == [1, 2, 3, 4]  # INVITE, INFO, INFO + credentials, MESSAGE
    assert a.established
