"""The real-peer harness works: each peer talks to another peer on loopback (no sipwire).

The first tests check the harness plumbing itself (ports, process groups, bounded waits,
audio analysis) and need no peer binary; the ``peer`` tests prove every wrapper against a
real peer, so that later failures against sipwire point at sipwire, not at the harness.
"""

from __future__ import annotations

import pathlib
import signal
import socket

import pytest

from peers import audio, sipsak
from peers.audio import dominant_frequency, read_wav, rms, write_tone
from peers.baresip import Baresip, BaresipAccount
from peers.kamailio import Kamailio
from peers.linphone import Linphone
from peers.ports import free_port, free_port_both, is_bound, wait_bound
from peers.procs import PeerTimeoutError, Procs, wait_until
from peers.sipp import Sipp, register_scenario, uas_challenge_scenario
from peers.sipvicious import svwar
from peers.tshark import Capture

peer = pytest.mark.peer

# -- harness plumbing (no peers needed) ----------------------------------------------------


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port("udp") for _ in range(20)} | {free_port("tcp") for _ in range(20)}
    assert len(ports) == 40
    both = free_port_both()
    assert both not in ports
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        u.bind(("127.0.0.1", both))
        t.bind(("127.0.0.1", both))
        t.listen()
        assert is_bound(both, "udp") and is_bound(both, "tcp")
        wait_bound(both, ("udp", "tcp"), timeout=1)
    assert not is_bound(both, "udp")
    pair = free_port_both(span=2)
    assert not any(is_bound(p, k) for p in (pair, pair + 1) for k in ("udp", "tcp"))


def _gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_process_group_is_killed_and_waits_are_bounded(procs: Procs) -> None:
    # The shell ignores SIGTERM and has a child: stop() must escalate and kill the group.
    proc = procs.start(
        "stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & echo child $!; echo ready; wait"]
    )
    child = int(proc.wait_for(r"child (\d+)", 5).group(1))
    proc.wait_for("ready", 5)
    with pytest.raises(PeerTimeoutError, match="never-printed"):
        proc.wait_for("never-printed", 0.2)
    assert proc.stop(term_timeout=0.3) == -signal.SIGKILL
    wait_until(lambda: _gone(child), 5, message="the child to die")
    assert "ready" in proc.log_path.read_text()


def test_expect_cursor_and_exit_detection(procs: Procs) -> None:
    proc = procs.start("echo", ["sh", "-c", "echo one; echo two; echo one"])
    assert proc.expect("one").start() == 0
    assert proc.expect("one").start() > 0  # the second "one", after the cursor
    assert proc.wait(5) == 0
    with pytest.raises(PeerTimeoutError, match="exited"):
        proc.expect("one", 5)


def test_audio_measures_a_generated_tone(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tone(tmp_path / "t.wav", 697, 1.0, rate=8000, amplitude=0.25)
    samples, rate = read_wav(path)
    assert rate == 8000 and len(samples) == 8000
    assert rms(samples) == pytest.approx(0.25 / 2**0.5, rel=0.01)
    assert dominant_frequency(path) == pytest.approx(697, abs=1)
    assert audio.wav_is_complete(path) and audio.wav_seconds(path) == pytest.approx(1.0)
    monkeypatch.setattr(audio, "_np", None)  # the pure-Python Goertzel fallback
    assert dominant_frequency(path) == pytest.approx(697, abs=1)


# -- SIPp --------------------------------------------------------------------------------


@peer
@pytest.mark.parametrize("transport", [None, "t1", "tn"], ids=["udp", "tcp", "tcp-per-call"])
def test_sipp_uac_to_sipp_uas(procs: Procs, tmp_path: pathlib.Path, transport: str | None) -> None:
    # Over TCP the uas must not linger in timewait (see peers.sipp notes).
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


@peer
def test_sipp_lost_packets_are_retransmitted(procs: Procs, tmp_path: pathlib.Path) -> None:
    # The uas keeps its default 4 s timewait so that it still answers retransmitted BYEs.
    uas = Sipp(procs, tmp_path, "uas", name="uas")
    uas.wait_ready()
    # T1 = 100 ms and at most 4 retransmissions: a call that loses every copy of a message
    # fails within ~1.5 s instead of ~31 s. Some calls may fail; retransmissions must happen.
    uac = Sipp(
        procs,
        tmp_path,
        "uac",
        name="uac",
        remote=uas.address,
        calls=10,
        rate=100,
        lost=20,
        retrans_ms=100,
        max_retrans=4,
    )
    client = uac.wait(30)
    assert client.created == 10, client
    assert client.retransmissions > 0, client
    assert client.successful + client.failed == 10, client


@peer
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


# -- baresip / linphonec ---------------------------------------------------------------------


@peer
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_calls_baresip_with_audio(
    procs: Procs, tmp_path: pathlib.Path, transport: str
) -> None:
    a = Baresip(
        procs, tmp_path, BaresipAccount("a", transport=transport), name="baresip-a", tone_hz=1000
    )
    b = Baresip(
        procs, tmp_path, BaresipAccount("b", transport=transport), name="baresip-b", tone_hz=440
    )
    a.dial(b.uri)
    assert a.wait_event("CALL_ESTABLISHED")["direction"] == "outgoing"
    assert b.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
    assert "ESTABLISHED" in a.listcalls()
    b.wait_audio(1.0)
    a.wait_audio(1.0)
    a.send_dtmf("5")
    assert b.wait_event("CALL_DTMF_START")["param"] == "5"
    a.hangup()
    a.wait_event("CALL_CLOSED")
    assert b.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"
    heard_by_b = b.wait_recording("dec")
    samples, _ = read_wav(heard_by_b)
    assert rms(samples) > 0.05
    assert dominant_frequency(heard_by_b) == pytest.approx(1000, abs=10)
    assert dominant_frequency(a.wait_recording("dec")) == pytest.approx(440, abs=10)


@peer
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
    assert dominant_frequency(bob.wait_recording()) == pytest.approx(1000, abs=10)
    assert dominant_frequency(tmp_path / "lin-heard.wav") == pytest.approx(440, abs=10)


@peer
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


# -- sipsak / Kamailio --------------------------------------------------------------------


@peer
def test_sipsak_options_to_baresip_captured_by_tshark(procs: Procs, tmp_path: pathlib.Path) -> None:
    bob = Baresip(procs, tmp_path, "bob")
    cap = Capture(procs, tmp_path, [bob.sip_port]).start()
    res = sipsak.options(procs, bob.uri)
    assert (res.returncode, res.status) == (0, 200), res.output
    assert "baresip" in res.output  # the reply's Server header
    res = sipsak.options(procs, bob.uri, transport="tcp")
    assert (res.returncode, res.status) == (0, 200), res.output
    cap.stop()
    seen = [(p.transport, p.method_or_status) for p in cap.sip_messages()]
    assert seen == [("udp", "OPTIONS"), ("udp", "200"), ("tcp", "OPTIONS"), ("tcp", "200")]
    nobody = sipsak.options(procs, f"sip:127.0.0.1:{free_port('udp')}", extra=["-Z", "50"])
    assert (nobody.returncode, nobody.status) == (3, None), nobody.output


@peer
def test_kamailio_registrar_sipsak_and_baresip(procs: Procs, tmp_path: pathlib.Path) -> None:
    domain = "example.test"
    kam = Kamailio.registrar(procs, tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, domain=domain)
    ping = sipsak.options(procs, f"sip:{domain}", proxy=kam.address)
    assert (ping.returncode, ping.status) == (0, 200), ping.output
    good = sipsak.register(
        procs,
        f"sip:alice@{domain}",
        proxy=kam.address,
        contact="sip:alice@127.0.0.1:5999",
        user="alice",
        password="alice-pw",
    )
    assert (good.returncode, good.status) == (0, 200), good.output
    bad = sipsak.register(
        procs,
        f"sip:alice@{domain}",
        proxy=kam.address,
        contact="sip:alice@127.0.0.1:5999",
        user="alice",
        password="nope",
    )
    assert (bad.returncode, bad.status) == (2, 401), bad.output

    bob = Baresip(
        procs,
        tmp_path,
        BaresipAccount("bob", domain=domain, password="bob-pw", outbound=kam.outbound(), regint=60),
    )
    bob.wait_event("REGISTER_OK")
    assert "OK" in bob.reginfo()
    mallory = Baresip(
        procs,
        tmp_path,
        BaresipAccount(
            "alice", domain=domain, password="wrong", outbound=kam.outbound(), regint=60
        ),
    )
    assert mallory.wait_event("REGISTER_FAIL")["param"] == "401 Unauthorized"
    # OPTIONS reach registered users only: svwar tells bob (registered) from the others.
    scan = svwar(
        procs, kam.port, ["alice", "bob", "carol"], tmp_path, method="OPTIONS", domain=domain
    )
    assert scan.rows == [("bob", "noauth")], scan.output
    alice = Baresip(
        procs,
        tmp_path,
        BaresipAccount("alice", domain=domain, password="alice-pw", outbound=kam.outbound()),
        tone_hz=1000,
    )
    alice.dial(f"sip:bob@{domain}")
    alice.wait_event("CALL_ESTABLISHED")
    assert bob.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
    bob.wait_audio(0.5)
    alice.hangup()
    alice.wait_event("CALL_CLOSED")
    bob.wait_event("CALL_CLOSED")
    assert dominant_frequency(bob.wait_recording()) == pytest.approx(1000, abs=10)


@peer
def test_linphonec_registers_with_kamailio_and_takes_a_call(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    domain = "example.test"
    kam = Kamailio.registrar(procs, tmp_path, {"alice": "alice-pw", "lin": "lin-pw"}, domain=domain)
    lin = Linphone(procs, tmp_path, "lin")
    assert not lin.registered()
    lin.register(f"sip:lin@{domain}", f"sip:{kam.address}", "lin-pw")
    lin.autoanswer(True)
    alice = Baresip(
        procs,
        tmp_path,
        BaresipAccount("alice", domain=domain, password="alice-pw", outbound=kam.outbound()),
    )
    alice.dial(f"sip:lin@{domain}")
    alice.wait_event("CALL_ESTABLISHED")
    lin.wait_connected()
    alice.hangup()  # the BYE goes to linphone's GRUU through Kamailio
    alice.wait_event("CALL_CLOSED")
    lin.wait_ended()
