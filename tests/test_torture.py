"""RFC 4475 and RFC 5118 torture messages, every file of tests/torture/ (see the INDEX.md files).

Valid messages must parse (validated) and round-trip byte for byte; each has the points
its RFC section is about asserted.  Invalid ones must raise RemoteProtocolError with the
status the RFC asks for.  The corpus is a byte-exact copy of /work/shared/torture
(``.gitattributes`` keeps git away from the CRLFs).
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable

import pytest

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import (
    InvalidMessage,
    KeepAlive,
    Request,
    Response,
    StreamParser,
    make_response,
    parse_message,
)
from sipwire.core.uri import AbsoluteURI, SipURI

TORTURE = pathlib.Path(__file__).parent / "torture"
RFC4475 = TORTURE / "rfc4475"
RFC5118 = TORTURE / "rfc5118"

Check = Callable[[Request | Response, bytes], None]


def _req(msg: Request | Response) -> Request:
    assert isinstance(msg, Request)
    return msg


def _resp(msg: Request | Response) -> Response:
    assert isinstance(msg, Response)
    return msg


def _sip(uri: object) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


# -- RFC 4475 §3.1.1: valid messages --------------------------------------------------


def check_wsinv(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert req.method == "INVITE"
    assert req.uri_text == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    # folded, LWS everywhere, compact names, leading zeros
    assert req.headers.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    assert req.to.tag == "1918181833n"
    assert req.from_.tag == "98asjd8"
    assert req.from_.display_name == 'J Rosenberg \\"'
    assert req.max_forwards == 68
    assert (req.cseq.seq, req.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in req.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert req.headers.names()[-2:] == ["v", "m"]  # compact names kept as written
    assert req.headers.get("Subject") == ""
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get_all("UnknownHeaderWithUnusualValue") == [";;,,;;,;"]
    assert [str(r.uri) for r in req.route] == [
        "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    ]
    [contact] = req.contact
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == 0.33
    assert req.content_length == 150 and len(req.body) == 150


def check_intmeth(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert req.cseq.method == req.method
    uri = _sip(req.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert req.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"  # raw 0x07/0x00/0x7F
    assert req.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert req.from_.tag == "_token~1'+`*%!-."
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert req.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def check_esc01(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    uri = _sip(req.uri)
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == "sips:user@example.com"
    assert _sip(req.to.uri).user_unescaped == "user"
    assert _sip(req.from_.uri).user_unescaped == "I have spaces"
    contact = _sip(req.contact[0].uri)
    assert contact.user_unescaped == "caller"
    assert contact.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))  # not recursive
    assert req.headers.get("c") == "application/sdp"


def check_escnull(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert _sip(req.to.uri).user_unescaped == "null-\x00-null"  # not cut at the NUL
    users = [_sip(c.uri).user_unescaped for c in req.contact]
    assert users == ["\x00", "\x00\x00"]
    assert req.contact[0].uri != req.contact[1].uri  # two distinct bindings


def check_esc02(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert req.method == "RE%47IST%45R" and req.method != "REGISTER"
    assert req.to.display_name == "%Z%45" and req.from_.display_name == "%Z%45"
    assert len(req.contact) == 2  # C%6Fntact is not Contact
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"


def check_lwsdisp(msg: Request | Response, data: bytes) -> None:
    assert msg.from_.display_name == "caller"
    assert msg.from_.tag == "323"


def check_longreq(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert len(data) == 3515
    assert len(req.via) == 34
    assert [v.host for v in req.via[:2]] == ["sip33.example.com", "sip32.example.com"]
    assert req.via[-1].received == "192.0.2.5"
    display = req.to.display_name
    assert display is not None and display.startswith("I have a user name of extremeextreme")
    assert len(req.from_.tag or "") > 50
    assert len(req.call_id) > 100
    assert len(req.body) == 150


def check_dblreq(msg: Request | Response, data: bytes) -> None:
    req = _req(msg)
    assert req.method == "REGISTER"
    assert req.body == b""
    assert req.content_length == 0
    end = data.index(b"\r\n\r\n") + 4
    assert req.to_bytes() == data[:end]  # the trailing INVITE is noise, never forwarded
    assert b"INVITE" not in req.to_bytes()


def check_semiuri(msg: Request | Response, data: bytes) -> None:
    uri = _sip(_req(msg).uri)
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == ()
    assert msg.headers.get("Accept") == (
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, "
        "message/sip, message/sipfrag"
    )


def check_transports(msg: Request | Response, data: bytes) -> None:
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(msg: Request | Response, data: bytes) -> None:
    assert len(msg.body) == 553 == msg.content_length
    assert b"\x00" in msg.body
    assert msg.body.endswith(b"--7a9cbec02ceef655--\r\n")
    ct = msg.content_type
    assert ct is not None and ct.mime_type == "multipart/mixed"


def check_unreason(msg: Request | Response, data: bytes) -> None:
    resp = _resp(msg)
    assert resp.status == 200
    assert resp.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def check_noreason(msg: Request | Response, data: bytes) -> None:
    resp = _resp(msg)
    assert (resp.status, resp.reason) == (100, "")


# -- RFC 4475 §3.2-3.4: well-formed, the point is above the parser -------------------


def check_badbranch(msg: Request | Response, data: bytes) -> None:
    assert msg.top_via.branch == "z9hG4bK"


def check_baddate(msg: Request | Response, data: bytes) -> None:
    # The Date is not needed to process the request; it is kept as written (§3.1.2.12).
    assert msg.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"
    assert msg.headers.get_all("Date") == ["Fri, 01 Jan 2010 16:00:00 EST"]


def check_unkscm(msg: Request | Response, data: bytes) -> None:
    uri = _req(msg).uri
    assert isinstance(uri, AbsoluteURI) and uri.scheme == "nobodyknowsthisscheme"


def check_novelsc(msg: Request | Response, data: bytes) -> None:
    uri = _req(msg).uri
    assert isinstance(uri, AbsoluteURI) and str(uri) == "soap.beep://192.0.2.103:3002"


def check_unksm2(msg: Request | Response, data: bytes) -> None:
    assert isinstance(msg.to.uri, AbsoluteURI) and str(msg.to.uri) == "isbn:2983792873"
    assert isinstance(msg.from_.uri, AbsoluteURI)
    assert [str(c.uri) for c in msg.contact] == ["name:John_Smith"]


def check_bext01(msg: Request | Response, data: bytes) -> None:
    assert msg.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def check_invut(msg: Request | Response, data: bytes) -> None:
    ct = msg.content_type
    assert ct is not None and ct.mime_type == "application/unknownformat"
    assert len(msg.body) == 40


def check_regaut01(msg: Request | Response, data: bytes) -> None:
    assert msg.headers.get_all("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def check_bcast(msg: Request | Response, data: bytes) -> None:
    assert [v.host for v in msg.via] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(msg: Request | Response, data: bytes) -> None:
    assert msg.max_forwards == 0


def check_cparam01(msg: Request | Response, data: bytes) -> None:
    [contact] = msg.contact
    assert contact.params == (("unknownparam", None),)  # a contact-param...
    assert _sip(contact.uri).params == ()  # ...never a url-parameter


def check_cparam02(msg: Request | Response, data: bytes) -> None:
    [contact] = msg.contact
    assert _sip(contact.uri).params == (("unknownparam", None),)
    assert contact.params == ()


def check_regescrt(msg: Request | Response, data: bytes) -> None:
    [contact] = msg.contact
    assert _sip(contact.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)


def check_sdp01(msg: Request | Response, data: bytes) -> None:
    assert msg.headers.get_all("Accept") == ["text/nobodyKnowsThis"]
    assert len(msg.body) == 150


def check_inv2543(msg: Request | Response, data: bytes) -> None:
    assert msg.content_length is None  # no Content-Length: the body is the rest
    assert msg.body.startswith(b"v=0\r\n") and msg.body.endswith(b"RTP/AVP 0\r\n")
    assert msg.top_via.branch is None
    assert msg.from_.tag is None
    assert msg.max_forwards is None
    # On a stream the missing Content-Length is a framing error.
    with pytest.raises(RemoteProtocolError, match="Content-Length"):
        StreamParser().feed(data)


# -- RFC 5118 ------------------------------------------------------------------------


def check_ipv6_good(msg: Request | Response, data: bytes) -> None:
    assert _sip(_req(msg).uri).host == "[2001:db8::10]"
    assert msg.top_via.host == "[2001:db8::9:1]"
    assert _sip(msg.contact[0].uri).host == "[2001:db8::1]"


def check_port_ambiguous(msg: Request | Response, data: bytes) -> None:
    uri = _sip(_req(msg).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)  # one address, no port


def check_port_unambiguous(msg: Request | Response, data: bytes) -> None:
    uri = _sip(_req(msg).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


def check_received(msg: Request | Response, data: bytes) -> None:
    assert msg.top_via.host == "[2001:db8::9:1]"
    assert msg.top_via.received == "2001:db8::9:255"  # with or without brackets


def check_ipv6_in_sdp(msg: Request | Response, data: bytes) -> None:
    assert _sip(_req(msg).uri).host == "[2001:db8::10]"
    assert b"c=IN IP6 2001:db8::20" in msg.body
    assert len(msg.body) == msg.content_length


def check_mult_ip_in_header(msg: Request | Response, data: bytes) -> None:
    assert [(v.host, v.port) for v in msg.via] == [
        ("[2001:db8::9:1]", 6050),
        ("192.0.2.1", None),
        ("[2001:db8::9:255]", None),
    ]
    assert msg.via[2].received == "192.0.2.200"


def check_mult_ip_in_sdp(msg: Request | Response, data: bytes) -> None:
    assert b"c=IN IP4 192.0.2.1" in msg.body and b"c=IN IP6 2001:db8::1" in msg.body
    assert len(msg.body) == msg.content_length


def check_ipv4_mapped(msg: Request | Response, data: bytes) -> None:
    assert [(v.host, v.port) for v in msg.via] == [
        ("[::ffff:192.0.2.10]", 19823),
        ("[::ffff:192.0.2.2]", None),
    ]
    assert _sip(msg.contact[0].uri).host == "[::ffff:192.0.2.2]"
    assert len(msg.body) == msg.content_length


def check_3_colons(msg: Request | Response, data: bytes) -> None:
    assert _sip(_req(msg).uri).host == "[2001:db8:::192.0.2.1]"  # tolerated (§4.10)
    assert _sip(msg.to.uri).host == "[2001:db8:::192.0.2.1]"


def check_2_colons(msg: Request | Response, data: bytes) -> None:
    assert _sip(_req(msg).uri).host == "[2001:db8::192.0.2.1]"


VALID_4475: dict[str, Check] = {
    "wsinv": check_wsinv,
    "intmeth": check_intmeth,
    "esc01": check_esc01,
    "escnull": check_escnull,
    "esc02": check_esc02,
    "lwsdisp": check_lwsdisp,
    "longreq": check_longreq,
    "dblreq": check_dblreq,
    "semiuri": check_semiuri,
    "transports": check_transports,
    "mpart01": check_mpart01,
    "unreason": check_unreason,
    "noreason": check_noreason,
    "badbranch": check_badbranch,
    "baddate": check_baddate,
    "unkscm": check_unkscm,
    "novelsc": check_novelsc,
    "unksm2": check_unksm2,
    "bext01": check_bext01,
    "invut": check_invut,
    "regaut01": check_regaut01,
    "bcast": check_bcast,
    "zeromf": check_zeromf,
    "cparam01": check_cparam01,
    "cparam02": check_cparam02,
    "regescrt": check_regescrt,
    "sdp01": check_sdp01,
    "inv2543": check_inv2543,
}

# name -> (status the RFC asks for, why).  Responses (scalarlg, bigcode) are dropped by
# a receiver; the status is then only what the parser reports.
INVALID_4475: dict[str, tuple[int, str]] = {
    "badinv01": (400, "Via"),
    "clerr": (400, "Content-Length"),
    "ncl": (400, "Content-Length"),
    "scalar02": (400, "CSeq"),
    "scalarlg": (400, "CSeq"),
    "quotbal": (400, "quoted"),
    "ltgtruri": (400, "Request-URI"),
    "lwsruri": (400, "Request-Line"),
    "lwsstart": (400, "Request-Line"),
    "trws": (400, "Request-Line"),
    "escruri": (400, "Request-URI"),
    "regbadct": (400, "<>"),
    "badaspec": (400, "whitespace"),
    "baddn": (400, ""),
    "badvers": (505, "version"),
    "mismatch01": (400, "CSeq method"),
    "mismatch02": (501, "CSeq method"),
    "bigcode": (400, "Status-Code"),
    "insuf": (400, "missing"),
    "multi01": (400, "more than one"),
    "mcl01": (400, "Content-Length"),
    # Not described by RFC 4475 (INDEX.md: "unspecified"): no SIP-Version on the
    # Request-Line and a header line without a colon -- sipwire rejects it.
    "test": (400, "Request-Line"),
}

VALID_5118: dict[str, Check] = {
    "ipv6-good": check_ipv6_good,
    "port-ambiguous": check_port_ambiguous,
    "port-unambiguous": check_port_unambiguous,
    "via-received-param-with-delim": check_received,
    "via-received-param-no-delim": check_received,
    "ipv6-in-sdp": check_ipv6_in_sdp,
    "mult-ip-in-header": check_mult_ip_in_header,
    "mult-ip-in-sdp": check_mult_ip_in_sdp,
    "ipv4-mapped-ipv6": check_ipv4_mapped,
    "ipv6-bug-abnf-3-colons": check_3_colons,
    "ipv6-correct-abnf-2-colons": check_2_colons,
}
INVALID_5118 = {"ipv6-bad": (400, "IPv6")}
# The RFC 5118 archive files (bare LF, see rfc5118/INDEX.md) whose Content-Length
# exceeds the body: a datagram like that is clerr again (400).
ARCHIVE_BAD_LENGTH = {"ipv6-in-sdp", "mult-ip-in-sdp"}


def _files(folder: pathlib.Path) -> set[str]:
    return {p.stem for p in folder.glob("*.dat")}


def test_every_file_is_covered() -> None:
    assert _files(RFC4475) == VALID_4475.keys() | INVALID_4475.keys()
    assert len(_files(RFC4475)) == 50
    assert _files(RFC5118) == VALID_5118.keys() | INVALID_5118.keys()
    assert _files(RFC5118 / "wire") == _files(RFC5118)


def test_corpus_bytes_are_intact() -> None:
    """The INDEX.md SHA-256 prefixes match (CRLFs not normalised by git)."""
    for folder in (RFC4475, RFC5118):
        index = (folder / "INDEX.md").read_text(encoding="utf-8")
        for path in folder.glob("*.dat"):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            assert f"`{digest}`" in index, path.name
    assert b"\r\n" in (RFC4475 / "wsinv.dat").read_bytes()


def _check_valid(data: bytes, check: Check) -> None:
    msg = parse_message(data)
    check(msg, data)
    lazy = parse_message(data, validate=False)
    check(lazy, data)
    assert lazy == msg
    if check is not check_dblreq:
        assert msg.to_bytes() == data  # unchanged: the exact input
    msg.headers.add("X-Touched", "1")  # changed: re-serialized, parses back the same
    again = parse_message(msg.to_bytes())
    if "Content-Length" not in msg.headers:  # inv2543: serializing adds it (§18.3)
        again.headers.remove("Content-Length")
    assert again == msg


@pytest.mark.parametrize("name", sorted(VALID_4475))
def test_rfc4475_valid(name: str) -> None:
    _check_valid((RFC4475 / f"{name}.dat").read_bytes(), VALID_4475[name])


@pytest.mark.parametrize("name", sorted(INVALID_4475))
def test_rfc4475_invalid(name: str) -> None:
    status, reason = INVALID_4475[name]
    data = (RFC4475 / f"{name}.dat").read_bytes()
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert info.value.status_hint == status
    assert reason.lower() in info.value.reason.lower()
    err = info.value
    if isinstance(err, InvalidMessage) and isinstance(err.message, Request):
        # A server can still answer it statelessly with the hinted status.
        response = make_response(err.message, err.status_hint)
        assert response.status == status
        assert response.headers.values("Via") == err.message.headers.values("Via")


@pytest.mark.parametrize("name", sorted(VALID_5118))
def test_rfc5118_valid(name: str) -> None:
    _check_valid((RFC5118 / "wire" / f"{name}.dat").read_bytes(), VALID_5118[name])


@pytest.mark.parametrize("name", sorted(VALID_5118))
def test_rfc5118_archive_bare_lf(name: str) -> None:
    data = (RFC5118 / f"{name}.dat").read_bytes()
    assert b"\r" not in data
    if name in ARCHIVE_BAD_LENGTH:
        with pytest.raises(RemoteProtocolError, match="Content-Length") as info:
            parse_message(data)
        assert info.value.status_hint == 400
        return
    msg = parse_message(data)
    VALID_5118[name](msg, data)
    assert msg.to_bytes() == data


@pytest.mark.parametrize("folder", [RFC5118, RFC5118 / "wire"], ids=["archive", "wire"])
def test_rfc5118_invalid(folder: pathlib.Path) -> None:
    with pytest.raises(RemoteProtocolError, match="IPv6") as info:
        parse_message((folder / "ipv6-bad.dat").read_bytes())
    assert info.value.status_hint == 400


def test_valid_corpus_through_a_stream() -> None:
    """Every valid message with a Content-Length, back to back on one stream."""
    datas = []
    for name in sorted(VALID_4475):
        data = (RFC4475 / f"{name}.dat").read_bytes()
        if name == "dblreq":
            data = data[: data.index(b"\r\n\r\n") + 4]
        if name != "inv2543":  # no Content-Length
            datas.append(data)
    datas += [(RFC5118 / "wire" / f"{name}.dat").read_bytes() for name in sorted(VALID_5118)]
    parser = StreamParser()
    out = parser.feed(b"\r\n\r\n".join(datas))
    messages = [m for m in out if not isinstance(m, KeepAlive)]
    assert out.count(KeepAlive.PING) == len(datas) - 1
    assert [m.to_bytes() for m in messages] == datas
