"""Issue 3's proof with a real peer: SIPp against `sipwire uas`, and SIPp answering sipwire.

* SIPp's built-in ``uac`` -> ``sipwire uas`` over UDP and TCP: zero failed calls; with
  ``-lost 10`` (10% of messages dropped) still zero failed calls, the transactions'
  retransmissions (and the UAS core's 2xx retransmission) recovering every one.
* SIPp's built-in ``uas`` answering ``sipwire options`` and an INVITE sent through the
  client API (INVITE -> 180 -> 200 -> ACK -> BYE -> 200).
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys

import pytest

from peers.ports import free_port_both, wait_bound
from peers.procs import Procs
from peers.sipp import Sipp
from sipwire.aio.endpoint import Endpoint
from sipwire.core.message import Request

pytestmark = pytest.mark.peer


def start_uas(procs: Procs, *extra: str) -> int:
    port = free_port_both()
    procs.start(
        "sipwire-uas",
        [
            sys.executable,
            "-m",
            "sipwire",
            "uas",
            "--listen",
            f"udp:127.0.0.1:{port}",
            "--listen",
            f"tcp:127.0.0.1:{port}",
            *extra,
        ],
    )
    wait_bound(port, ("udp", "tcp"), timeout=15)
    return port


@pytest.mark.parametrize(
    ("transport", "lost", "calls"),
    [(None, None, 100), ("t1", None, 50), (None, 10, 60)],
    ids=["udp", "tcp", "udp-lost10"],
)
def test_sipp_uac_against_sipwire_uas(
    procs: Procs, tmp_path: pathlib.Path, transport: str | None, lost: float | None, calls: int
) -> None:
    port = start_uas(procs)
    sipp = Sipp(
        procs,
        tmp_path,
        "uac",
        remote=f"127.0.0.1:{port}",
        transport=transport,  # type: ignore[arg-type]
        calls=calls,
        rate=50,
        lost=lost,
        global_timeout=120,
    )
    result = sipp.wait(timeout=150)
    assert result.successful == calls, result
    assert result.failed == 0, result
    if lost:
        assert result.retransmissions > 0, "with 10% loss SIPp must have retransmitted"


def test_sipp_answers_sipwire_options(procs: Procs, tmp_path: pathlib.Path) -> None:
    sipp = Sipp(procs, tmp_path, "uas", global_timeout=60)  # -aa answers the OPTIONS
    sipp.wait_ready()
    argv = [sys.executable, "-m", "sipwire", "options", f"sip:service@{sipp.address}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("SIP/2.0 200 OK"), out.stdout
    assert " in " in out.stdout and " ms" in out.stdout  # the round-trip time


def test_sipp_uas_answers_invite_from_client_api(procs: Procs, tmp_path: pathlib.Path) -> None:
    sipp = Sipp(procs, tmp_path, "uas", calls=1, timewait_ms=0, global_timeout=60)
    sipp.wait_ready()

    async def call() -> list[int]:
        async with Endpoint(listen=["udp:127.0.0.1:0"]) as ep:
            contact = ep.contact_uri("UDP", user="alice")
            invite = Request(
                "INVITE",
                f"sip:service@{sipp.address}",
                [
                    ("From", f"<sip:alice@127.0.0.1>;tag={ep.new_tag()}"),
                    ("To", f"<sip:service@{sipp.address}>"),
                    ("Call-ID", ep.new_call_id()),
                    ("CSeq", "1 INVITE"),
                    ("Contact", f"<{contact}>"),
                    ("Content-Type", "application/sdp"),
                ],
                b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            )
            statuses = []
            handle = ep.send_request(invite)
            async for response in handle.responses():
                statuses.append(response.status)
            final = await handle.wait_final(10)
            assert final.status == 200
            to = final.headers.get("To")
            remote_target = final.contact[0].uri
            ack = Request(
                "ACK",
                remote_target,
                [
                    ("From", invite.headers.get("From") or ""),
                    ("To", to or ""),
                    ("Call-ID", invite.call_id),
                    ("CSeq", "1 ACK"),
                ],
            )
            await ep.send(ack, add_via=True)
            bye = Request(
                "BYE",
                remote_target,
                [
                    ("From", invite.headers.get("From") or ""),
                    ("To", to or ""),
                    ("Call-ID", invite.call_id),
                    ("CSeq", "2 BYE"),
                ],
            )
            statuses.append((await ep.request(bye, timeout=10)).status)
            return statuses

    statuses = asyncio.run(call())
    assert statuses[-2:] == [200, 200] and 180 in statuses
    result = sipp.wait(timeout=30)
    assert result.successful == 1 and result.failed == 0, result
