"""SIPp 3.6.1 (Debian ``sip-tester``): run scenarios on loopback and read the outcome.

:class:`Sipp` starts one SIPp process (built-in scenario name such as ``"uac"``/``"uas"``,
an XML scenario string, or a path) with ``-i 127.0.0.1 -p PORT -mi 127.0.0.1 -nostdin``
and stats tracing into its own directory; :meth:`Sipp.wait` returns a :class:`SippResult`
(exit status, successful/failed call counts, the raw stats row, the final screen).

Tricks found by running it:

* Never use ``-bg``: the foreground parent exits at once with status 99. ``-nostdin`` is
  required without a terminal (otherwise it tries to read keys from stdin).
* Exit status: 0 every call succeeded, 1 at least one failed, 97 exit on internal command,
  99 normal exit without any call processed, 255 fatal error, 254 fatal error binding a
  socket. SIGUSR1 = soft quit (like ``q``: no new calls, running ones finish); SIGUSR2 =
  dump screens. SIGTERM still writes the final stats row.
* ``-trace_stat -stf FILE`` writes a ';'-separated CSV: a header row, a row every ``-fd``
  seconds and a final row at exit. Cumulative counters end in ``(C)``:
  ``SuccessfulCall(C)``, ``FailedCall(C)``, ``TotalCallCreated``, ``Retransmissions(C)``,
  ``FailedMaxUDPRetrans(C)``, ``FailedUnexpectedMessage(C)``, ``FailedCallRejected(C)``...
  ``-trace_screen -screen_file FILE`` dumps the final screen; ``-trace_err -error_file`` the
  unexpected messages; ``-trace_msg -message_file`` every message (slow: tests only).
* The built-in ``uas`` ends each call with ``<timewait milliseconds="4000"/>``: a UAS run
  with ``-m N`` exits 4 s after the last BYE. ``timewait_ms=`` rewrites it (from the XML
  that ``sipp -sd uas`` prints) to keep tests fast. The built-in ``uac`` pauses ``-d`` ms
  (default 0) between ACK and BYE.
* SIPp binds media sockets (``-mp``, default 6000 and up, +2 per instance) and a UDP control
  socket 0.0.0.0:8888 (and up) even without RTP: concurrent instances step to free ones.
  Without ``-mi 127.0.0.1`` the SDP carries the host's primary address, not loopback.
* ``-t u1`` (default) = UDP, one socket for everything; ``un`` = UDP, one socket per call;
  ``t1`` = TCP, one connection for all calls; ``tn`` = TCP, one connection per call. The
  ``*n`` modes refuse to start ("Maximum number of open sockets (50000) should be less
  than the maximum number of open files") unless ``-max_socket`` is below ``ulimit -n``:
  the wrapper passes ``-max_socket 1024`` for them. A uas in ``t1`` mode accepts any
  number of connections. A TCP uac fails at once ("connection refused") if the uas is not
  listening yet: :meth:`Sipp.wait_ready` waits until the uas's port is bound.
* Auth: ``-au user -ap password`` feeds ``[authentication]`` after a ``<recv response="401"
  auth="true"/>``; ``[authentication username=X password=Y]`` overrides per message. Keywords
  do not nest (``username=[field0]`` sends ``username=`` and garbage): for per-row
  credentials put the whole ``[authentication username=X password=Y]`` keyword into an
  ``-inf`` field and write ``[field1]`` in the scenario (see :func:`register_scenario`). Quirk (PEERS.md): SIPp puts ``sip:<remote ip:port>`` as the
  digest ``uri=``, not the Request-URI. A UAS checks credentials with
  ``<verifyauth assign_to="ok" username=".." password=".."/>`` (see :func:`uas_challenge_scenario`).
* ``-inf FILE``: first line ``SEQUENTIAL`` (or ``RANDOM``/``USER``), then ``a;b;c`` rows ->
  ``[field0]``... per call. ``-key name value`` defines ``[name]``.
* ``-lost PCT`` drops that share of outgoing and incoming messages (retransmission tests;
  counts show in ``Retransmissions(C)``). A call whose BYE keeps getting lost fails only
  after ~7 retransmissions with T1=500 ms and T2=4 s capping: about 31 s. For fast loss
  tests shorten T1 in the scenario (``retrans_ms=``) and cap ``-max_retrans``.
* ``-aa`` answers INFO, NOTIFY, OPTIONS and UPDATE outside the scenario with 200.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Literal

from .ports import free_port_both, wait_bound
from .procs import PeerProcess, Procs, require_binary

__all__ = [
    "BUILTIN_SCENARIOS",
    "Sipp",
    "SippResult",
    "builtin_scenario",
    "options_scenario",
    "register_scenario",
    "uas_challenge_scenario",
]

BUILTIN_SCENARIOS = frozenset(
    {
        "uac",
        "uas",
        "regexp",
        "3pcc-C-A",
        "3pcc-C-B",
        "3pcc-A",
        "3pcc-B",
        "branchc",
        "branchs",
        "uac_pcap",
    }
)

Transport = Literal["u1", "un", "ui", "t1", "tn", "s1", "sn"]


@functools.cache
def builtin_scenario(name: str) -> str:
    """The XML of a built-in scenario, as ``sipp -sd NAME`` prints it (it exits 99)."""
    sipp = require_binary("sipp")
    out = subprocess.run(
        [sipp, "-sd", name], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    start = out.find("<?xml")
    if start < 0:
        raise ValueError(f"sipp -sd {name} printed no XML")
    return out[start:]


def _xml_header(name: str) -> str:
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
        f'<scenario name="{name}">\n'
    )


def register_scenario(
    *,
    user: str = "[service]",
    domain: str = "[remote_ip]:[remote_port]",
    authentication: str = "[authentication]",
    expires: int = 3600,
    contact_params: str = "",
    expect: int = 200,
) -> str:
    """REGISTER, take a 401/407 challenge, REGISTER again with credentials, expect ``expect``.

    ``user`` may be ``[field0]`` (``-inf``) or ``[service]`` (``-s``); the default
    ``[authentication]`` uses ``-au``/``-ap``; for per-row credentials pass
    ``authentication="[field1]"`` with the ``-inf`` row ``alice;[authentication username=alice
    password=secret]`` (SIPp keywords do not nest).
    """
    req = (
        "      REGISTER sip:{domain} SIP/2.0\n"
        "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "      From: <sip:{user}@{domain}>;tag=[pid]R[call_number]\n"
        "      To: <sip:{user}@{domain}>\n"
        "      Call-ID: [call_id]\n"
        "      CSeq: {cseq} REGISTER\n"
        "      Contact: <sip:{user}@[local_ip]:[local_port]{cp}>\n"
        "      Max-Forwards: 70\n"
        "      Expires: {expires}\n"
        "{auth}"
        "      Content-Length: 0\n"
    )
    first = req.format(
        domain=domain, user=user, cseq=1, cp=contact_params, expires=expires, auth=""
    )
    second = req.format(
        domain=domain,
        user=user,
        cseq=2,
        cp=contact_params,
        expires=expires,
        auth=f"      {authentication}\n",
    )
    return (
        _xml_header("register with digest auth")
        + f'  <send retrans="500"><![CDATA[\n\n{first}\n    ]]></send>\n'
        + '  <recv response="401" auth="true" next="auth"/>\n'
        + '  <label id="auth"/>\n'
        + f'  <send retrans="500"><![CDATA[\n\n{second}\n    ]]></send>\n'
        + '  <recv response="100" optional="true"/>\n'
        + f'  <recv response="{expect}"/>\n'
        + "</scenario>\n"
    )


def options_scenario(*, uri: str = "sip:[service]@[remote_ip]:[remote_port]") -> str:
    """One OPTIONS per call, expecting a 200."""
    return (
        _xml_header("options ping")
        + '  <send retrans="500"><![CDATA[\n\n'
        + f"      OPTIONS {uri} SIP/2.0\n"
        + "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        + "      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]O[call_number]\n"
        + f"      To: <{uri}>\n"
        + "      Call-ID: [call_id]\n"
        + "      CSeq: 1 OPTIONS\n"
        + "      Max-Forwards: 70\n"
        + "      Accept: application/sdp\n"
        + "      Content-Length: 0\n\n"
        + "    ]]></send>\n"
        + '  <recv response="200"/>\n'
        + "</scenario>\n"
    )


def uas_challenge_scenario(
    *,
    username: str = "[user]",
    password: str = "[pass]",
    realm: str = "sipp.test",
    timewait_ms: int = 200,
) -> str:
    """A registrar stand-in: 401 to the first REGISTER, then 200 or 403 after verifyauth.

    The defaults read ``-key user NAME -key pass SECRET``.
    """
    resp = (
        "      SIP/2.0 {status}\n"
        "      [last_Via:]\n"
        "      [last_From:]\n"
        "      [last_To:];tag=[pid]U[call_number]\n"
        "      [last_Call-ID:]\n"
        "      [last_CSeq:]\n"
        "{extra}"
        "      Content-Length: 0\n"
    )
    challenge = resp.format(
        status="401 Unauthorized",
        extra=f'      WWW-Authenticate: Digest realm="{realm}", '
        'nonce="[pid]n[call_number]x", algorithm=MD5\n',
    )
    ok = resp.format(status="200 OK", extra="      [last_Contact:];expires=3600\n")
    forbidden = resp.format(status="403 Forbidden", extra="")
    return (
        _xml_header("uas digest challenge")
        + '  <recv request="REGISTER"/>\n'
        + f"  <send><![CDATA[\n\n{challenge}\n    ]]></send>\n"
        + '  <recv request="REGISTER">\n'
        + "    <action>\n"
        + f'      <verifyauth assign_to="authok" username="{username}" password="{password}"/>\n'
        + "    </action>\n"
        + "  </recv>\n"
        + '  <nop hide="true" test="authok" next="good"/>\n'
        + f'  <send next="done"><![CDATA[\n\n{forbidden}\n    ]]></send>\n'
        + '  <label id="good"/>\n'
        + f"  <send><![CDATA[\n\n{ok}\n    ]]></send>\n"
        + '  <label id="done"/>\n'
        + f'  <timewait milliseconds="{timewait_ms}"/>\n'
        + "</scenario>\n"
    )


@dataclasses.dataclass(repr=False)
class SippResult:
    """Outcome of one SIPp run: exit status plus the last (final) stats row."""

    returncode: int
    stats: dict[str, str]
    screen: str = ""
    errors: str = ""

    def counter(self, name: str) -> int:
        """A cumulative counter, e.g. ``counter("Retransmissions")`` -> ``Retransmissions(C)``."""
        value = self.stats.get(f"{name}(C)", self.stats.get(name, ""))
        return int(value) if value.strip().lstrip("-").isdigit() else 0

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall")

    @property
    def created(self) -> int:
        return self.counter("TotalCallCreated")

    @property
    def retransmissions(self) -> int:
        return self.counter("Retransmissions")

    def failure_counters(self) -> dict[str, int]:
        """Non-zero ``Failed*`` cumulative counters (why calls failed)."""
        out: dict[str, int] = {}
        for key in self.stats:
            if key.startswith("Failed") and key.endswith("(C)"):
                value = self.counter(key[:-3])
                if value:
                    out[key[:-3]] = value
        return out

    def __repr__(self) -> str:
        return (
            f"sipp rc={self.returncode} created={self.created} ok={self.successful} "
            f"failed={self.failed} retrans={self.retransmissions} {self.failure_counters()}"
        )


def parse_stats_csv(path: pathlib.Path) -> dict[str, str]:
    """Header -> value of the last data row of a ``-trace_stat`` CSV ({} if none yet)."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    row = lines[-1].split(";")
    return {k: v for k, v in zip(header, row, strict=False) if k}


class Sipp:
    """One SIPp process. ``scenario``: built-in name, XML text (starts with ``<``) or a path.

    ``remote`` is ``host:port`` for clients; ``port`` (default: a free UDP+TCP port) is the
    local SIP port (``-p``); ``calls`` -> ``-m``, ``rate`` -> ``-r`` per ``rate_period_ms``,
    ``limit`` -> ``-l``, ``duration_ms`` -> ``-d``, ``service`` -> ``-s``, ``auth`` ->
    ``-au/-ap``, ``inf`` (a path, or rows written as a SEQUENTIAL CSV) -> ``-inf``, ``keys``
    -> ``-key``, ``lost`` -> ``-lost``, ``global_timeout`` -> ``-timeout Ns -timeout_error``,
    ``max_retrans`` -> ``-max_retrans``; ``retrans_ms`` rewrites every ``retrans="N"`` (the
    first UDP retransmission interval, T1) in the scenario and ``timewait_ms`` its
    ``<timewait>`` (built-ins are dumped with ``-sd`` first).
    """

    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        scenario: str | pathlib.Path = "uac",
        *,
        remote: str | None = None,
        port: int | None = None,
        transport: Transport | str | None = None,
        calls: int | None = None,
        rate: float | None = None,
        rate_period_ms: int | None = None,
        limit: int | None = None,
        duration_ms: int | None = None,
        service: str | None = None,
        auth: tuple[str, str] | None = None,
        inf: pathlib.Path | Sequence[Sequence[str]] | None = None,
        inf_mode: str = "SEQUENTIAL",
        keys: Mapping[str, str] | None = None,
        lost: float | None = None,
        timewait_ms: int | None = None,
        retrans_ms: int | None = None,
        max_retrans: int | None = None,
        global_timeout: float | None = 60.0,
        trace_msg: bool = False,
        auto_answer: bool = True,
        extra_args: Sequence[str] = (),
        name: str = "sipp",
        start: bool = True,
    ) -> None:
        self.procs = procs
        self.name = procs.unique(name)
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port_both()
        self.transport = transport
        self.trace_msg = trace_msg
        self.stats_path = self.dir / "stats.csv"
        self.screen_path = self.dir / "screen.log"
        self.errors_path = self.dir / "errors.log"
        self.messages_path = self.dir / "messages.log"
        args: list[str] = ["sipp"]
        scen = str(scenario)
        if scen in BUILTIN_SCENARIOS and timewait_ms is None and retrans_ms is None:
            args += ["-sn", scen]
        else:
            if scen in BUILTIN_SCENARIOS:
                xml = builtin_scenario(scen)
            elif scen.lstrip().startswith("<"):
                xml = scen
            else:
                xml = pathlib.Path(scen).read_text()
            if retrans_ms is not None:
                xml = re.sub(r'retrans="\d+"', f'retrans="{retrans_ms}"', xml)
            if timewait_ms == 0:
                xml = re.sub(r"\s*<timewait\b[^>]*/>", "", xml)
            elif timewait_ms is not None:
                xml = re.sub(
                    r'<timewait\s+milliseconds="\d+"',
                    f'<timewait milliseconds="{timewait_ms}"',
                    xml,
                )
            path = self.dir / "scenario.xml"
            path.write_text(xml)
            args += ["-sf", str(path)]
        if remote:
            args.append(remote)
        args += ["-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1", "-nostdin"]
        if transport:
            args += ["-t", transport]
            if transport.endswith("n") and "-max_socket" not in extra_args:
                args += ["-max_socket", "1024"]
        if calls is not None:
            args += ["-m", str(calls)]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if rate_period_ms is not None:
            args += ["-rp", str(rate_period_ms)]
        if limit is not None:
            args += ["-l", str(limit)]
        if duration_ms is not None:
            args += ["-d", str(duration_ms)]
        if service is not None:
            args += ["-s", service]
        if auth is not None:
            args += ["-au", auth[0], "-ap", auth[1]]
        if inf is not None:
            if isinstance(inf, pathlib.Path):
                inf_path = inf
            else:
                inf_path = self.dir / "inf.csv"
                inf_path.write_text(inf_mode + "\n" + "".join(";".join(row) + "\n" for row in inf))
            args += ["-inf", str(inf_path)]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        if lost is not None:
            args += ["-lost", f"{lost:g}"]
        if max_retrans is not None:
            args += ["-max_retrans", str(max_retrans)]
        if global_timeout is not None:
            args += ["-timeout", f"{int(global_timeout)}s", "-timeout_error"]
        if auto_answer:
            args.append("-aa")
        args += ["-trace_stat", "-stf", str(self.stats_path), "-fd", "1"]
        args += ["-trace_screen", "-screen_file", str(self.screen_path)]
        args += ["-trace_err", "-error_file", str(self.errors_path)]
        if trace_msg:
            args += ["-trace_msg", "-message_file", str(self.messages_path)]
        args += list(extra_args)
        self.argv = args
        self.proc: PeerProcess | None = None
        if start:
            self.start()

    def start(self) -> Sipp:
        self.proc = self.procs.start(self.name, self.argv, cwd=self.dir)
        self.procs.attach_file(f"{self.name} errors", self.errors_path)
        if self.trace_msg:
            self.procs.attach_file(f"{self.name} messages", self.messages_path)
        return self

    @property
    def is_tcp(self) -> bool:
        return bool(self.transport and self.transport.startswith("t"))

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` to pass as ``remote`` to a client SIPp."""
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 10.0) -> Sipp:
        """Wait until SIPp has bound its SIP port (TCP listener for t1/tn, else UDP)."""
        wait_bound(self.port, ("tcp",) if self.is_tcp else ("udp",), timeout=timeout)
        return self

    def result(self) -> SippResult:
        """The result from the files as they are now (final once the process exited)."""
        assert self.proc is not None
        rc = self.proc.returncode
        return SippResult(
            returncode=-1 if rc is None else rc,
            stats=parse_stats_csv(self.stats_path),
            screen=_read(self.screen_path),
            errors=_read(self.errors_path),
        )

    def wait(self, timeout: float = 60.0) -> SippResult:
        """Wait for SIPp to exit on its own (``-m`` reached); return the final result."""
        assert self.proc is not None
        self.proc.wait(timeout)
        return self.result()

    def soft_stop(self, timeout: float = 10.0) -> SippResult:
        """SIGUSR1 (no new calls, let running calls finish), wait, then the result."""
        assert self.proc is not None
        if self.proc.alive:
            self.proc.signal(signal.SIGUSR1)
        return self.wait(timeout)

    def stop(self) -> SippResult:
        """Terminate now (SIGTERM, then SIGKILL) and return what it recorded."""
        assert self.proc is not None
        self.proc.stop()
        return self.result()


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
