"""sipwire.core.message: parsing, framing, validation, serialization, builders, streams."""

from __future__ import annotations

import pytest

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.address import Address
from sipwire.core.headers import Headers
from sipwire.core.message import (
    REASON_PHRASES,
    InvalidMessage,
    KeepAlive,
    Limits,
    Request,
    Response,
    StreamParser,
    make_ack,
    make_cancel,
    make_response,
    parse_message,
    reason_phrase,
)
from sipwire.core.uri import SipURI

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com:5061;branch=z9hG4bKp1, SIP/2.0/UDP x.example.com\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:rr.example.com;lr>\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54.3\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _request(data: bytes = INVITE, *, validate: bool = True) -> Request:
    msg = parse_message(data, validate=validate)
    assert isinstance(msg, Request)
    return msg


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


# -- parsing and typed access -------------------------------------------------------


def test_request_typed_values() -> None:
    req = _request()
    assert req.method == "INVITE"
    assert req.uri == SipURI.parse("sip:bob@biloxi.example.com")
    assert req.uri_text == "sip:bob@biloxi.example.com"
    assert req.version == "SIP/2.0"
    assert req.top_via.branch == "z9hG4bK776asdhds"
    assert [v.sent_by for v in req.via] == [
        "pc33.atlanta.example.com",
        "proxy.example.com:5061",
        "x.example.com",
    ]
    assert req.via[1].transport == "TCP"
    assert req.from_.tag == "1928301774"
    assert req.from_.display_name == "Alice"
    assert req.to.tag is None
    assert req.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (req.cseq.seq, req.cseq.method) == (314159, "INVITE")
    assert req.max_forwards == 70
    assert [str(r.uri) for r in req.route] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert [str(r.uri) for r in req.record_route] == ["sip:rr.example.com;lr"]
    assert [c.expires for c in req.contact] == [60]
    assert req.contact[0].q == 0.5
    assert not req.contact_is_star
    assert req.content_length == len(SDP)
    ct = req.content_type
    assert ct is not None and ct.mime_type == "application/sdp"
    assert req.body == SDP
    assert req.expires is None
    assert req.is_request


def test_response_typed_values() -> None:
    resp = parse_message(RESPONSE)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason, resp.status_class) == (180, "Ringing", 1)
    assert resp.to.tag == "a6c85cf"
    assert resp.cseq.method == "INVITE"
    assert resp.body == b""
    assert not resp.is_request


def test_top_via_then_via_parse_consistently() -> None:
    req = _request(validate=False)
    top = req.top_via
    assert req.via[0] == top
    assert len(req.via) == 3


def test_typed_cache_is_dropped_when_headers_change() -> None:
    req = _request()
    assert req.max_forwards == 70
    req.headers.set("Max-Forwards", "69")
    assert req.max_forwards == 69
    assert req.top_via.branch == "z9hG4bK776asdhds"
    req.headers.insert_first("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKnew")
    assert req.top_via.branch == "z9hG4bKnew"
    assert len(req.via) == 4


def test_contact_star() -> None:
    data = _replace(
        _replace(INVITE, b"INVITE sip:bob", b"REGISTER sip:bob"), b"314159 INVITE", b"1 REGISTER"
    )
    data = _replace(
        data, b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5", b"Contact: *"
    )
    req = _request(data)
    assert req.contact_is_star
    assert req.contact == []
    bad = _replace(data, b"Contact: *", b"Contact: *\r\nContact: <sip:a@b>")
    with pytest.raises(InvalidMessage) as info:
        parse_message(bad)
    assert info.value.status_hint == 400


def test_lazy_parse_defers_header_errors_to_access() -> None:
    data = _replace(INVITE, b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n")
    msg = parse_message(data, validate=False)  # framing is fine: Content-Length is found
    assert msg.body == SDP
    assert msg.to_bytes() == data
    with pytest.raises(RemoteProtocolError):
        msg.headers  # noqa: B018
    with pytest.raises(RemoteProtocolError, match="colon"):
        parse_message(data)


def test_typed_access_to_a_broken_value_raises_remote_error() -> None:
    data = _replace(INVITE, b"CSeq: 314159 INVITE", b"CSeq: many INVITE")
    msg = parse_message(data, validate=False)
    with pytest.raises(RemoteProtocolError):
        msg.cseq  # noqa: B018
    assert msg.call_id.startswith("a84b")  # the rest still works


# -- framing (RFC 3261 §18.3) -------------------------------------------------------


def test_trailing_octets_after_content_length_are_ignored() -> None:
    msg = parse_message(INVITE + b"garbage that is not part of it")
    assert msg.body == SDP
    assert msg.to_bytes() == INVITE


def test_missing_content_length_in_a_datagram_takes_the_rest() -> None:
    data = _replace(INVITE, b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    msg = parse_message(data)
    assert msg.body == SDP
    assert msg.content_length is None
    assert msg.to_bytes() == data
    msg.headers.add("X-Changed", "1")
    assert b"Content-Length: " + str(len(SDP)).encode() + b"\r\n" in msg.to_bytes()


def test_content_length_beyond_the_datagram_keeps_the_message() -> None:
    data = _replace(INVITE, b"Content-Length: " + str(len(SDP)).encode(), b"Content-Length: 999")
    with pytest.raises(InvalidMessage) as info:
        parse_message(data)
    assert info.value.message.to_bytes() == data
    assert info.value.message.body == SDP
    assert isinstance(info.value.message, Request)
    assert make_response(info.value.message, 400).status == 400


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"9999", 400), (b"-1", 400), (b"1x", 400), (b"", 400), (b"999999999999999999999999", 513)],
)
def test_bad_content_length(length: bytes, status: int) -> None:
    data = _replace(
        INVITE, b"Content-Length: " + str(len(SDP)).encode(), b"Content-Length: " + length
    )
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert info.value.status_hint == status
    with pytest.raises(RemoteProtocolError):
        parse_message(data, validate=False)


def test_duplicate_content_length_is_a_framing_error() -> None:
    data = _replace(INVITE, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nl: 5\r\n")
    for validate in (True, False):
        with pytest.raises(RemoteProtocolError, match="Content-Length"):
            parse_message(data, validate=validate)


def test_leading_crlfs_are_skipped() -> None:
    msg = parse_message(b"\r\n\r\n" + RESPONSE)
    assert msg.to_bytes() == RESPONSE


def test_bare_lf_line_ends_are_tolerated() -> None:
    lf = RESPONSE.replace(b"\r\n", b"\n")
    msg = parse_message(lf)
    assert isinstance(msg, Response) and msg.to.tag == "a6c85cf"
    assert msg.to_bytes() == lf


def test_header_section_without_empty_line_at_end_of_datagram() -> None:
    data = RESPONSE[:-2]  # last header line complete, no empty line
    msg = parse_message(data)
    assert msg.body == b""
    with pytest.raises(RemoteProtocolError):
        parse_message(RESPONSE[:-4])  # the last line itself is cut


@pytest.mark.parametrize(
    ("start_line", "status"),
    [
        (b"INVITE  sip:bob@biloxi.example.com SIP/2.0", 400),  # two SP
        (b"INVITE sip:bob@biloxi.example.com SIP/2.0 ", 400),  # trailing SP
        (b"INVITE <sip:bob@biloxi.example.com> SIP/2.0", 400),
        (b"INVITE sip:bob@biloxi.example.com SIP/3.0", 505),
        (b"INVITE sip:bob@biloxi.example.com HTTP/1.1", 400),
        (b"INVITE sip:bob@biloxi.example.com", 400),
        (b"INV(ITE sip:bob@biloxi.example.com SIP/2.0", 400),
        (b"INVITE bob SIP/2.0", 400),
        (b"SIP/2.0 99 Too Low", 400),
        (b"SIP/2.0 700 Too High", 400),
        (b"SIP/2.0 2000 OK", 400),
        (b"SIP/3.0 200 OK", 505),
        (b"", 400),
    ],
)
def test_bad_start_lines(start_line: bytes, status: int) -> None:
    data = start_line + INVITE[INVITE.index(b"\r\n") :]
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data, validate=False)
    assert info.value.status_hint == status


def test_version_error_carries_the_message_for_a_505() -> None:
    data = _replace(INVITE, b"SIP/2.0\r\n", b"SIP/7.0\r\n")
    with pytest.raises(InvalidMessage) as info:
        parse_message(data)
    assert info.value.status_hint == 505
    req = info.value.message
    assert isinstance(req, Request) and req.version == "SIP/7.0"
    resp = make_response(req, info.value.status_hint)
    assert resp.to_bytes().startswith(b"SIP/2.0 505 Version Not Supported\r\n")
    assert resp.top_via.branch == "z9hG4bK776asdhds"


def test_lowercase_version_is_accepted() -> None:
    req = _request(_replace(INVITE, b"SIP/2.0\r\n", b"sip/2.0\r\n"))
    assert req.version == "sip/2.0"


def test_empty_reason_phrase_and_utf8_reason() -> None:
    r = parse_message(b"SIP/2.0 100 \r\n" + RESPONSE[RESPONSE.index(b"\r\n") + 2 :])
    assert isinstance(r, Response) and r.reason == ""
    phrase = "Всё хорошо"
    r = parse_message(
        f"SIP/2.0 200 {phrase}\r\n".encode() + RESPONSE[RESPONSE.index(b"\r\n") + 2 :]
    )
    assert isinstance(r, Response) and r.reason == phrase


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"", 400),
        (b"CSeq: 314159 INVITE\r\n", b"CSeq: 314159 INVITE\r\nCSeq: 314160 INVITE\r\n", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE", 400),
        (b"Max-Forwards: 70", b"Max-Forwards: 256", 400),
        (b"Call-ID: a84b4c76e66710@pc33", b"Call-ID: a84b4c76e66710 @pc33", 400),
        (b"To: Bob <sip:bob@biloxi.example.com>", b'To: "Bob <sip:bob@biloxi.example.com>', 400),
        (b"Contact: <sip:alice@pc33", b"Contact: <sip:alice@pc33 x", 400),
        (
            b"INVITE sip:bob@biloxi.example.com ",
            b"INVITE sip:bob@biloxi.example.com?Subject=x ",
            400,
        ),
    ],
)
def test_validation_failures(old: bytes, new: bytes, status: int) -> None:
    data = _replace(INVITE, old, new)
    parse_message(data, validate=False)  # framing is fine
    with pytest.raises(InvalidMessage) as info:
        parse_message(data)
    assert info.value.status_hint == status
    assert isinstance(info.value.message, Request)


def test_missing_via_is_rejected() -> None:
    data = INVITE
    for line in (
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
        b"Via: SIP/2.0/TCP proxy.example.com:5061;branch=z9hG4bKp1, SIP/2.0/UDP x.example.com\r\n",
    ):
        data = _replace(data, line, b"")
    with pytest.raises(InvalidMessage, match="Via"):
        parse_message(data)


def test_unknown_method_with_cseq_mismatch_is_501() -> None:
    data = _replace(INVITE, b"INVITE sip:bob", b"FOO sip:bob")
    with pytest.raises(InvalidMessage) as info:
        parse_message(data)
    assert info.value.status_hint == 501


# -- limits -------------------------------------------------------------------------


def test_limits_defaults_are_documented_values() -> None:
    limits = Limits()
    assert (limits.max_message_size, limits.max_headers) == (65535, 256)
    assert (limits.max_line_length, limits.max_body) == (8192, 65535)
    with pytest.raises(AttributeError):
        limits.max_headers = 3  # type: ignore[misc]


def test_limits_give_513() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(INVITE, limits=Limits(max_message_size=100))
    assert info.value.status_hint == 513
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(INVITE, limits=Limits(max_headers=5))
    assert info.value.status_hint == 513
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(INVITE, limits=Limits(max_line_length=60))
    assert info.value.status_hint == 513
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(INVITE, limits=Limits(max_body=10))
    assert info.value.status_hint == 513
    long_line = _replace(INVITE, b"Timestamp: 54.3", b"X-Long: " + b"a" * 9000)
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(long_line)
    assert info.value.status_hint == 513


# -- serialization ------------------------------------------------------------------


def test_unchanged_message_serializes_to_its_input() -> None:
    for validate in (True, False):
        assert parse_message(INVITE, validate=validate).to_bytes() == INVITE
        assert bytes(parse_message(RESPONSE, validate=validate)) == RESPONSE


def test_changed_message_keeps_unchanged_rows_verbatim() -> None:
    data = _replace(INVITE, b"Max-Forwards: 70", b"max-forwards :   70")
    req = _request(data)
    req.headers.insert_first("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKx")
    out = req.to_bytes()
    assert out.startswith(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.net;branch=z9hG4bKx\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    )
    assert b"\r\nmax-forwards :   70\r\n" in out
    assert out.endswith(b"\r\n\r\n" + SDP)
    assert parse_message(out) == req


def test_body_change_fixes_content_length() -> None:
    req = _request()
    req.body = b"hello"
    assert req.headers.get("Content-Length") == "5"
    out = req.to_bytes()
    assert b"\r\nContent-Length: 5\r\n" in out and out.endswith(b"\r\n\r\nhello")
    assert parse_message(out).body == b"hello"


def test_start_line_changes_serialize() -> None:
    req = _request()
    req.uri = SipURI.parse("sip:bob@192.0.2.4:5060")
    assert req.to_bytes().startswith(b"INVITE sip:bob@192.0.2.4:5060 SIP/2.0\r\n")
    resp = parse_message(RESPONSE)
    assert isinstance(resp, Response)
    resp.status = 183
    resp.reason = "Session Progress"
    assert resp.to_bytes().startswith(b"SIP/2.0 183 Session Progress\r\n")


def test_built_messages_get_content_length() -> None:
    req = Request("OPTIONS", "sip:a@example.com", [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")])
    assert req.to_bytes() == (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    resp = Response(486, body=b"x")
    assert resp.reason == "Busy Here"
    assert resp.to_bytes() == b"SIP/2.0 486 Busy Here\r\nContent-Length: 1\r\n\r\nx"


def test_equality_and_copy() -> None:
    a = _request()
    b = _request(validate=False)
    assert a == b
    c = a.copy()
    assert c == a and c.to_bytes() == INVITE
    c.headers.add("X-Copy", "1")
    assert c != a and "X-Copy" not in a.headers
    assert a != parse_message(RESPONSE)
    d = _request()
    d.body = b"other"
    assert d != a


def test_constructor_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        Request("BAD METHOD", "sip:a@b")
    with pytest.raises(LocalProtocolError):
        Request("INVITE", "sip:a@b c")
    with pytest.raises(LocalProtocolError):
        Response(99)
    with pytest.raises(LocalProtocolError):
        Response(200, "OK\r\nVia: x")
    with pytest.raises(LocalProtocolError):
        Request("INVITE", "sip:a@b", body="text")  # type: ignore[arg-type]


# -- reason phrases -----------------------------------------------------------------


def test_reason_phrases() -> None:
    for code in (100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404,
                 405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480, 481, 482, 483,
                 484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505, 513, 600, 603,
                 604, 606):  # fmt: skip
        assert code in REASON_PHRASES, code  # every code of RFC 3261 §21
    assert reason_phrase(481) == "Call/Transaction Does Not Exist"
    assert reason_phrase(422) == "Session Interval Too Small"
    assert reason_phrase(299) == "Success"


# -- builders -----------------------------------------------------------------------


def test_make_response_copies_the_right_headers() -> None:
    req = _request()
    resp = make_response(req, 180, to_tag="abc")
    assert resp.status == 180 and resp.reason == "Ringing"
    assert resp.headers.values("Via") == req.headers.values("Via")
    assert resp.from_ == req.from_
    assert resp.to.tag == "abc"
    assert resp.to.uri == req.to.uri
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.headers.get_all("Record-Route") == ["<sip:rr.example.com;lr>"]
    assert "Timestamp" not in resp.headers
    assert "Contact" not in resp.headers and "Route" not in resp.headers
    assert resp.body == b"" and resp.headers.get("Content-Length") == "0"
    parse_message(resp.to_bytes())  # valid on the wire


def test_make_response_100_echoes_timestamp_and_keeps_existing_tag() -> None:
    req = _request()
    trying = make_response(req, 100)
    assert trying.headers.get("Timestamp") == "54.3"
    assert "Record-Route" not in trying.headers
    assert parse_message(trying.to_bytes()) == trying
    final = make_response(req, 486, "Busy", to_tag="t1")
    assert final.reason == "Busy" and final.to.tag == "t1"
    tagged = _replace(
        INVITE, b"<sip:bob@biloxi.example.com>\r\n", b"<sip:bob@biloxi.example.com>;tag=old\r\n"
    )
    assert make_response(_request(tagged), 200, to_tag="new").to.tag == "old"


def test_make_ack_for_a_non_2xx() -> None:
    invite = _request()
    response = make_response(invite, 486, to_tag="t9")
    ack = make_ack(invite, response)
    assert ack.method == "ACK"
    assert ack.uri_text == invite.uri_text
    assert ack.headers.values("Via") == [invite.headers.values("Via")[0]]  # top Via only
    assert ack.headers.get_all("Route") == invite.headers.get_all("Route")
    assert ack.to.tag == "t9"
    assert ack.from_ == invite.from_
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.max_forwards == 70
    assert ack.body == b""
    parse_message(ack.to_bytes())
    with pytest.raises(LocalProtocolError):
        make_ack(invite, make_response(invite, 200, to_tag="x"))
    with pytest.raises(LocalProtocolError):
        make_ack(ack, response)


def test_make_ack_top_via_from_a_comma_row() -> None:
    data = _replace(
        INVITE,
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
        b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com\r\n",
    )
    invite = _request(data)
    ack = make_ack(invite, make_response(invite, 404))
    assert [v.host for v in ack.via] == ["a.example.com"]
    assert make_cancel(invite).via == [invite.top_via]


def test_make_cancel() -> None:
    invite = _request()
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL"
    assert cancel.uri_text == invite.uri_text
    assert cancel.via == [invite.top_via]
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")
    assert cancel.to == invite.to and cancel.from_ == invite.from_
    assert cancel.call_id == invite.call_id
    assert (cancel.cseq.seq, cancel.cseq.method) == (314159, "CANCEL")
    parse_message(cancel.to_bytes())
    with pytest.raises(LocalProtocolError):
        make_cancel(cancel)


def test_builders_on_constructed_messages() -> None:
    invite = Request(
        "INVITE",
        SipURI(host="example.com", user="bob"),
        Headers(
            [
                ("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bKabc"),
                ("From", str(Address(SipURI(host="example.com", user="a")).with_tag("f1"))),
                ("To", "<sip:bob@example.com>"),
                ("Call-ID", "c1"),
                ("CSeq", "1 INVITE"),
                ("Max-Forwards", "70"),
            ]
        ),
    )
    assert parse_message(invite.to_bytes()) == invite
    assert make_cancel(invite).cseq.method == "CANCEL"
    assert make_response(invite, 200, to_tag="t").to.tag == "t"


# -- stream framing ------------------------------------------------------------------


def test_stream_parser_handles_every_split_point() -> None:
    stream = INVITE + b"\r\n\r\n" + RESPONSE + b"\r\n" + INVITE
    expected = [parse_message(INVITE), KeepAlive.PING, parse_message(RESPONSE), KeepAlive.PONG,
                parse_message(INVITE)]  # fmt: skip
    whole = StreamParser().feed(stream)
    assert whole == expected
    for cut in range(1, len(stream)):
        parser = StreamParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        if got != expected:
            # A PING cut between its two CRLFs is reported as PONG then PING.
            assert got == [expected[0], KeepAlive.PONG, KeepAlive.PING, *expected[2:]], cut
        assert parser.buffered == 0


def test_stream_parser_byte_by_byte() -> None:
    parser = StreamParser()
    out: list[object] = []
    for i in range(len(INVITE)):
        out += parser.feed(INVITE[i : i + 1])
    assert out == [parse_message(INVITE)]
    assert out[0].to_bytes() == INVITE  # type: ignore[attr-defined]


def test_stream_keepalives() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == [KeepAlive.PING]
    assert parser.feed(b"\r\n") == [KeepAlive.PONG]
    assert parser.feed(b"\r\n\r\n\r\n\r\n") == [KeepAlive.PING, KeepAlive.PING]
    assert parser.feed(b"\r\n\r") == []  # could still become a PING
    assert parser.feed(b"\n") == [KeepAlive.PING]


def test_stream_requires_content_length_and_then_fails_for_good() -> None:
    data = _replace(RESPONSE, b"Content-Length: 0\r\n", b"")
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError, match="Content-Length"):
        parser.feed(data)
    with pytest.raises(RemoteProtocolError):
        parser.feed(RESPONSE)


@pytest.mark.parametrize(
    "data",
    [
        _replace(RESPONSE, b"Content-Length: 0", b"Content-Length: -5"),
        _replace(RESPONSE, b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"),
        b"garbage line\r\n\r\n",
        _replace(RESPONSE, b"CSeq:", b"CSeq"),
    ],
)
def test_stream_framing_errors_are_fatal(data: bytes) -> None:
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError):
        parser.feed(data)
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"")


def test_stream_buffer_is_bounded() -> None:
    parser = StreamParser(Limits(max_message_size=1000))
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            parser.feed(b"X-Filler: " + b"a" * 50 + b"\r\n")
    assert info.value.status_hint == 513
    parser = StreamParser(Limits(max_message_size=1000))
    big = _replace(RESPONSE, b"Content-Length: 0", b"Content-Length: 5000")
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(big)
    assert info.value.status_hint == 513


def test_stream_invalid_message_is_not_fatal() -> None:
    bad = _replace(RESPONSE, b"CSeq: 314159 INVITE", b"CSeq: x INVITE")
    parser = StreamParser()
    with pytest.raises(InvalidMessage) as info:
        parser.feed(RESPONSE + bad + RESPONSE)
    assert isinstance(info.value.message, Response)
    # The good message framed before the bad one and the one after both come out next.
    assert parser.feed(b"") == [parse_message(RESPONSE), parse_message(RESPONSE)]
    lazy = StreamParser(validate=False)
    assert len(lazy.feed(bad)) == 1


def test_stream_505_is_not_fatal() -> None:
    bad = _replace(INVITE, b"SIP/2.0\r\n", b"SIP/3.0\r\n")
    parser = StreamParser()
    with pytest.raises(InvalidMessage) as info:
        parser.feed(bad + RESPONSE)
    assert info.value.status_hint == 505
    assert parser.feed(b"") == [parse_message(RESPONSE)]


def test_stream_bare_lf_message() -> None:
    lf = RESPONSE.replace(b"\r\n", b"\n")
    parser = StreamParser()
    assert parser.feed(lf[:10]) == []
    out = parser.feed(lf[10:])
    assert len(out) == 1 and out[0].to_bytes() == lf  # type: ignore[union-attr]


# -- property-based round trips ------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strategies_msg import messages  # noqa: E402

_HYPO = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_HYPO
@given(messages())
def test_round_trip_parse_serialize(msg: Request | Response) -> None:
    data = msg.to_bytes()
    for validate in (True, False):
        parsed = parse_message(data, validate=validate)
        assert parsed == msg
        assert parsed.to_bytes() == data
    parsed = parse_message(data)
    parsed.headers.add("X-Extra", "1")  # re-serialized through the changed path
    again = parse_message(parsed.to_bytes())
    assert again == parsed
    assert again.body == msg.body


@_HYPO
@given(st.lists(messages(), min_size=1, max_size=4), st.data())
def test_round_trip_through_a_stream(msgs: list[Request | Response], data: st.DataObject) -> None:
    stream = b"".join(m.to_bytes() for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = StreamParser()
    out: list[Request | Response | KeepAlive] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += parser.feed(stream[prev:cut])
        prev = cut
    assert out == msgs
    assert parser.buffered == 0
