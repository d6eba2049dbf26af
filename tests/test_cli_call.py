"""``sipwire call`` and ``sipwire phone`` as a user runs them, against ``sipwire serve``:
exit statuses, the progress lines, audio and DTMF end to end, interactive answering,
un-REGISTER on SIGTERM.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

import pytest

from peers.audio import dominant_frequency, write_tone
from peers.procs import PeerProcess, Procs
from peers.sipwire_serve import SipwireServe

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
SIPWIRE = [sys.executable, "-m", "sipwire"]


def call(
    srv: SipwireServe, *args: str, password: str = "alice-pw", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``sipwire call`` as alice; returns the CompletedProcess."""
    argv = [
        *SIPWIRE,
        "call",
        *args,
        "--user",
        "alice",
        "--password",
        password,
        "--server",
        srv.address,
        "--domain",
        srv.domain,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def phone(procs: Procs, srv: SipwireServe, *args: str) -> PeerProcess:
    """Start ``sipwire phone`` as bob and wait until it is registered."""
    proc = procs.start(
        "sipwire-phone",
        [
            *SIPWIRE,
            "phone",
            "--user",
            "bob",
            "--password",
            "bob-pw",
            "--server",
            srv.address,
            "--domain",
            srv.domain,
            *args,
        ],
        stdin=True,
    )
    proc.wait_for(r"registered sip:bob@localhost for \d+ s", 30)
    return proc


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_call_plays_and_sends_dtmf_to_an_auto_answering_phone(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    bob = phone(procs, srv, "--auto-answer", "--record", str(tmp_path / "bob.wav"))
    tone = write_tone(tmp_path / "tone.wav", 1000, 1.5)
    done = call(srv, "sip:bob@localhost", "--play", str(tone), "--dtmf", "12#")
    assert done.returncode == 0, done.stdout + done.stderr
    out = lines(done.stdout)
    assert out[:2] == [
        f"registering sip:alice@localhost at {srv.address} (udp)",
        "registered sip:alice@localhost for 3600 s",
    ]
    assert "calling sip:bob@localhost" in out
    assert "answered (200 OK)" in out
    assert out[-2:] == ["ended by us: local BYE", "unregistered"]
    bob.wait_for(r"ended by the peer: remote BYE", 10)
    assert "incoming call from sip:alice@localhost" in bob.output
    for digit in "12#":
        assert f"DTMF received: {digit}" in bob.output
    assert dominant_frequency(tmp_path / "bob.wav") == pytest.approx(1000, abs=10)
    # SIGTERM: the phone un-REGISTERs and exits 0; bob cannot be called any more
    bob.signal(signal.SIGTERM)
    assert bob.wait(10) == 0
    assert "unregistered" in bob.output
    gone = call(srv, "sip:bob@localhost", "--timeout", "10")
    assert gone.returncode == 1
    assert "failed: 480" in gone.stdout or "failed: 404" in gone.stdout, gone.stdout


def test_phone_answers_on_command_sends_dtmf_and_hangs_up(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    bob = phone(procs, srv)
    caller = procs.start(
        "sipwire-call",
        [
            *SIPWIRE,
            "call",
            "sip:bob@localhost",
            "--user",
            "alice",
            "--password",
            "-",
            "--server",
            srv.address,
        ],
        stdin=True,
    )
    caller.sendline("alice-pw")  # --password - reads it from stdin
    bob.wait_for(r"incoming call from sip:alice@localhost", 30)
    caller.wait_for(r"ringing \(180\)", 10)
    bob.sendline("a")
    caller.wait_for(r"answered \(200 OK\)", 10)
    bob.wait_for(r"answered sip:alice@localhost", 10)
    bob.sendline("d 42")
    caller.wait_for(r"DTMF received: 4", 10)
    caller.wait_for(r"DTMF received: 2", 10)
    bob.sendline("h")
    caller.wait_for(r"ended by the peer: remote BYE", 10)
    assert caller.wait(10) == 0
    bob.wait_for(r"ended by us: local BYE", 10)


def test_busy_phone_and_wrong_password_exit_statuses(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, USERS)
    phone(procs, srv, "--reject", "486")
    busy = call(srv, "sip:bob@localhost")
    assert busy.returncode == 1
    assert "failed: 486 Busy Here" in lines(busy.stdout), busy.stdout
    wrong = call(srv, "sip:bob@localhost", password="nope")
    assert wrong.returncode == 3
    assert "wrong password for alice@localhost" in wrong.stderr


def test_bad_arguments_exit_2_without_touching_the_network(tmp_path: pathlib.Path) -> None:
    base = [*SIPWIRE, "call", "sip:bob@localhost", "--user", "a", "--server", "127.0.0.1:9"]
    for extra, message in (
        (["--dtmf", "12x"], "--dtmf takes 0-9 * # A-D"),
        (["--play", str(tmp_path / "missing.wav")], "no such file"),
        (["--duration", "-1"], "must not be negative"),
    ):
        done = subprocess.run(
            [*base, *extra], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    bad = subprocess.run(
        [*SIPWIRE, "phone", "--user", "b", "--server", "127.0.0.1:9", "--reject", "200"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "--reject takes a status 300-699" in bad.stderr
