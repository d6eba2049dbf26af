"""`sipwire serve` as a real process for end-to-end tests with real peers.

:class:`SipwireServe` creates a SQLite database in the test's directory, adds users with
``sipwire user add`` (the same CLI a user runs), starts ``python -m sipwire serve`` on a
free port (UDP and TCP on the same number) for domain ``localhost`` and waits until both
sockets are bound. The process is owned by :class:`~peers.procs.Procs`, so it is stopped
(SIGTERM, then SIGKILL) in teardown and its log is attached to failing tests.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Mapping, Sequence

from . import sipsak
from .ports import free_port_both, wait_bound
from .procs import PeerProcess, Procs

__all__ = ["SipwireServe"]


class SipwireServe:
    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        users: Mapping[str, str] | None = None,
        *,
        domain: str = "localhost",
        extra_args: Sequence[str] = (),
        name: str = "sipwire-serve",
    ) -> None:
        self.procs = procs
        self.dir = workdir / procs.unique(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "sipwire.db"
        self.domain = domain
        self.port = free_port_both()
        for user, password in (users or {}).items():
            self.add_user(user, password)
        self.proc: PeerProcess = procs.start(
            name,
            [
                sys.executable,
                "-m",
                "sipwire",
                "serve",
                "--db",
                str(self.db),
                "--domain",
                domain,
                "--listen",
                f"udp:127.0.0.1:{self.port}",
                "--listen",
                f"tcp:127.0.0.1:{self.port}",
                "--log-level",
                "debug",
                *extra_args,
            ],
            cwd=self.dir,
        )
        wait_bound(self.port, ("udp", "tcp"), timeout=20)

    def add_user(self, user: str, password: str) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sipwire",
                "user",
                "add",
                user,
                "--password",
                password,
                "--domain",
                self.domain,
                "--db",
                str(self.db),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def outbound(self, transport: str = "udp") -> str:
        """The ``outbound=`` proxy URI for baresip accounts."""
        return f"sip:127.0.0.1:{self.port};transport={transport}"

    def sipsak_usrloc(
        self, user: str, password: str, contact: str = "empty", expires: int = 300
    ) -> sipsak.SipsakResult:
        """``sipsak -U`` against this server for ``user@domain``: ``contact="empty"`` queries
        the bindings (the 200 lists them), a URI with ``expires=0`` removes that binding."""
        return sipsak.run(
            self.procs,
            [
                "-U",
                "-C",
                contact,
                "-x",
                str(expires),
                "-a",
                password,
                "-u",
                user,
                "-p",
                self.address,
                "-s",
                f"sip:{user}@{self.domain}",
                "-vvv",
            ],
        )
