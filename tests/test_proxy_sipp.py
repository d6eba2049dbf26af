"""A real peer on both sides: SIPp's built-in ``uac`` -> the sipwire proxy -> SIPp's
built-in ``uas`` (INVITE, 180, 200, ACK, BYE), the callee put in the location store.

SIPp's uac sends its ACK and BYE to the proxy with the AOR as Request-URI and no Route
(it ignores Record-Route without ``rrs``), so they exercise the stateless ACK path and
the location lookup of in-dialog requests; the uas echoes our Record-Route.

The lossy run drops 5% of the caller's messages (``-lost`` on the uac only: SIPp's uas
never re-sends a final response it "lost" itself, whatever its peer does), so the
proxy must relay every retransmission: INVITE, 200 (until the ACK), ACK, BYE, 200.
"""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest

from peers.procs import PeerTimeoutError, Procs
from peers.sipp import Sipp
from sipwire.core.transaction import TimerConfig
from sipwire.store import Binding
from test_proxy_harness import Net, port_of

pytestmark = pytest.mark.peer


def start_uas(procs: Procs, tmp_path: pathlib.Path, calls: int) -> Sipp:
    """SIPp's uas on a free port; another one if something else took the port first
    (SIPp exits 254 when it cannot bind: other test processes run on this host too)."""
    for attempt in range(3):
        uas = Sipp(
            procs,
            tmp_path,
            "uas",
            name="sipp-uas",
            calls=calls,
            timewait_ms=0,
            global_timeout=120,
        )
        try:
            return uas.wait_ready()
        except PeerTimeoutError:
            assert uas.proc is not None
            if attempt == 2 or uas.proc.returncode != 254:
                raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("uac_transport", "calls", "lost"),
    [(None, 40, None), ("t1", 20, None), (None, 30, 5)],
    ids=["udp", "tcp-to-udp", "udp-lost5"],
)
async def test_sipp_uac_through_proxy_to_sipp_uas(
    procs: Procs, tmp_path: pathlib.Path, uac_transport: str | None, calls: int, lost: int | None
) -> None:
    # RFC 3261 timers (T1 = 500 ms) on the proxy, like SIPp's own retransmissions.
    async with Net(timers=TimerConfig()) as net:
        uas = await asyncio.to_thread(start_uas, procs, tmp_path, calls)
        await net.store.replace(
            "sip:service@example.test",
            [
                Binding(
                    aor="sip:service@example.test",
                    contact=f"sip:service@127.0.0.1:{uas.port}",
                    expires_at=time.time() + 3600,
                )
            ],
        )
        proxy_port = port_of(net.proxy_ep, "TCP" if uac_transport else "UDP")
        uac = Sipp(
            procs,
            tmp_path,
            "uac",
            name="sipp-uac",
            remote=f"127.0.0.1:{proxy_port}",
            transport=uac_transport,  # type: ignore[arg-type]
            calls=calls,
            rate=20,
            # With loss: a 1 s call, so a lost ACK is re-sent when the 200 is retransmitted
            # (SIPp answers a retransmission with its last message only while the call lives).
            duration_ms=1000 if lost else None,
            global_timeout=120,
            lost=lost,
        )
        result = await asyncio.to_thread(uac.wait, 150)
        assert result.successful == calls, result
        assert result.failed == 0, result
        uas_result = await asyncio.to_thread(uas.wait, 30)
        assert uas_result.failed == 0, uas_result
        stats = net.proxy.stats
        assert stats["requests.INVITE"] >= calls and stats["requests.BYE"] >= calls
        if lost:
            assert result.retransmissions > 0 or uas_result.retransmissions > 0
