"""Dialogs (RFC 3261 §12): creation on both sides, in-dialog requests, route sets,
the strict-router fix-up, §12.2.2 checks, target refresh, dialog sets of forked INVITEs."""

from __future__ import annotations

import pytest

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.dialog import (
    Dialog,
    DialogId,
    DialogSet,
    DialogState,
    next_hop,
    reject_out_of_dialog,
    session_key,
)
from sipwire.core.message import Request, Response, parse_message
from sipwire.core.uri import SipURI


def msg(text: str) -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode())


INVITE = """INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

"""


def invite_request() -> Request:
    request = msg(INVITE)
    assert isinstance(request, Request)
    return request


def response(
    status: int,
    *,
    tag: str | None = "a6c85cf",
    rr: str | None = None,
    contact: str | None = "<sip:bob@192.0.2.4>",
    cseq: str = "314159 INVITE",
) -> Response:
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={tag}" if tag else "")
    lines = [
        f"SIP/2.0 {status} Whatever",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    ]
    if rr is not None:
        lines.append(f"Record-Route: {rr}")
    lines += [
        f"To: {to}",
        'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        f"CSeq: {cseq}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += ["Content-Length: 0", "", ""]
    parsed = msg("\n".join(lines))
    assert isinstance(parsed, Response)
    return parsed


# ---------------------------------------------------------------------------- creation


def test_uac_dialog_from_2xx_reverses_record_route_and_targets_the_contact() -> None:
    rr = "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"
    dialog = Dialog.uac(invite_request(), response(200, rr=rr))
    assert dialog.id == DialogId("a84b4c76e66710@pc33.atlanta.example.com", "1928301774", "a6c85cf")
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    assert dialog.local_seq == 314159 and dialog.remote_seq is None
    assert dialog.local_uri.tag is None and dialog.local_uri.display_name == "Alice A."
    assert not dialog.secure


def test_uac_dialog_from_a_provisional_is_early_and_2xx_confirms_it() -> None:
    dialog = Dialog.uac(invite_request(), response(180, rr="<sip:old.example.com;lr>"))
    assert dialog.is_early
    dialog.confirm(response(200, rr="<sip:new.example.com;lr>", contact="<sip:bob@192.0.2.9>"))
    assert dialog.is_confirmed
    # §13.2.2.4: the route set is recomputed from the 2xx, the target taken from it.
    assert [str(r.uri) for r in dialog.route_set] == ["sip:new.example.com;lr"]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.9"


def test_uac_dialog_needs_a_to_tag_and_falls_back_to_the_request_uri() -> None:
    with pytest.raises(RemoteProtocolError):
        Dialog.uac(invite_request(), response(200, tag=None))
    for status in (180, 200):  # a 2xx without Contact is broken, but the call goes on
        dialog = Dialog.uac(invite_request(), response(status, contact=None))
        assert str(dialog.remote_target) == "sip:bob@biloxi.example.com"


def test_uas_dialog_keeps_record_route_order_and_remote_cseq() -> None:
    dialog = Dialog.uas(invite_request(), local_tag="xyz")
    assert dialog.id == DialogId("a84b4c76e66710@pc33.atlanta.example.com", "xyz", "1928301774")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    assert dialog.remote_seq == 314159 and dialog.local_seq is None
    assert dialog.is_early and not dialog.is_uac


def test_uas_dialog_needs_a_contact() -> None:
    request = invite_request()
    request.headers.remove("Contact")
    with pytest.raises(RemoteProtocolError):
        Dialog.uas(request, local_tag="xyz")


def test_sips_request_uri_makes_the_dialog_secure() -> None:
    request = invite_request()
    request.uri = "sips:bob@biloxi.example.com"
    assert Dialog.uas(request, local_tag="x").secure
    assert not Dialog.uas(request, local_tag="x", secure=False).secure


# ----------------------------------------------------------------------- requests out


def test_in_dialog_request_uses_tags_uris_cseq_target_and_loose_route_set() -> None:
    dialog = Dialog.uac(
        invite_request(),
        response(200, rr="<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        contact=Address.parse("<sip:alice@pc33.atlanta.example.com>"),
    )
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in bye.route] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert bye.from_.tag == "1928301774" and bye.to.tag == "a6c85cf"
    assert bye.to.display_name == "Bob"
    assert bye.call_id == dialog.id.call_id
    assert (bye.cseq.seq, bye.cseq.method) == (314160, "BYE")
    assert "Contact" not in bye.headers  # BYE is no target refresh
    assert "Via" not in bye.headers  # the shell adds it
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq.seq == 314161  # contiguous, one up each time
    assert str(reinvite.contact[0].uri) == "sip:alice@pc33.atlanta.example.com"
    assert reinvite.content_type is not None and reinvite.body == b"v=0\r\n"
    assert next_hop(bye) == SipURI.parse("sip:p2.example.com;lr")


def test_without_route_set_there_is_no_route_header() -> None:
    dialog = Dialog.uac(invite_request(), response(200))
    info = dialog.create_request("INFO")
    assert "Route" not in info.headers
    assert next_hop(info) == SipURI.parse("sip:bob@192.0.2.4")


def test_strict_router_fix_up_rfc3261_example() -> None:
    """§12.2.1.1: route set <sip:proxy1>,<sip:proxy2>,<sip:proxy3;lr>,<sip:proxy4> and
    remote target sip:user@remoteua."""
    dialog = Dialog(
        id=DialogId("c", "l", "r"),
        local_uri=Address.parse("<sip:me@here>"),
        remote_uri=Address.parse("<sip:you@there>"),
        remote_target=SipURI.parse("sip:user@remoteua"),
        route_set=Address.parse_list("<sip:proxy1>,<sip:proxy2>,<sip:proxy3;lr>,<sip:proxy4>"),
        local_seq=1,
    )
    request = dialog.create_request("BYE")
    assert request.uri_text == "sip:proxy1"
    assert request.headers.values("Route") == [
        "<sip:proxy2>",
        "<sip:proxy3;lr>",
        "<sip:proxy4>",
        "<sip:user@remoteua>",
    ]
    assert next_hop(request) == SipURI.parse("sip:proxy1")  # the strict router itself


def test_strict_router_uri_is_stripped_of_what_a_request_uri_cannot_hold() -> None:
    dialog = Dialog(
        id=DialogId("c", "l", "r"),
        local_uri=Address.parse("<sip:me@here>"),
        remote_uri=Address.parse("<sip:you@there>"),
        remote_target=SipURI.parse("sip:user@remoteua"),
        route_set=[Address.parse("<sip:proxy1;method=INVITE;maddr=192.0.2.1?X=y>")],
        local_seq=1,
    )
    request = dialog.create_request("INFO")
    assert request.uri_text == "sip:proxy1;maddr=192.0.2.1"


def test_ack_of_2xx_reuses_the_invite_cseq_and_credentials_without_counting() -> None:
    dialog = Dialog.uac(invite_request(), response(200))
    ack = dialog.create_ack(314159, headers=[("Authorization", 'Digest username="a"')])
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.headers.get("Authorization") == 'Digest username="a"'
    assert dialog.create_request("BYE").cseq.seq == 314160
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")


def test_uas_first_request_picks_a_cseq_below_2_31() -> None:
    dialog = Dialog.uas(invite_request(), local_tag="x", random_below=lambda n: n - 1)
    bye = dialog.create_request("BYE")
    assert 0 < bye.cseq.seq < 2**31
    assert dialog.create_request("INFO").cseq.seq == bye.cseq.seq + 1
    assert bye.to.tag == "1928301774" and bye.from_.tag == "x"
    assert str(bye.uri) == "sip:alice@pc33.atlanta.example.com"
    # The UAS keeps the Record-Route order (§12.1.1).
    assert [str(r.uri) for r in bye.route] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]


def test_terminated_dialog_builds_nothing() -> None:
    dialog = Dialog.uac(invite_request(), response(200))
    dialog.terminate()
    with pytest.raises(LocalProtocolError):
        dialog.create_request("BYE")


# ------------------------------------------------------------------------ requests in


def in_dialog(method: str, seq: int, contact: str | None = None) -> Request:
    text = (
        f"{method} sip:bob@192.0.2.4 SIP/2.0\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnew\n"
        "To: <sip:bob@biloxi.example.com>;tag=xyz\n"
        "From: <sip:alice@atlanta.example.com>;tag=1928301774\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
        f"CSeq: {seq} {method}\n"
        + (f"Contact: {contact}\n" if contact else "")
        + "Content-Length: 0\n\n"
    )
    request = msg(text)
    assert isinstance(request, Request)
    return request


def test_cseq_out_of_order_is_500_and_in_order_is_taken() -> None:
    dialog = Dialog.uas(invite_request(), local_tag="xyz")
    assert dialog.check_request(in_dialog("INFO", 314160)) is None
    assert dialog.remote_seq == 314160
    assert dialog.check_request(in_dialog("INFO", 314159)) == 500
    assert dialog.check_request(in_dialog("INFO", 314160)) == 500
    assert dialog.check_request(in_dialog("ACK", 314159)) is None  # not checked
    assert dialog.check_request(in_dialog("BYE", 314170)) is None  # gaps are fine
    assert dialog.matches(in_dialog("BYE", 1))


def test_target_refresh_by_reinvite_and_not_by_info() -> None:
    dialog = Dialog.uas(invite_request(), local_tag="xyz")
    dialog.check_request(in_dialog("INFO", 314160, contact="<sip:alice@elsewhere>"))
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    dialog.check_request(in_dialog("INVITE", 314161, contact="<sip:alice@moved.example.com>"))
    assert str(dialog.remote_target) == "sip:alice@moved.example.com"
    dialog.check_request(in_dialog("UPDATE", 314162, contact="<sip:alice@again.example.com>"))
    assert str(dialog.remote_target) == "sip:alice@again.example.com"


def test_2xx_to_our_target_refresh_moves_the_remote_target() -> None:
    dialog = Dialog.uac(invite_request(), response(200))
    dialog.receive_response(response(200, cseq="314161 INFO", contact="<sip:bob@ignored>"))
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    dialog.receive_response(response(200, cseq="314161 INVITE", contact="<sip:bob@moved>"))
    assert str(dialog.remote_target) == "sip:bob@moved"


# --------------------------------------------------------------------------- dialog sets


def test_dialog_set_tracks_forks_and_a_final_failure_ends_the_early_ones() -> None:
    dialogs = DialogSet(invite_request())
    assert dialogs.receive_response(response(100, tag=None)) is None
    one = dialogs.receive_response(response(180, tag="one"))
    two = dialogs.receive_response(response(183, tag="two"))
    assert one is not None and two is not None and one is not two
    assert dialogs.receive_response(response(180, tag="one")) is one
    assert [d.id.remote_tag for d in dialogs.early] == ["one", "two"]
    assert dialogs.receive_response(response(200, tag="two")) is two
    assert two.is_confirmed and one.is_early
    assert dialogs.receive_response(response(487, tag="one")) is None
    assert one.terminated and two.is_confirmed
    assert dialogs.confirmed == [two]


def test_dialog_set_gives_every_2xx_a_dialog_even_when_full() -> None:
    dialogs = DialogSet(invite_request(), max_dialogs=2)
    dialogs.receive_response(response(180, tag="a"))
    dialogs.receive_response(response(180, tag="b"))
    third = dialogs.receive_response(response(180, tag="c"))
    assert third is not None and len(dialogs) == 2  # the oldest early one made room
    assert dialogs.get("a") is None
    ok1 = dialogs.receive_response(response(200, tag="b"))
    ok2 = dialogs.receive_response(response(200, tag="c"))
    ok3 = dialogs.receive_response(response(200, tag="d"))
    assert ok1 is not None and ok2 is not None and ok3 is not None
    assert [d.id.remote_tag for d in dialogs.confirmed] == ["b", "c", "d"]
    with pytest.raises(RemoteProtocolError):
        dialogs.receive_response(response(200, tag=None))


# ------------------------------------------------------------------------------ helpers


def test_session_key_names_our_tag() -> None:
    assert session_key(in_dialog("BYE", 5)) == ("a84b4c76e66710@pc33.atlanta.example.com", "xyz")
    assert session_key(response(200)) == (
        "a84b4c76e66710@pc33.atlanta.example.com",
        "1928301774",
    )
    assert session_key(invite_request()) is None


def test_reject_out_of_dialog_is_481_and_never_for_ack() -> None:
    reply = reject_out_of_dialog(in_dialog("BYE", 5))
    assert reply.status == 481 and reply.to.tag == "xyz"
    with pytest.raises(LocalProtocolError):
        reject_out_of_dialog(in_dialog("ACK", 5))
