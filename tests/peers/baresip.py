"""baresip 1.0.0 (Debian ``baresip-core``) as a headless, scriptable SIP user agent.

One :class:`Baresip` = one process with its own config dir (``baresip -f DIR``) holding
``config``, ``accounts`` and an empty ``contacts``; ``$HOME`` points at the same dir. It is
driven over the ``ctrl_tcp`` module: JSON objects in netstrings (``LEN:JSON,``) on a loopback
TCP port. Commands are ``{"command": "dial", "params": "sip:...", "token": "7"}`` and get
``{"response": true, "ok": true, "data": "...", "token": "7"}``; events arrive unsolicited as
``{"event": true, "type": "CALL_ESTABLISHED", "class": "call", "accountaor": ...,
"direction": "incoming"|"outgoing", "peeruri": ..., "id": <call id>, "param": ...}``.

Tricks found by running it (baresip 1.0.0 on Debian):

* Modules (``/usr/lib/baresip/modules``): ``g711`` (PCMU/PCMA), ``ausine`` (tone source),
  ``aubridge`` (a null-ish player: ``audio_player aubridge,nil``), ``sndfile`` (an audio
  *filter* that records both directions), ``account``, ``contact``, ``menu`` (it provides
  the commands: dial, hangup, accept, listcalls, reginfo, sndcode, uanew ...) and
  ``ctrl_tcp``. Do NOT load ``stdio``: with stdin not a terminal it fails (epoll on fd 0).
  ``aufile`` in 1.0.0 is only a *source* (plays a WAV), not a player.
* ``ausine`` only starts with ``ausrc_srate 48000`` and ``ausrc_channels 2``; the device
  argument is the frequency: ``audio_source ausine,1000`` (10..20000 Hz, default 440).
* Recording: ``module sndfile.so`` + ``snd_path DIR`` writes ``DIR/dump-<timestamp>-dec.wav``
  (received audio, after decoding: 8 kHz mono s16 for G.711) and ``...-enc.wav`` (what it
  sent). The timestamp has one-second resolution, so two calls within a second overwrite
  each other. The WAV header gets its sizes only when the call's audio closes, shortly
  after CALL_CLOSED: :meth:`Baresip.wait_recording` waits for that.
* ``net_interface 127.0.0.1`` (an address, not ``lo``: ``lo`` fails with "could not get
  network address") keeps SDP and RTP on loopback; otherwise SDP carries eth0's address.
* ``sip_listen 127.0.0.1:PORT`` listens on UDP *and* TCP on PORT and TLS on PORT+1 (even
  without a certificate); if PORT+1 is taken it exits at start ("SIP/TLS transport failed:
  Address already in use", status 98): use ``free_port_both(span=2)``.
* Account line (``accounts`` file):
  ``<sip:alice@DOMAIN;transport=udp>;auth_pass=SECRET;outbound="sip:127.0.0.1:5060;transport=udp";answermode=auto;regint=60;audio_codecs=PCMU,PCMA``.
  ``regint=0`` disables REGISTER (for direct peer-to-peer calls). When dialing, baresip
  appends ``;transport=<account transport>`` to the target URI (:meth:`Baresip.dial`
  removes an identical one first). ``answermode=auto``
  answers at once; ``manual`` waits for the ``accept`` command (:meth:`Baresip.answer`).
* Events seen: REGISTERING, REGISTER_OK, REGISTER_FAIL (``param`` "401 Unauthorized"
  after a wrong password), CALL_INCOMING, CALL_RINGING, CALL_LOCAL_SDP,
  CALL_REMOTE_SDP, CALL_ESTABLISHED, CALL_RTPESTAB, CALL_RTCP, CALL_DTMF_START/END,
  CALL_CLOSED (``param`` is the reason, e.g. "Connection reset by user" on the side that
  hung up, "Connection reset by peer" on the other, or a SIP status line).
* ``baresip -s`` traces SIP messages to stdout (in the process log); ``menu`` also prints a
  ``[0:00:01] audio=0/0 (bit/s)`` status line a few times a second during a call.
* After one wrong password it re-sends REGISTER many times within milliseconds (16
  REGISTERs against Kamailio, see PEERS.md): do not build brute-force guards that lock a
  user out on that. ``reginfo`` then shows ``ERR`` (its text carries ANSI colour codes).
* ``sndcode DIGIT`` sends DTMF (RFC 4733 telephone-event; baresip offers it by itself); the
  receiving baresip emits CALL_DTMF_START (``param`` = the digit) and CALL_DTMF_END.
* Events are only sent to connected ctrl_tcp clients: anything before we connect is lost.
  A registering account (``regint > 0``) is therefore not written to ``accounts`` but added
  with the ``uanew`` command once connected, so REGISTER_OK/REGISTER_FAIL are seen.
* ``quit`` ends the process; the wrapper also stops it in teardown regardless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import socket
import threading
import time
from typing import Any, Literal

from .audio import wav_is_complete, wav_seconds
from .ports import free_port, free_port_both
from .procs import PeerProcess, PeerTimeoutError, Procs, wait_until

__all__ = ["Baresip", "BaresipAccount", "CtrlTcpClient"]

MODULE_PATH = "/usr/lib/baresip/modules"
#: Largest netstring accepted from ctrl_tcp (listcalls/reginfo text is small).
MAX_NETSTRING = 1024 * 1024
#: How many events a client keeps (oldest dropped first).
MAX_EVENTS = 10000


@dataclasses.dataclass
class BaresipAccount:
    """One line of baresip's ``accounts`` file.

    ``domain`` is the AOR host[:port]; ``outbound`` (e.g. ``sip:127.0.0.1:5060;transport=udp``)
    is the proxy REGISTER and calls go through; ``regint=0`` disables registration.
    """

    user: str
    domain: str = "127.0.0.1"
    password: str | None = None
    auth_user: str | None = None
    outbound: str | None = None
    transport: str = "udp"  # "udp" or "tcp"
    answermode: Literal["auto", "manual", "early"] = "auto"
    regint: int = 0
    audio_codecs: str = "PCMU,PCMA"
    extra: str = ""  # more ";name=value" account params, appended verbatim

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def line(self) -> str:
        parts = [f"<sip:{self.user}@{self.domain};transport={self.transport}>"]
        if self.auth_user:
            parts.append(f"auth_user={self.auth_user}")
        if self.password is not None:
            parts.append(f"auth_pass={self.password}")
        if self.outbound:
            parts.append(f'outbound="{self.outbound}"')
        parts.append(f"answermode={self.answermode}")
        parts.append(f"regint={self.regint}")
        parts.append(f"audio_codecs={self.audio_codecs}")
        line = ";".join(parts)
        if self.extra:
            line += self.extra if self.extra.startswith(";") else ";" + self.extra
        return line


def _netstring(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode()
    return str(len(body)).encode() + b":" + body + b","


class CtrlTcpClient:
    """A ctrl_tcp connection: send commands, collect responses and events (thread-safe)."""

    def __init__(self, host: str, port: int, *, name: str = "baresip") -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=5.0)
        self.sock.settimeout(None)
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._consumed: set[int] = set()
        self._dropped = 0
        self._token = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, name=f"ctrl-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    colon = buf.find(b":")
                    if colon < 0:
                        if len(buf) > 16:
                            raise ValueError(f"bad netstring prefix {buf[:16]!r}")
                        break
                    length = int(buf[:colon])
                    if length > MAX_NETSTRING:
                        raise ValueError(f"netstring too long: {length}")
                    end = colon + 1 + length
                    if len(buf) < end + 1:
                        break
                    if buf[end : end + 1] != b",":
                        raise ValueError("netstring not terminated by ','")
                    self._dispatch(json.loads(buf[colon + 1 : end]))
                    buf = buf[end + 1 :]
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        with self._cond:
            if msg.get("response"):
                self._responses[str(msg.get("token", ""))] = msg
            elif msg.get("event"):
                msg["_time"] = time.monotonic()
                self.events.append(msg)
                if len(self.events) > MAX_EVENTS:
                    del self.events[0]
                    self._dropped += 1
            self._cond.notify_all()

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a long command; return its ``data`` text. Raises if baresip says not ok."""
        with self._cond:
            self._token += 1
            token = str(self._token)
        obj: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            obj["params"] = params
        self.sock.sendall(_netstring(obj))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                remaining = deadline - time.monotonic()
                if self._closed:
                    raise PeerTimeoutError(f"{self.name}: ctrl_tcp closed during {command!r}")
                if remaining <= 0:
                    raise PeerTimeoutError(f"{self.name}: no response to {command!r}")
                self._cond.wait(remaining)
            resp = self._responses.pop(token)
        if not resp.get("ok", False):
            raise RuntimeError(f"{self.name}: {command} {params or ''} failed: {resp}")
        return str(resp.get("data", ""))

    def wait_event(
        self,
        types: str | tuple[str, ...],
        timeout: float = 10.0,
        *,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """The oldest not-yet-returned event of ``types`` (waiting up to ``timeout``).

        Events that arrived before the call count, so there is no race with fast peers;
        each event is returned once. ``call_id`` restricts to one call's events.
        """
        wanted = (types,) if isinstance(types, str) else types
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self.events):
                    key = index + self._dropped
                    if key in self._consumed or event.get("type") not in wanted:
                        continue
                    if call_id is not None and event.get("id") != call_id:
                        continue
                    self._consumed.add(key)
                    return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    seen = [e.get("type") for e in self.events[-30:]]
                    why = "ctrl_tcp closed" if self._closed else f"{timeout:.1f}s passed"
                    raise PeerTimeoutError(
                        f"{self.name}: no {'/'.join(wanted)} event ({why}); recent: {seen}"
                    )
                self._cond.wait(remaining)

    def event_types(self) -> list[str]:
        with self._cond:
            return [str(e.get("type")) for e in self.events]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._reader.join(timeout=2.0)


class Baresip:
    """A baresip instance with one account, a tone source and a recorder.

    ``tone_hz`` is what it sends (ausine); received audio lands in :meth:`recordings`.
    Call :meth:`start` (or use the constructor with ``start=True``, the default).
    """

    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        account: BaresipAccount | str = "alice",
        *,
        name: str = "baresip",
        sip_port: int | None = None,
        tone_hz: int = 440,
        sip_trace: bool = True,
        extra_config: dict[str, str] | None = None,
        start: bool = True,
    ) -> None:
        self.procs = procs
        self.name = procs.unique(name)
        self.dir = workdir / self.name
        self.account = BaresipAccount(account) if isinstance(account, str) else account
        self.sip_port = sip_port if sip_port is not None else free_port_both(span=2)
        self.ctrl_port = free_port("tcp")
        self.tone_hz = tone_hz
        self.sip_trace = sip_trace
        self.extra_config = dict(extra_config or {})
        self.record_dir = self.dir / "recordings"
        self.proc: PeerProcess | None = None
        self._ctrl: CtrlTcpClient | None = None
        if start:
            self.start()

    # -- set-up -----------------------------------------------------------------------------

    def config_text(self) -> str:
        lines = {
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            "net_interface": "127.0.0.1",
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_player": "aubridge,nil",
            "audio_alert": "aubridge,nil",
            "audio_source": f"ausine,{self.tone_hz}",
            "ausrc_srate": "48000",
            "ausrc_channels": "2",
            "audio_buffer": "20-160",
            "rtp_ports": "10000-20000",
            "jitter_buffer_delay": "5-10",
            "module_path": MODULE_PATH,
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
            "snd_path": str(self.record_dir),
        }
        lines.update(self.extra_config)
        modules = ["g711.so", "ausine.so", "aubridge.so", "sndfile.so"]
        apps = ["account.so", "contact.so", "menu.so", "ctrl_tcp.so"]
        out = [f"{k}\t{v}" for k, v in lines.items()]
        out += [f"module\t{m}" for m in modules]
        out += [f"module_app\t{m}" for m in apps]
        return "\n".join(out) + "\n"

    def start(self, timeout: float = 10.0) -> Baresip:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(exist_ok=True)
        (self.dir / "config").write_text(self.config_text())
        # A registering account is added over ctrl_tcp once we listen for events (see notes).
        deferred = self.account.regint > 0
        (self.dir / "accounts").write_text("" if deferred else self.account.line() + "\n")
        (self.dir / "contacts").write_text("")
        argv = ["baresip", "-f", str(self.dir)]
        if self.sip_trace:
            argv.append("-s")
        self.proc = self.procs.start(self.name, argv, env={"HOME": str(self.dir)})
        self.proc.wait_for(r"baresip is ready\.", timeout)

        def connect() -> CtrlTcpClient | None:
            try:
                return CtrlTcpClient("127.0.0.1", self.ctrl_port, name=self.name)
            except OSError:
                return None

        self._ctrl = wait_until(connect, timeout, message=f"{self.name} ctrl_tcp port")
        self.procs.on_teardown(self._ctrl.close)
        if deferred:
            self.command("uanew", self.account.line())
        return self

    @property
    def ctrl(self) -> CtrlTcpClient:
        if self._ctrl is None:
            raise RuntimeError(f"{self.name} not started")
        return self._ctrl

    @property
    def uri(self) -> str:
        """The URI that reaches this instance directly (no proxy); ``;transport=tcp`` only
        for TCP accounts (baresip appends its own account's transport when it dials)."""
        base = f"sip:{self.account.user}@127.0.0.1:{self.sip_port}"
        return base + ";transport=tcp" if self.account.transport == "tcp" else base

    @property
    def aor(self) -> str:
        return self.account.aor

    # -- commands ---------------------------------------------------------------------------

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> str:
        return self.ctrl.command(command, params, timeout)

    def dial(self, uri: str) -> str:
        """Call ``uri``. A ``;transport=`` equal to the account's is dropped: baresip appends
        its account transport itself (``;transport=tcp;transport=tcp`` otherwise)."""
        own = f";transport={self.account.transport}"
        if own in uri.lower():
            start = uri.lower().index(own)
            uri = uri[:start] + uri[start + len(own) :]
        return self.command("dial", uri)

    def hangup(self) -> str:
        return self.command("hangup")

    def answer(self) -> str:
        """Accept the incoming call (for ``answermode=manual``)."""
        return self.command("accept")

    def listcalls(self) -> str:
        return self.command("listcalls")

    def reginfo(self) -> str:
        return self.command("reginfo")

    def send_dtmf(self, digits: str) -> str:
        return self.command("sndcode", digits)

    def quit(self, timeout: float = 5.0) -> int | None:
        """Ask baresip to quit; wait for the process to end (killed if it does not)."""
        assert self.proc is not None
        with contextlib.suppress(PeerTimeoutError, OSError, RuntimeError):
            self.command("quit", timeout=1.0)
        try:
            return self.proc.wait(timeout)
        except PeerTimeoutError:
            return self.proc.stop()

    def wait_event(
        self,
        types: str | tuple[str, ...],
        timeout: float = 10.0,
        *,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`CtrlTcpClient.wait_event` (e.g. ``"CALL_ESTABLISHED"``)."""
        return self.ctrl.wait_event(types, timeout, call_id=call_id)

    # -- audio ------------------------------------------------------------------------------

    def recordings(self, kind: Literal["dec", "enc"] = "dec") -> list[pathlib.Path]:
        """WAV files sndfile wrote: ``dec`` = audio received, ``enc`` = audio sent."""
        files = self.record_dir.glob(f"dump-*-{kind}.wav")
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def wait_audio(
        self, seconds: float = 1.0, kind: Literal["dec", "enc"] = "dec", timeout: float = 10.0
    ) -> pathlib.Path:
        """Wait until the current call's recording holds ``seconds`` of audio (a call that
        is hung up at once records nothing: wait on this before hanging up)."""

        def enough() -> pathlib.Path | None:
            files = self.recordings(kind)
            if files and wav_seconds(files[-1]) >= seconds:
                return files[-1]
            return None

        return wait_until(enough, timeout, message=f"{self.name}: {seconds}s of {kind} audio")

    def wait_recording(
        self, kind: Literal["dec", "enc"] = "dec", timeout: float = 5.0
    ) -> pathlib.Path:
        """The newest finished recording (its WAV header written at call end)."""

        def done() -> pathlib.Path | None:
            files = self.recordings(kind)
            if files and wav_is_complete(files[-1]):
                return files[-1]
            return None

        return wait_until(done, timeout, message=f"{self.name} {kind} recording")
