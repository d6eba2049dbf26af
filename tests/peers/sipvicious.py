"""SIPVicious 0.3.3 (``svwar`` extension enumerator, ``svcrack`` password guesser).

For security tests: a server must answer known and unknown users alike (so ``svwar`` finds
nothing) and slow down or stop guessing. Run only against loopback with small ranges.

Tricks found by running it:

* Both bind **local port 5060 on all interfaces** by default ("binding to any:5060"),
  which collides with a server on 5060 and with parallel tests: always pass ``-P PORT``
  (a free UDP port) and ``-b 127.0.0.1`` (done here).
* Target as ``udp://127.0.0.1:PORT``; ``--domain D`` sets the From/To domain.
* ``svwar`` first probes a random extension; if the server challenges unknown users
  (401/407) it logs "SIP server replied with an authentication request for an unknown
  extension. Set --force to force a scan." and stops: that *is* the secure behaviour.
  With ``--force`` every extension gets the same 401 and it reports "found nothing".
  Found extensions are printed in a table (``| Extension | Authentication |``).
* ``svcrack -u USER -d DICT`` (or ``-r 1000-1010``) tries each password once; results
  table ``| Extension | Password |``. Against Kamailio 5.6 its Authorization header is
  rejected as malformed ("auth_check_hdr_md5(): Credentials are not filled properly"), so
  it never succeeds there: do not use it as proof that a password is guessable.
* ``-m OPTIONS`` finds users whose OPTIONS get a 200 (e.g. relayed to a registered UA)
  versus 404 for unknown ones: Kamailio's plain registrar leaks who is registered this way.
* Every run waits ~3 s for late answers after the last request (not shortened by
  ``--maximumtime`` or ``-t``): budget for it.
* Its User-Agent is ``friendly-scanner``. Exit status is 0 even when nothing is found;
  read the output. ``--maximumtime S`` bounds the wait without responses; ``-t S`` throttles.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Iterable, Sequence

from .ports import free_port
from .procs import Procs

__all__ = ["SvResult", "svcrack", "svwar"]


@dataclasses.dataclass
class SvResult:
    returncode: int
    output: str

    @property
    def found_nothing(self) -> bool:
        return "found nothing" in self.output

    @property
    def rows(self) -> list[tuple[str, str]]:
        """Result table rows, e.g. ``[("100", "reqauth")]`` or ``[("100", "1234")]``."""
        rows = re.findall(r"^\|\s*([^|\s][^|]*?)\s*\|\s*([^|]*?)\s*\|\s*$", self.output, re.M)
        return [r for r in rows if r[0] not in ("Extension",)]


def _run(procs: Procs, argv: Sequence[str], timeout: float) -> SvResult:
    proc = procs.start(argv[0], argv)
    rc = proc.wait(timeout)
    return SvResult(rc, proc.output)


def svwar(
    procs: Procs,
    port: int,
    extensions: str | Sequence[str],
    workdir: pathlib.Path,
    *,
    method: str = "REGISTER",
    domain: str | None = None,
    force: bool = False,
    extra: Iterable[str] = (),
    timeout: float = 60.0,
) -> SvResult:
    """Enumerate ``extensions`` on 127.0.0.1:``port`` over UDP: a range string such as
    ``"100-105,200"`` (``-e``) or a list of user names (a ``-d`` dictionary in ``workdir``)."""
    argv = ["svwar", "-P", str(free_port("udp")), "-b", "127.0.0.1"]
    if isinstance(extensions, str):
        argv += ["-e", extensions]
    else:
        dictionary = workdir / "svwar-users.txt"
        dictionary.write_text("".join(e + "\n" for e in extensions))
        argv += ["-d", str(dictionary)]
    argv += ["-m", method]
    if domain:
        argv += ["--domain", domain]
    if force:
        argv.append("--force")
    argv += [*extra, f"udp://127.0.0.1:{port}"]
    return _run(procs, argv, timeout)


def svcrack(
    procs: Procs,
    port: int,
    user: str,
    passwords: Sequence[str],
    workdir: pathlib.Path,
    *,
    domain: str | None = None,
    extra: Iterable[str] = (),
    timeout: float = 60.0,
) -> SvResult:
    """Try ``passwords`` for ``user`` on 127.0.0.1:``port`` over UDP (dictionary file)."""
    dictionary = workdir / f"svcrack-{user}.txt"
    dictionary.write_text("".join(p + "\n" for p in passwords))
    argv = ["svcrack", "-P", str(free_port("udp")), "-b", "127.0.0.1", "-u", user]
    argv += ["-d", str(dictionary)]
    if domain:
        argv += ["--domain", domain]
    argv += [*extra, f"udp://127.0.0.1:{port}"]
    return _run(procs, argv, timeout)
