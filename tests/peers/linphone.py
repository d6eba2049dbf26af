r"""linphonec 5.1 (Debian ``linphone-cli``) as a headless SIP user agent driven over stdin.

:class:`Linphone` gives each instance its own ``$HOME`` with a ``linphonerc``, starts
``linphonec -c RC -d 6 -l LOG`` with stdin/stdout pipes, switches audio to WAV files and then
sends the same commands a user would type, waiting (bounded) for the lines linphonec prints.

Tricks found by running it:

* Create ``$HOME/.local/share/linphone`` first, or it silently never opens its SIP port.
* IPv6: liblinphone "migrates" settings on first start and turns ``use_ipv6`` on, then
  puts the host's IPv6 address in From and SDP (baresip on 127.0.0.1 answers 488). Write
  ``use_ipv6=0`` *and* ``ipv6_migration_done=1`` in ``[sip]``.
* Loopback only: ``[sip] bind_address=127.0.0.1`` for SIP, ``[rtp] bind_address=127.0.0.1``
  for media (without it SDP ``c=`` carries eth0's address even when SIP is on loopback;
  ``[net] nat_address`` does not help). ``guess_hostname=0`` keeps ``contact=`` as the From.
* ``sip_tcp_port=0`` / ``sip_tls_port=0`` disable a transport; ``-1`` means a *random*
  port. One port number can serve UDP and TCP (``sip_port=P`` and ``sip_tcp_port=P``).
* Harmless noise: "Could not find a suitable soundcard", "fast_header_address parser error
  for [sip:lin@:-1]", "video policy is to start the call with video".
* Audio: ``soundcard use files`` ("Using wav files instead of soundcard."), then
  ``play FILE.wav`` (what the far end hears; 16-bit mono 8 kHz works) and ``record
  OUT.wav`` (what it receives: 16-bit mono 8 kHz with PCMU). Set both before the call; the
  recording is complete once the call has ended.
* It echoes every typed line, sometimes with a character doubled (``tone..wav``): never
  match on the echo, only on its answers.
* Output lines (``N`` is linphonec's call id; the remote URI is printed in angle brackets
  when it has parameters and bare otherwise, so match ``\S+``):
  outgoing ``Establishing call id to URI, assigned id N`` / ``Call N to URI ringing.``;
  incoming ``Receiving new incoming call from URI, assigned id N``; both
  ``Call N with URI connected.``, ``Media streams established with URI for call N (audio).``,
  ``Call N with URI ended (REASON).`` (REASON "No error" for a normal BYE), failures
  ``Call N with URI error.``. With ``autoanswer enable`` it prints
  ``-------auto answering to call-------``. Registration results are NOT printed in 5.1 (not even
  with ``-S``): poll ``status register`` -> ``registered=0`` (none), ``registered=-1`` (no
  default proxy yet, right after ``register``) or ``registered,
  identity=sip:... duration=3600`` (:meth:`Linphone.register` does). ``states`` and
  ``proxy list`` show more. A second ``register`` while registered keeps the first one.
* Commands: ``call URI``, ``answer [N]``, ``terminate [N|all]``, ``autoanswer enable``,
  ``calls``, ``register <identity> <proxy> <password>``, ``unregister``, ``quit``; the
  prompt ``linphonec> `` is printed without a newline.
* When it registers and the registrar returns a GRUU (``pub-gruu`` in the 200's Contact),
  linphone uses the GRUU as its Contact in every dialog: a proxy must route in-dialog
  requests addressed to the GRUU (see peers.kamailio notes), or the BYE to it is lost.
* The ``register`` command's identity and proxy are SIP URIs, e.g.
  ``register sip:alice@127.0.0.1 sip:127.0.0.1:5060 secret``.
"""

from __future__ import annotations

import contextlib
import pathlib
import re

from .ports import free_port_both, wait_bound
from .procs import PeerProcess, PeerTimeoutError, Procs, wait_until

__all__ = ["Linphone"]


class Linphone:
    """One linphonec instance; ``user`` is the From user (sip:USER@127.0.0.1)."""

    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        user: str = "lin",
        *,
        name: str = "linphonec",
        sip_port: int | None = None,
        tcp: bool = True,
        play: pathlib.Path | None = None,
        record: pathlib.Path | None = None,
        auto_answer: bool = False,
        extra_rc: str = "",
        start: bool = True,
    ) -> None:
        self.procs = procs
        self.name = procs.unique(name)
        self.user = user
        self.home = workdir / self.name
        self.sip_port = sip_port if sip_port is not None else free_port_both()
        self.tcp = tcp
        self.play_path = play
        self.record_path = record
        self.auto_answer = auto_answer
        self.extra_rc = extra_rc
        self.rc_path = self.home / "linphonerc"
        self.log_path = self.home / "linphone.log"
        self.proc: PeerProcess | None = None
        if start:
            self.start()

    def rc_text(self) -> str:
        tcp_port = self.sip_port if self.tcp else 0
        return (
            "[sip]\n"
            f"sip_port={self.sip_port}\n"
            f"sip_tcp_port={tcp_port}\n"
            "sip_tls_port=0\n"
            "bind_address=127.0.0.1\n"
            f"contact=sip:{self.user}@127.0.0.1\n"
            "guess_hostname=0\n"
            "use_ipv6=0\n"
            "ipv6_migration_done=1\n"
            "default_proxy=-1\n"
            "register_only_when_network_is_up=0\n"
            "inc_timeout=60\n"
            "\n[rtp]\n"
            "audio_rtp_port=20000-29999\n"
            "bind_address=127.0.0.1\n"
            "\n[sound]\n"
            "echocancellation=0\n"
            "\n[video]\n"
            "capture=0\n"
            "display=0\n"
            "automatically_initiate=0\n"
            "automatically_accept=0\n" + self.extra_rc
        )

    def start(self, timeout: float = 10.0) -> Linphone:
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.rc_path.write_text(self.rc_text())
        argv = ["linphonec", "-c", str(self.rc_path), "-d", "6", "-l", str(self.log_path)]
        if self.auto_answer:
            argv.append("-a")
        self.proc = self.procs.start(self.name, argv, env={"HOME": str(self.home)}, stdin=True)
        self.procs.attach_file(f"{self.name} liblinphone log", self.log_path)
        self.proc.expect(r"linphonec> ", timeout)
        wait_bound(self.sip_port, ("udp",), timeout=timeout)
        self.cmd("soundcard use files", r"Using wav files instead of soundcard")
        if self.play_path is not None:
            self.play(self.play_path)
        if self.record_path is not None:
            self.record(self.record_path)
        return self

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def p(self) -> PeerProcess:
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        return self.proc

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def cmd(self, line: str, expect: str | None = None, timeout: float = 10.0) -> str:
        """Type ``line``; if ``expect`` is given wait for it (after this command) and return
        the matched text, else return ""."""
        start = self.p.mark()
        self.p.sendline(line)
        if expect is None:
            return ""
        return self.p.wait_for(expect, timeout, start=start).group(0)

    def wait_for(self, pattern: str, timeout: float = 10.0, *, start: int = 0) -> re.Match[str]:
        return self.p.wait_for(pattern, timeout, start=start)

    # -- commands ---------------------------------------------------------------------------

    def play(self, path: pathlib.Path) -> None:
        self.cmd(f"play {path}")

    def record(self, path: pathlib.Path) -> None:
        self.cmd(f"record {path}")

    def call(self, uri: str, timeout: float = 10.0) -> int:
        """Start a call; return linphonec's call id (wait for connection separately)."""
        m = self.cmd(
            f"call {uri}", r"Establishing call id to <?[^,>\s]+>?, assigned id (\d+)", timeout
        )
        return int(re.findall(r"\d+", m)[-1])

    def wait_incoming(self, timeout: float = 10.0, *, start: int = 0) -> int:
        m = self.wait_for(
            r"Receiving new incoming call from [^,\s]+, assigned id (\d+)", timeout, start=start
        )
        return int(m.group(1))

    def answer(self, call_id: int | None = None) -> None:
        self.cmd("answer" if call_id is None else f"answer {call_id}")

    def terminate(self, call_id: int | None = None) -> None:
        self.cmd("terminate" if call_id is None else f"terminate {call_id}")

    def autoanswer(self, enable: bool = True) -> None:
        self.cmd(f"autoanswer {'enable' if enable else 'disable'}")

    def wait_connected(
        self, call_id: int | None = None, timeout: float = 10.0, *, start: int = 0
    ) -> re.Match[str]:
        ident = r"\d+" if call_id is None else str(call_id)
        return self.wait_for(rf"Call {ident} with \S+ connected\.", timeout, start=start)

    def wait_ended(
        self, call_id: int | None = None, timeout: float = 10.0, *, start: int = 0
    ) -> re.Match[str]:
        """``Call N with <URI> ended (REASON).``; group 1 is REASON."""
        ident = r"\d+" if call_id is None else str(call_id)
        return self.wait_for(rf"Call {ident} with \S+ ended \(([^)]*)\)", timeout, start=start)

    def registered(self) -> bool:
        """Ask ``status register``: True once the default proxy reports registered."""
        start = self.p.mark()
        self.p.sendline("status register")
        m = self.wait_for(r"registered(=-?\d+|, identity=\S+)", 5, start=start)
        return m.group(1).startswith(",")

    def register(self, identity: str, proxy: str, password: str, timeout: float = 10.0) -> None:
        """``register IDENTITY PROXY PASSWORD``, then poll until registered (bounded)."""
        self.p.sendline(f"register {identity} {proxy} {password}")
        wait_until(self.registered, timeout, interval=0.1, message=f"{self.name} to register")

    def quit(self, timeout: float = 5.0) -> int | None:
        with contextlib.suppress(OSError, RuntimeError):
            self.p.sendline("quit")
        try:
            return self.p.wait(timeout)
        except PeerTimeoutError:
            return self.p.stop()
