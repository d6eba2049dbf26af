"""The real-peer harness works: every peer talks to another peer on loopback (no sipwire)."""

from __future__ import annotations

import pathlib

import pytest

from peers.audio import dominant_frequency, read_wav, rms, write_tone
from peers.baresip import Baresip, BaresipAccount
from peers import sipsak
from peers.kamailio import Kamailio
from peers.linphone import Linphone
from peers.procs import Procs
from peers.sipp import Sipp, register_scenario, uas_challenge_scenario

pytestmark = pytest.mark.peer


def test_baresip_calls_baresip_with_audio(procs: Procs, tmp_path: pathlib.Path) -> None:
    a = Baresip(procs, tmp_path, "a", name="baresip-a", tone_hz=1000)
    b = Baresip(procs, tmp_path, "b", name="baresip-b", tone_hz=440)
    a.dial(b.uri)
    est_a = a.wait_event("CALL_ESTABLISHED")
    est_b = b.wait_event("CALL_ESTABLISHED")
    assert est_a["direction"] == "outgoing"
    assert est_b["direction"] == "incoming"
    b.wait_audio(1.0)
    a.wait_audio(1.0)
    assert "ESTABLISHED" in a.listcalls()
    a.hangup()
    a.wait_event("CALL_CLOSED")
    b.wait_event("CALL_CLOSED")
    heard_by_b = b.wait_recording("dec")
    heard_by_a = a.wait_recording("dec")
    samples, rate = read_wav(heard_by_b)
    assert rms(samples) > 0.05
    assert abs(dominant_frequency(heard_by_b) - 1000) < 10
    assert abs(dominant_frequency(heard_by_a) - 440) < 10


@pytest.mark.parametrize("transport", [None, "t1"], ids=["udp", "tcp"])
def test_sipp_uac_to_sipp_uas(procs: Procs, tmp_path: pathlib.Path, transport: str | None) -> None:
    uas = Sipp(
        procs,
        tmp_path,
        "uas",
        name="uas",
        transport=transport,
        calls=10,
        timewait_ms=0 if transport else 100,
    )
    uas.wait_ready()
    uac = Sipp(
        procs,
        tmp_path,
        "uac",
        name="uac",
        remote=uas.address,
        transport=transport,
        calls=10,
        rate=100,
    )
    client = uac.wait(30)
    assert (client.returncode, client.successful, client.failed) == (0, 10, 0), client
    server = uas.wait(30)
    assert (server.returncode, server.successful, server.failed) == (0, 10, 0), server


def test_sipp_register_digest_auth_with_inf(procs: Procs, tmp_path: pathlib.Path) -> None:
    uas = Sipp(
        procs,
        tmp_path,
        uas_challenge_scenario(),
        name="registrar",
        calls=3,
        keys={"user": "alice", "pass": "s3cret"},
    )
    uas.wait_ready()
    good = Sipp(
        procs,
        tmp_path,
        register_scenario(),
        name="good",
        remote=uas.address,
        service="alice",
        auth=("alice", "s3cret"),
        calls=1,
    )
    assert good.wait(20).successful == 1
    rows = [
        ["alice", "[authentication username=alice password=s3cret]"],
        ["alice", "[authentication username=alice password=wrong]"],
    ]
    mixed = Sipp(
        procs,
        tmp_path,
        register_scenario(user="[field0]", authentication="[field1]"),
        name="mixed",
        remote=uas.address,
        inf=rows,
        calls=2,
        rate=10,
    )
    res = mixed.wait(20)
    assert (res.returncode, res.successful, res.failed) == (1, 1, 1), res
    assert "403 Forbidden" in res.errors


def test_linphonec_calls_baresip(procs: Procs, tmp_path: pathlib.Path) -> None:
    bob = Baresip(procs, tmp_path, BaresipAccount("bob", answermode="manual"), tone_hz=440)
    lin = Linphone(
        procs,
        tmp_path,
        "lin",
        play=write_tone(tmp_path / "tone.wav", 1000, 10.0),
        record=tmp_path / "lin-heard.wav",
    )
    call = lin.call(bob.uri)
    incoming = bob.wait_event("CALL_INCOMING")
    assert "sip:lin@127.0.0.1" in incoming["peeruri"]
    bob.answer()
    lin.wait_connected(call)
    assert bob.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
    bob.wait_audio(1.0)
    bob.hangup()
    bob.wait_event("CALL_CLOSED")
    lin.wait_ended(call)
    assert abs(dominant_frequency(bob.wait_recording()) - 1000) < 10
    assert abs(dominant_frequency(tmp_path / "lin-heard.wav") - 440) < 10


def test_baresip_calls_linphonec(procs: Procs, tmp_path: pathlib.Path) -> None:
    bob = Baresip(procs, tmp_path, "bob", tone_hz=440)
    lin = Linphone(procs, tmp_path, "lin")
    bob.dial(lin.uri)
    call = lin.wait_incoming()
    lin.answer(call)
    lin.wait_connected(call)
    bob.wait_event("CALL_ESTABLISHED")
    lin.terminate(call)
    assert lin.wait_ended(call).group(1) == "No error"
    assert bob.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"
    # and again with linphonec answering by itself
    lin.autoanswer(True)
    mark = lin.p.mark()
    bob.dial(lin.uri)
    second = lin.wait_incoming(start=mark)
    lin.wait_connected(second, start=mark)
    bob.wait_event("CALL_ESTABLISHED")
    bob.hangup()
    bob.wait_event("CALL_CLOSED")
    lin.wait_ended(second, start=mark)


def test_sipsak_options_to_baresip(procs: Procs, tmp_path: pathlib.Path) -> None:
    bob = Baresip(procs, tmp_path, "bob")
    res = sipsak.options(procs, bob.uri)
    assert (res.returncode, res.status) == (0, 200), res.output
    assert "baresip" in res.output  # the reply's Server header


def test_kamailio_registrar_sipsak_and_baresip(procs: Procs, tmp_path: pathlib.Path) -> None:
    domain = "example.test"
    kam = Kamailio.registrar(procs, tmp_path, {"alice": "alice-pw", "bob": "bob-pw"},
                             domain=domain)
    ping = sipsak.options(procs, f"sip:{domain}", proxy=kam.address)
    assert (ping.returncode, ping.status) == (0, 200), ping.output
    good = sipsak.register(procs, f"sip:alice@{domain}", proxy=kam.address,
                           contact="sip:alice@127.0.0.1:5999", user="alice", password="alice-pw")
    assert (good.returncode, good.status) == (0, 200), good.output
    bad = sipsak.register(procs, f"sip:alice@{domain}", proxy=kam.address,
                          contact="sip:alice@127.0.0.1:5999", user="alice", password="nope")
    assert bad.returncode == 2 and bad.status == 401, bad.output

    bob = Baresip(procs, tmp_path, BaresipAccount(
        "bob", domain=domain, password="bob-pw", outbound=kam.outbound(), regint=60))
    bob.wait_event("REGISTER_OK")
    assert "OK" in bob.reginfo()
    alice = Baresip(procs, tmp_path, BaresipAccount(
        "alice", domain=domain, password="alice-pw", outbound=kam.outbound(), regint=0),
        tone_hz=1000)
    alice.dial(f"sip:bob@{domain}")
    alice.wait_event("CALL_ESTABLISHED")
    assert bob.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
    alice.hangup()
    alice.wait_event("CALL_CLOSED")
    bob.wait_event("CALL_CLOSED")
