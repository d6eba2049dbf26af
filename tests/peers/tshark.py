"""tshark 4.0: capture SIP on loopback during a test and list the messages afterwards.

``cap = Capture(procs, tmp_path, [port]).start()`` ... ``cap.stop()`` then
``cap.sip_messages()`` -> :class:`SipPacket` rows (time, addresses, transport, first line,
Call-ID, CSeq) in capture order. The pcap stays in the test's tmp dir for a human with
``tshark -r FILE -Y sip -O sip`` or sngrep.

Tricks found by running it:

* Runs as root here ("Running as user root ... could be dangerous" is only a warning);
  capturing needs CAP_NET_RAW. tshark starts ``dumpcap`` as a child: stop the whole group,
  with SIGINT so the pcap is flushed and closed (:meth:`Capture.stop`).
* Ready means "Capture started." on stderr, printed after the filter is compiled and the
  interface opened; packets sent before that are missed.
* Stopping right after the last packet loses it (and everything since the last kernel
  block was handed over: "0 packets captured"): dumpcap gets packets in blocks and does not
  drain on SIGINT. So the filter also matches a private marker port; :meth:`Capture.stop`
  sends one UDP datagram there, waits until ``-P -l`` prints it, and only then stops.
* ``-f`` is a BPF capture filter (``udp port 5060 or tcp port 5060``); the decode filter
  ``-Y sip`` only finds SIP on ports other than 5060 through heuristics (UDP works, TCP may
  not): :meth:`Capture.sip_messages` adds ``-d udp.port==P,sip -d tcp.port==P,sip`` per port.
* Several SIP messages in one TCP segment give several values in one field, joined by ``,``
  (tshark's default aggregator); Call-IDs/first lines contain no ``\\t``, which is the
  separator used here.
"""

from __future__ import annotations

import dataclasses
import pathlib
import signal
import socket
import subprocess
from collections.abc import Sequence

from .ports import free_port
from .procs import PeerProcess, PeerTimeoutError, Procs, require_binary

__all__ = ["Capture", "SipPacket"]

_FIELDS = (
    "frame.time_relative",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "sip.Request-Line",
    "sip.Status-Line",
    "sip.Call-ID",
    "sip.CSeq",
)


@dataclasses.dataclass(frozen=True)
class SipPacket:
    time: float
    src: str
    dst: str
    transport: str  # "udp" or "tcp"
    sport: int
    dport: int
    first_line: str
    call_id: str
    cseq: str

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0 ")

    @property
    def method_or_status(self) -> str:
        """``INVITE`` for a request, ``200`` for a response."""
        parts = self.first_line.split()
        return parts[1] if not self.is_request and len(parts) > 1 else (parts[0] if parts else "")


class Capture:
    """A tshark capture of ``ports`` (UDP and TCP) on the loopback interface."""

    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        ports: Sequence[int],
        *,
        name: str = "tshark",
        interface: str = "lo",
    ) -> None:
        self.procs = procs
        self.name = procs.unique(name)
        self.ports = list(ports)
        self.pcap = workdir / f"{self.name}.pcap"
        self.marker_port = free_port("udp")
        bpf = " or ".join(f"port {p}" for p in [*self.ports, self.marker_port])
        # -P -l: print each packet's summary at once, so stop() can see its marker arrive.
        self.argv = ["tshark", "-i", interface, "-f", bpf, "-w", str(self.pcap), "-P", "-l"]
        self.proc: PeerProcess | None = None

    def start(self, timeout: float = 15.0) -> Capture:
        self.proc = self.procs.start(self.name, self.argv)
        self.proc.wait_for(r"Capture started", timeout)
        return self

    def stop(self, timeout: float = 10.0) -> pathlib.Path:
        """Stop capturing (SIGINT, so the file is complete); return the pcap path."""
        assert self.proc is not None
        if self.proc.alive:
            mark = self.proc.mark()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"tshark-marker", ("127.0.0.1", self.marker_port))
            self.proc.wait_for(rf"\b{self.marker_port} Len=", timeout, start=mark)
            self.proc.signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except PeerTimeoutError:
                self.proc.stop()
        return self.pcap

    def sip_messages(self) -> list[SipPacket]:
        """Every SIP message in the capture (call after :meth:`stop`)."""
        argv = [require_binary("tshark"), "-r", str(self.pcap), "-Y", "sip"]
        for port in self.ports:
            argv += ["-d", f"udp.port=={port},sip", "-d", f"tcp.port=={port},sip"]
        argv += ["-T", "fields", "-E", "separator=\t"]
        for field in _FIELDS:
            argv += ["-e", field]
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=True, start_new_session=True
        ).stdout
        packets: list[SipPacket] = []
        for line in out.splitlines():
            cols = line.split("\t")
            if len(cols) < len(_FIELDS):
                continue
            t, src, dst, usport, udport, tsport, tdport, req, status, call_id, cseq = cols[:11]
            tcp = bool(tsport)
            packets.append(
                SipPacket(
                    time=float(t or 0),
                    src=src,
                    dst=dst,
                    transport="tcp" if tcp else "udp",
                    sport=int((tsport if tcp else usport) or 0),
                    dport=int((tdport if tcp else udport) or 0),
                    first_line=req or status,
                    call_id=call_id,
                    cseq=cseq,
                )
            )
        return packets
