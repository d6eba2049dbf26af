"""`sipwire serve --workers N`: N processes share the ports (SO_REUSEPORT) and the database;
calls spread over them still complete, and SIGTERM stops them all."""

from __future__ import annotations

import pathlib
import signal
import sys

import pytest

from peers import sipsak
from peers.ports import free_port_both, wait_bound
from peers.procs import Procs, wait_until
from peers.sipp import Sipp, register_scenario

pytestmark = pytest.mark.peer


def test_two_workers_register_and_relay_calls(procs: Procs, tmp_path: pathlib.Path) -> None:
    port = free_port_both()
    db = tmp_path / "sipwire.db"
    for i in range(10):
        procs.start(
            f"user-add-{i}",
            [
                sys.executable,
                "-m",
                "sipwire",
                "user",
                "add",
                f"u{i}",
                "--password",
                f"pw{i}",
                "--db",
                str(db),
            ],
        ).wait(30)
    server = procs.start(
        "sipwire-workers",
        [
            sys.executable,
            "-m",
            "sipwire",
            "serve",
            "--workers",
            "2",
            "--db",
            str(db),
            "--listen",
            f"udp:127.0.0.1:{port}",
            "--listen",
            f"tcp:127.0.0.1:{port}",
            "--log-level",
            "info",
        ],
    )
    wait_bound(port, ("udp", "tcp"), timeout=20)
    wait_until(lambda: server.output.count("listening on tcp") >= 2, 20, message="both workers")
    address = f"127.0.0.1:{port}"
    # Digest REGISTERs, one socket per call so they spread over both workers; a nonce
    # minted by one worker must verify in the other (a shared secret).
    rows = [[f"u{i}", f"[authentication username=u{i} password=pw{i}]"] for i in range(10)]
    reg = register_scenario(user="[field0]", domain="localhost", authentication="[field1]")
    reg = reg.replace("Max-Forwards: 70\n", "Max-Forwards: 70\n      User-Agent: SIPp\n")
    result = Sipp(
        procs,
        tmp_path,
        reg,
        remote=address,
        calls=10,
        rate=20,
        inf=rows,
        transport="u1",
        name="reg",
    ).wait(timeout=60)
    assert (result.successful, result.failed) == (10, 0), result
    # Calls to a registered SIPp UAS, one socket per call: responses must come back to the
    # worker that forwarded each INVITE (its private Via port).
    uas = Sipp(procs, tmp_path, "uas", calls=30, timewait_ms=0, name="uas", global_timeout=90)
    uas.wait_ready()
    ok = sipsak.register(
        procs,
        "sip:u0@localhost",
        proxy=address,
        contact=f"sip:u0@127.0.0.1:{uas.port}",
        user="u0",
        password="pw0",
        expires=600,
    )
    assert ok.returncode == 0, ok.output
    calls = Sipp(
        procs,
        tmp_path,
        "uac",
        remote=address,
        service="u0",
        calls=30,
        rate=15,
        transport="u1",
        name="uac",
        extra_args=["-max_socket", "100"],
    )
    result = calls.wait(timeout=90)
    assert (result.successful, result.failed) == (30, 0), result
    assert uas.wait(timeout=30).successful == 30
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0
    assert server.output.count("shutting down") == 2
