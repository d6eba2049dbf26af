"""sipsak 0.9.8.1: one-shot OPTIONS pings, REGISTERs with digest auth, requests from files.

Every run goes through :meth:`procs.Procs.start` (own process group, log captured, killed in
teardown) and returns a :class:`SipsakResult` with the exit code, the merged output and the
final status code sipsak printed (``-vv`` is always on so replies are logged).

Tricks found by running it:

* Exit codes (man page, confirmed): 0 = a 200 was received; 1 = a final reply other than
  1xx/2xx (e.g. 403, 404); 2 = local error (bad options) *and* "authorization failed"
  (a 401/407 after it already sent credentials: wrong password); 3 = remote error:
  ICMP "connection refused", no answer (timeout), redirect without Contact.
* BUG: it truncates 5-digit ports in the Request-URI and To/From it writes
  (``sip:127.0.0.1:35449`` goes on the wire as ``sip:127.0.0.1:3544``) while still sending
  to the right port. Every port we get from the OS has 5 digits, so the helpers here move
  the port into ``-p HOST:PORT`` (outbound proxy, "request target") and strip it from the
  URI. A server under test therefore sees a Request-URI without a port: it must treat its
  own host/domain without port as "myself".
* ``-p HOST:PORT`` must come *before* ``-s URI`` on the command line.
* Without ``--symmetric`` it sends from one ephemeral port and listens on another (the Via
  ``sent-by`` port differs from the source port): a server must answer to ``rport``/the
  source address, or to the Via port, both work.
* ``-U`` (usrloc mode) with ``-C CONTACT`` REGISTERs that contact once (``-x EXPIRES``,
  default 15 s); with ``-a PASSWORD -u AUTHUSER`` it answers one 401/407 challenge. Via
  insertion is off in usrloc mode (it warns unless ``-i``).
* ``-M`` (message mode) segfaults in this build: send a MESSAGE from a request file with
  ``-f FILE`` (:func:`send_file`).
* T1 defaults to 500 ms (``-Z MS`` / ``--timer-t1``); ``-D N`` multiplies T1 for the
  final-response wait after a provisional reply or on TCP. Short T1 = fast negative tests.
* ``-f FILE``: the request is sent as written, except that CRs are inserted before bare LFs
  (``-L`` turns that off), a Via is inserted (``-i`` turns that off) and an empty line is
  appended when missing. ``-E udp|tcp`` / ``--transport`` forces the transport.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Iterable

from .procs import PeerProcess, Procs

__all__ = ["SipsakResult", "options", "register", "run", "send_file", "split_port"]


@dataclasses.dataclass
class SipsakResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def status(self) -> int | None:
        """The final reply's status code sipsak reported (None if no reply)."""
        codes = re.findall(r"^\s*SIP/2\.0 (\d{3})", self.output, re.MULTILINE)
        finals = [int(c) for c in codes if int(c) >= 200]
        return finals[-1] if finals else None

    def __repr__(self) -> str:
        return f"<sipsak rc={self.returncode} status={self.status}>"


def split_port(uri: str) -> tuple[str, str | None]:
    """``sip:u@h:PORT;params`` -> (``sip:u@h;params``, ``h:PORT``); (uri, None) if no port."""
    m = re.match(r"^(sips?:(?:[^@;]*@)?)(\[[^\]]+\]|[^:;]+):(\d+)(.*)$", uri)
    if not m:
        return uri, None
    prefix, host, port, rest = m.groups()
    return f"{prefix}{host}{rest}", f"{host}:{port}"


def run(
    procs: Procs,
    args: Iterable[str],
    *,
    timeout: float = 40.0,
    name: str = "sipsak",
) -> SipsakResult:
    """Run ``sipsak ARGS`` to completion (bounded); returns exit code and merged output."""
    proc: PeerProcess = procs.start(name, ["sipsak", *args])
    rc = proc.wait(timeout)
    return SipsakResult(rc, proc.output)


def _target_args(uri: str, proxy: str | None) -> list[str]:
    bare, hostport = split_port(uri)
    args: list[str] = []
    if proxy is not None:
        args += ["-p", proxy]
    elif hostport is not None:
        args += ["-p", hostport]
    args += ["-s", bare if (proxy is not None or hostport is not None) else uri]
    return args


def options(
    procs: Procs,
    uri: str,
    *,
    proxy: str | None = None,
    transport: str | None = None,
    extra: Iterable[str] = (),
    timeout: float = 40.0,
) -> SipsakResult:
    """OPTIONS ``uri`` (its port moved into ``-p``, see module notes); 0 means 200."""
    args = ["-vv"]
    if transport:
        args.append(f"--transport={transport}")
    args += [*extra, *_target_args(uri, proxy)]
    return run(procs, args, timeout=timeout, name="sipsak-options")


def register(
    procs: Procs,
    aor: str,
    *,
    proxy: str,
    contact: str,
    user: str | None = None,
    password: str | None = None,
    expires: int = 60,
    transport: str | None = None,
    extra: Iterable[str] = (),
    timeout: float = 40.0,
) -> SipsakResult:
    """REGISTER ``contact`` for ``aor`` (e.g. ``sip:alice@example.test``) via ``proxy``
    (``HOST:PORT``), answering a digest challenge with ``user``/``password``."""
    args = ["-vvv", "-i", "-U", "-C", contact, "-x", str(expires)]
    if password is not None:
        args += ["-a", password]
    if user is not None:
        args += ["-u", user]
    if transport:
        args.append(f"--transport={transport}")
    args += [*extra, "-p", proxy, "-s", split_port(aor)[0]]
    return run(procs, args, timeout=timeout, name="sipsak-register")


def send_file(
    procs: Procs,
    request: str,
    uri: str,
    workdir: pathlib.Path,
    *,
    proxy: str | None = None,
    extra: Iterable[str] = (),
    timeout: float = 40.0,
) -> SipsakResult:
    """Send the SIP request text ``request`` (LF line ends are fine) with ``-f``.

    sipsak adds CRs and a Via (see module notes); the file is written to ``workdir``.
    """
    path = workdir / f"sipsak-request-{abs(hash(request)) % 10**8}.sip"
    path.write_text(request.replace("\r\n", "\n"))
    args = ["-vv", "-f", str(path), *extra, *_target_args(uri, proxy)]
    return run(procs, args, timeout=timeout, name="sipsak-file")
