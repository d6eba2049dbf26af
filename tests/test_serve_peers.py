"""Issue 4's proof: real phones register with `sipwire serve` (digest auth) and call each
other through it; SIPp drives registrations and calls through the proxy; sipsak pings,
registers, queries and removes bindings.

Every test starts its own server on free ports with its own SQLite database.
"""

from __future__ import annotations

import pathlib

import pytest

from peers import sipsak
from peers.audio import dominant_frequency, write_tone
from peers.baresip import Baresip, BaresipAccount
from peers.linphone import Linphone
from peers.procs import Procs
from peers.sipp import Sipp, register_scenario
from peers.sipwire_serve import SipwireServe

pytestmark = pytest.mark.peer

TRANSPORTS = ["udp", "tcp"]


def phone(
    procs: Procs,
    tmp: pathlib.Path,
    srv: SipwireServe,
    user: str,
    transport: str,
    tone: int,
    **kw: object,
) -> Baresip:
    account = BaresipAccount(
        user,
        domain="localhost",
        password=f"{user}-pw",
        outbound=srv.outbound(transport),
        transport=transport,
        regint=600,
        **kw,
    )  # type: ignore[arg-type]
    b = Baresip(procs, tmp, account, name=f"baresip-{user}", tone_hz=tone)
    assert b.wait_event("REGISTER_OK", timeout=15)
    return b


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_baresip_calls_baresip_through_serve(
    procs: Procs, tmp_path: pathlib.Path, transport: str
) -> None:
    srv = SipwireServe(procs, tmp_path, {"alice": "alice-pw", "bob": "bob-pw"})
    alice = phone(procs, tmp_path, srv, "alice", transport, 1000)
    bob = phone(procs, tmp_path, srv, "bob", transport, 440)
    alice.dial("sip:bob@localhost")
    assert alice.wait_event("CALL_ESTABLISHED", timeout=15)["direction"] == "outgoing"
    assert bob.wait_event("CALL_ESTABLISHED", timeout=15)["direction"] == "incoming"
    bob.wait_audio(1.0)
    alice.wait_audio(1.0)
    bob.hangup()  # the callee hangs up: the BYE goes back through the proxy (Record-Route)
    bob.wait_event("CALL_CLOSED")
    assert alice.wait_event("CALL_CLOSED", timeout=15)["param"] == "Connection reset by peer"
    assert dominant_frequency(bob.wait_recording("dec")) == pytest.approx(1000, abs=10)
    assert dominant_frequency(alice.wait_recording("dec")) == pytest.approx(440, abs=10)


def lin_register(lin: Linphone, srv: SipwireServe, user: str, transport: str) -> None:
    lin.register(f"sip:{user}@localhost", f"sip:{srv.address};transport={transport}", f"{user}-pw")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_linphone_calls_baresip_through_serve(
    procs: Procs, tmp_path: pathlib.Path, transport: str
) -> None:
    srv = SipwireServe(procs, tmp_path, {"lin": "lin-pw", "bob": "bob-pw"})
    bob = phone(procs, tmp_path, srv, "bob", transport, 440)
    lin = Linphone(
        procs,
        tmp_path,
        "lin",
        play=write_tone(tmp_path / "tone.wav", 1000, 10.0),
        record=tmp_path / "lin-heard.wav",
    )
    lin_register(lin, srv, "lin", transport)
    # linphonec sends out-of-dialog requests straight to the Request-URI's host unless told
    # otherwise: address the callee at the server itself (its address is the primary domain).
    call = lin.call(f"sip:bob@{srv.address};transport={transport}")
    lin.wait_connected(call, timeout=15)
    assert bob.wait_event("CALL_ESTABLISHED", timeout=15)["direction"] == "incoming"
    bob.wait_audio(1.0)
    lin.terminate(call)  # the caller hangs up this time
    lin.wait_ended(call)
    assert bob.wait_event("CALL_CLOSED", timeout=15)["param"] == "Connection reset by peer"
    assert dominant_frequency(bob.wait_recording()) == pytest.approx(1000, abs=10)
    assert dominant_frequency(tmp_path / "lin-heard.wav") == pytest.approx(440, abs=10)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_baresip_calls_linphone_through_serve(
    procs: Procs, tmp_path: pathlib.Path, transport: str
) -> None:
    srv = SipwireServe(procs, tmp_path, {"lin": "lin-pw", "bob": "bob-pw"})
    bob = phone(procs, tmp_path, srv, "bob", transport, 440)
    lin = Linphone(
        procs,
        tmp_path,
        "lin",
        play=write_tone(tmp_path / "tone.wav", 700, 10.0),
        record=tmp_path / "lin-heard.wav",
    )
    lin_register(lin, srv, "lin", transport)
    bob.dial("sip:lin@localhost")
    call = lin.wait_incoming(timeout=15)
    lin.answer(call)
    lin.wait_connected(call)
    bob.wait_event("CALL_ESTABLISHED", timeout=15)
    bob.wait_audio(1.0)
    lin.terminate(call)  # the callee hangs up
    lin.wait_ended(call)
    assert bob.wait_event("CALL_CLOSED", timeout=15)["param"] == "Connection reset by peer"
    assert dominant_frequency(tmp_path / "lin-heard.wav") == pytest.approx(440, abs=10)
    assert dominant_frequency(bob.wait_recording()) == pytest.approx(700, abs=10)


def test_wrong_password_is_refused_and_unknown_user_gets_404(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    srv = SipwireServe(procs, tmp_path, {"alice": "alice-pw", "bob": "bob-pw", "carol": "c-pw"})
    bad = Baresip(
        procs,
        tmp_path,
        BaresipAccount(
            "bob", domain="localhost", password="nope", outbound=srv.outbound(), regint=600
        ),
        name="baresip-bad",
    )
    assert "401" in str(bad.wait_event("REGISTER_FAIL", timeout=15).get("param"))
    alice = phone(procs, tmp_path, srv, "alice", "udp", 1000)
    alice.dial("sip:nobody@localhost")  # no such user
    assert "404" in str(alice.wait_event("CALL_CLOSED", timeout=15).get("param"))
    alice.dial("sip:carol@localhost")  # a user who exists but is not registered
    assert "480" in str(alice.wait_event("CALL_CLOSED", timeout=15).get("param"))


# -- SIPp ---------------------------------------------------------------------------------


def sipp_register_rows(n: int) -> list[list[str]]:
    return [[f"user{i}", f"[authentication username=user{i} password=pw{i}]"] for i in range(n)]


def with_user_agent(xml: str) -> str:
    """SIPp offers no User-Agent; ours lets the server's MD5-only quirk list match SIPp."""
    return xml.replace("Max-Forwards: 70\n", "Max-Forwards: 70\n      User-Agent: SIPp\n")


def test_sipp_registers_many_users_with_digest(procs: Procs, tmp_path: pathlib.Path) -> None:
    n = 30
    srv = SipwireServe(procs, tmp_path, {f"user{i}": f"pw{i}" for i in range(n)})
    scenario = with_user_agent(
        register_scenario(user="[field0]", domain="localhost", authentication="[field1]")
    )
    sipp = Sipp(
        procs, tmp_path, scenario, remote=srv.address, calls=n, rate=50, inf=sipp_register_rows(n)
    )
    result = sipp.wait(timeout=60)
    assert (result.successful, result.failed) == (n, 0), result
    # A wrong password for one of them is refused.
    bad = with_user_agent(
        register_scenario(
            user="user0",
            domain="localhost",
            expect=401,
            authentication="[authentication username=user0 password=x]",
        )
    )
    result = Sipp(procs, tmp_path, bad, remote=srv.address, calls=1).wait(timeout=30)
    assert (result.successful, result.failed) == (1, 0), result


def register_uas(
    procs: Procs,
    tmp: pathlib.Path,
    srv: SipwireServe,
    user: str,
    scenario: str = "uas",
    **kw: object,
) -> Sipp:
    """A SIPp UAS registered as ``user`` (via sipsak, which REGISTERs its contact)."""
    uas = Sipp(procs, tmp, scenario, name=f"uas-{user}", timewait_ms=0, global_timeout=90, **kw)  # type: ignore[arg-type]
    uas.wait_ready()
    res = sipsak.register(
        procs,
        f"sip:{user}@localhost",
        proxy=srv.address,
        contact=f"sip:{user}@127.0.0.1:{uas.port}",
        password=f"{user}-pw",
        user=user,
        expires=600,
    )
    assert res.returncode == 0, res.output
    return uas


def caller_scenario(expect: str) -> str:
    """INVITE sip:[service]@localhost through the proxy, expecting the given final response
    (and ACK for a non-2xx is the proxy's job toward the UAS, ours toward the proxy)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="invite expecting {expect}">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@localhost SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@localhost>;tag=[pid]T[call_number]
      To: <sip:[service]@localhost>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: SIPp
      Content-Length: 0

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{expect}"/>
  <send><![CDATA[
      ACK sip:[service]@localhost SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@localhost>;tag=[pid]T[call_number]
      To: <sip:[service]@localhost>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
</scenario>
"""


def test_sipp_call_through_proxy_to_registered_uas(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, {"bob": "bob-pw"}, extra_args=["--no-auth"])
    uas = register_uas(procs, tmp_path, srv, "bob", calls=20)
    uac = Sipp(
        procs, tmp_path, "uac", remote=srv.address, service="bob", calls=20, rate=20, name="uac"
    )
    result = uac.wait(timeout=60)
    assert (result.successful, result.failed) == (20, 0), result
    assert uas.wait(timeout=30).successful == 20


def test_sipp_unknown_user_404_and_busy_486(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, {"bob": "bob-pw"}, extra_args=["--no-auth"])
    busy = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy">
  <recv request="INVITE"/>
  <send><![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]B[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <recv request="ACK"/>
</scenario>
"""
    uas = register_uas(procs, tmp_path, srv, "bob", busy, calls=1)
    r = Sipp(
        procs,
        tmp_path,
        caller_scenario("486"),
        remote=srv.address,
        service="bob",
        calls=1,
        name="caller-busy",
    ).wait(timeout=30)
    assert (r.successful, r.failed) == (1, 0), r
    assert uas.wait(timeout=30).successful == 1
    r = Sipp(
        procs,
        tmp_path,
        caller_scenario("404"),
        remote=srv.address,
        service="nobody",
        calls=1,
        name="caller-404",
    ).wait(timeout=30)
    assert (r.successful, r.failed) == (1, 0), r


def ringing_phone(procs: Procs, tmp: pathlib.Path, srv: SipwireServe, user: str) -> Baresip:
    """A registered baresip that rings (180) and never answers by itself."""
    return phone(procs, tmp, srv, user, "udp", 440, answermode="manual")


CANCEL_CALLER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cancel before answer">
  <!-- CANCEL and the ACK of the 487 carry the INVITE's branch (RFC 3261 §9.1, §17.1.1.3) -->
  <send retrans="500"><![CDATA[
      INVITE sip:bob@localhost SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv
      From: <sip:caller@localhost>;tag=[pid]C[call_number]
      To: <sip:bob@localhost>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <send><![CDATA[
      CANCEL sip:bob@localhost SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv
      From: <sip:caller@localhost>;tag=[pid]C[call_number]
      To: <sip:bob@localhost>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
      ACK sip:bob@localhost SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv
      From: <sip:caller@localhost>;tag=[pid]C[call_number]
      To: <sip:bob@localhost>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
</scenario>
"""


def test_sipp_cancel_before_answer_gets_487(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, {"bob": "bob-pw"}, extra_args=["--no-auth"])
    bob = ringing_phone(procs, tmp_path, srv, "bob")
    r = Sipp(procs, tmp_path, CANCEL_CALLER, remote=srv.address, calls=1, name="caller").wait(
        timeout=40
    )
    assert (r.successful, r.failed) == (1, 0), r
    bob.wait_event("CALL_INCOMING")
    bob.wait_event("CALL_CLOSED", timeout=15)  # the proxy relayed the CANCEL to the phone


def test_sipp_forking_to_two_uas_one_answers(procs: Procs, tmp_path: pathlib.Path) -> None:
    """Two contacts for bob: a SIPp UAS that answers and a baresip that rings; the proxy
    forks in parallel, relays the 200 and CANCELs the ringing branch."""
    srv = SipwireServe(procs, tmp_path, {"bob": "bob-pw"}, extra_args=["--no-auth"])
    ringer = ringing_phone(procs, tmp_path, srv, "bob")
    answering = register_uas(procs, tmp_path, srv, "bob", calls=1, extra_args=["-d", "1500"])
    uac = Sipp(procs, tmp_path, "uac", remote=srv.address, service="bob", calls=1, name="uac")
    result = uac.wait(timeout=40)
    assert (result.successful, result.failed) == (1, 0), result
    assert answering.wait(timeout=30).successful == 1
    assert ringer.wait_event("CALL_INCOMING")
    closed = ringer.wait_event("CALL_CLOSED", timeout=15)  # the proxy's CANCEL
    assert closed is not None


# -- sipsak -------------------------------------------------------------------------------


def test_sipsak_options_register_query_remove(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, {"alice": "alice-pw"})
    ping = sipsak.options(procs, f"sip:{srv.address}")
    assert (ping.returncode, ping.status) == (0, 200), ping.output
    reg = sipsak.register(
        procs,
        "sip:alice@localhost",
        proxy=srv.address,
        contact="sip:alice@127.0.0.1:5999",
        password="alice-pw",
        user="alice",
        expires=300,
    )
    assert reg.returncode == 0, reg.output
    query = srv.sipsak_usrloc("alice", "alice-pw")
    assert "sip:alice@127.0.0.1:5999" in query.output, query.output
    remove = srv.sipsak_usrloc("alice", "alice-pw", contact="sip:alice@127.0.0.1:5999", expires=0)
    assert remove.returncode == 0, remove.output
    query = srv.sipsak_usrloc("alice", "alice-pw")
    assert "sip:alice@127.0.0.1:5999" not in query.output.split("SIP/2.0 200")[-1], query.output
