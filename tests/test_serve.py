"""`sipwire serve` as a process: survives hostile input, shuts down gracefully on SIGTERM,
keeps registrations across a restart (SQLite), and refuses a bad configuration clearly."""

from __future__ import annotations

import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from peers import sipsak
from peers.procs import Procs
from peers.sipwire_serve import SipwireServe
from sipwire.core.message import Response, parse_message

TORTURE = pathlib.Path(__file__).parent / "torture"


def exchange(port: int, data: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recvfrom(65535)[0]
        except TimeoutError:
            return None


def options(port: int) -> bytes:
    return (
        (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKping{n};rport\r\n"
            "From: <sip:probe@example.test>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: ping-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        .replace("{n}", str(time.monotonic_ns()))
        .encode()
    )


@pytest.mark.peer
def test_torture_and_garbage_never_crash_the_server(procs: Procs, tmp_path: pathlib.Path) -> None:
    srv = SipwireServe(procs, tmp_path, extra_args=["--no-auth"])
    files = sorted((TORTURE / "rfc4475").glob("*.dat")) + sorted(
        (TORTURE / "rfc5118").glob("*.dat")
    )
    assert len(files) > 50
    # The corpus's Vias point elsewhere (no rport), so the answers go there; what matters
    # here is that every message is handled and the server keeps serving.
    for path in files:
        exchange(srv.port, path.read_bytes(), timeout=0.05)
    for junk in (
        b"\x00" * 100,
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200\r\n",
        bytes(range(256)) * 4,
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ):
        exchange(srv.port, junk, timeout=0.05)
    # A malformed request whose Via has rport is answered 400 with the reason, here.
    bad = options(srv.port).replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    reply = exchange(srv.port, bad)
    assert reply is not None
    msg = parse_message(reply, validate=False)
    assert isinstance(msg, Response) and msg.status == 400 and "CSeq" in msg.reason
    reply = exchange(srv.port, options(srv.port))
    assert reply is not None and parse_message(reply).status == 200  # type: ignore[union-attr]
    assert srv.proc.returncode is None  # still running


@pytest.mark.peer
def test_sigterm_shuts_down_cleanly_and_bindings_survive_restart(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    srv = SipwireServe(procs, tmp_path, {"alice": "alice-pw"})
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
    srv.proc.signal(signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert "shutting down" in srv.proc.output
    # Same database, new process: the binding is still there.
    restarted = procs.start(
        "sipwire-serve-3",
        [
            sys.executable,
            "-m",
            "sipwire",
            "serve",
            "--db",
            str(srv.db),
            "--listen",
            f"udp:127.0.0.1:{srv.port}",
            "--listen",
            f"tcp:127.0.0.1:{srv.port}",
        ],
    )
    restarted.wait_for("listening on tcp", timeout=20)
    query = srv.sipsak_usrloc("alice", "alice-pw")
    assert "<sip:alice@127.0.0.1:5999>;expires=" in query.output, query.output


def test_bad_configuration_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("mode = 'sideways'\n")
    out = subprocess.run(
        [sys.executable, "-m", "sipwire", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "sipwire serve: mode: 'sideways' must be 'proxy' or 'redirect'"
    out = subprocess.run(
        [sys.executable, "-m", "sipwire", "serve", "--listen", "udp:nonsense"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.startswith("sipwire serve:"), out.stderr
