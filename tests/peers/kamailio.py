"""Kamailio 5.6 (Debian ``kamailio``) in the foreground on loopback, with a generated config.

:class:`Kamailio` runs ``kamailio -f CFG -DD -E -w DIR -Y DIR -P PIDFILE -m 64 -M 8`` with a
config string you give it (``{port}`` and friends are *not* substituted: build the string
yourself, e.g. with :func:`registrar_cfg`), waits until its SIP port is bound and stops it
in teardown. :func:`registrar_cfg` is a minimal registrar + stateful proxy: REGISTER needs
digest auth against a db_text ``subscriber`` table (clear-text passwords), locations stay
in memory, requests to registered users are relayed with Record-Route.

Tricks found by running it:

* ``-DD``: stay in the foreground but still fork the SIP worker children (``-D`` alone
  means "do not fork" and serves less); ``-E`` logs to stderr (our log); SIGTERM stops the
  main process and it kills its children (we also kill the process group).
* ``-w DIR`` (working dir) and ``-Y DIR`` (runtime dir, default /run/kamailio) keep it out of
  system paths; do not load ``ctl``/``jsonrpcs`` (they create FIFOs/sockets there).
* ``-m 64 -M 8`` (MB shared/private) is plenty for tests; the performance tuning in
  PEERS.md (``-m 3072 -M 16 -x tlsf -X tlsf``, 4 children) is for benchmarks: pass
  ``extra_args`` / edit ``children``.
* ``listen=udp:127.0.0.1:P`` and ``listen=tcp:127.0.0.1:P``: the same port for both (use
  ``free_port_both``). ``auto_aliases=no`` plus ``alias=DOMAIN`` makes ``uri==myself``
  match the test domain and nothing else.
* db_text: a directory with a ``version`` file (``id(int,auto) table_name(string)
  table_version(int)`` then ``0:subscriber:7``) and a ``subscriber`` file (``id(int,auto)
  username(string) domain(string) password(string) ha1(string) ha1b(string)`` then
  ``1:alice:DOMAIN:secret:HA1:HA1B``; an empty field is NULL and a NULL in a column not
  declared ``(string,null)`` makes db_text drop the whole table: "null value not allowed").
  Passwords may not contain ``:``. auth_db with ``calculate_ha1=yes`` and
  ``password_column="password"`` reads clear-text passwords; ``use_domain=0`` ignores the
  domain column. The digest realm is the From domain (``$fd``).
* GRUU (RFC 5627): usrloc/registrar hand out ``pub-gruu``/``temp-gruu`` to UAs that send
  ``+sip.instance`` (linphone does), and linphone then puts the GRUU
  (``sip:lin@DOMAIN;gr=urn:uuid:...``) in its dialog Contact. In-dialog requests then carry
  a Request-URI in our own domain after ``loose_route()``: the config must ``lookup()``
  it again, or relaying fails with "478 Unresolvable destination" (BYE never arrives).
* The config check ``kamailio -c -f CFG`` reports errors without starting
  (:func:`check_cfg`); a broken config makes the foreground process exit at once, so
  :meth:`Kamailio.start` fails fast with the log tail.
"""

from __future__ import annotations

import hashlib
import pathlib
import subprocess
from collections.abc import Iterable, Mapping
from typing import Literal

from .ports import free_port_both, wait_bound
from .procs import PeerProcess, Procs, require_binary

__all__ = ["Kamailio", "check_cfg", "registrar_cfg", "write_dbtext"]

MODULE_PATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules"


def write_dbtext(db_dir: pathlib.Path, users: Mapping[str, str], domain: str) -> pathlib.Path:
    """Write a db_text database with a ``subscriber`` table of ``user -> password``."""
    db_dir.mkdir(parents=True, exist_ok=True)
    (db_dir / "version").write_text(
        "id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n0:location:9\n"
    )

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    rows = "".join(
        f"{i}:{user}:{domain}:{password}:{md5(f'{user}:{domain}:{password}')}:"
        f"{md5(f'{user}@{domain}:{domain}:{password}')}\n"
        for i, (user, password) in enumerate(sorted(users.items()), start=1)
    )
    (db_dir / "subscriber").write_text(
        "id(int,auto) username(string) domain(string) password(string) ha1(string) "
        "ha1b(string) \n" + rows
    )
    return db_dir


def registrar_cfg(
    *,
    port: int,
    db_dir: pathlib.Path,
    domain: str = "127.0.0.1",
    auth_register: bool = True,
    auth_invite: bool = False,
    children: int = 2,
    tcp: bool = True,
    log_level: int = 2,
) -> str:
    """A minimal registrar/proxy config (see the module docstring).

    ``auth_invite`` also challenges INVITEs from local users (407, Proxy-Authenticate).
    OPTIONS to the server itself (no user part) get ``200 Keepalive``.
    """
    listens = f"listen=udp:127.0.0.1:{port}\n"
    if tcp:
        listens += f"listen=tcp:127.0.0.1:{port}\n"
    aliases = f'alias="{domain}"\n'
    invite_auth = (
        """
    if (is_method("INVITE") && from_uri==myself) {
        if (!proxy_authorize("$fd", "subscriber")) {
            proxy_challenge("$fd", "0");
            exit;
        }
        consume_credentials();
    }
"""
        if auth_invite
        else ""
    )
    register_auth = (
        """
        if (!www_authorize("$fd", "subscriber")) {
            www_challenge("$fd", "0");
            exit;
        }
        consume_credentials();
"""
        if auth_register
        else ""
    )
    return f"""#!KAMAILIO
debug={log_level}
log_stderror=yes
memdbg=5
memlog=5
children={children}
auto_aliases=no
{listens}{aliases}enable_tls=no
tcp_connection_lifetime=3605

mpath="{MODULE_PATH}"
loadmodule "db_text.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
loadmodule "auth_db.so"

modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)
modparam("registrar", "max_expires", 3600)
modparam("auth_db", "db_url", "text://{db_dir}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("auth_db", "use_domain", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        xlog("L_WARN", "malformed request from $si:$sp\\n");
        exit;
    }}
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (uri==myself && $rU!=$null && !lookup("location")) {{
                sl_send_reply("404", "Not Found");
                exit;
            }}
            route(RELAY);
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                route(RELAY);
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (uri!=myself) {{
            sl_send_reply("403", "Not my domain");
            exit;
        }}{register_auth}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}{invite_auth}
    if (uri!=myself) {{
        sl_send_reply("403", "Not relaying");
        exit;
    }}
    if (is_method("INVITE|SUBSCRIBE|REFER")) {{
        record_route();
    }}
    if ($rU==$null) {{
        sl_send_reply("484", "Address Incomplete");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""


def check_cfg(cfg_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``kamailio -c -f CFG`` (syntax and module check, does not start)."""
    return subprocess.run(
        [require_binary("kamailio"), "-c", "-f", str(cfg_path), "-L", MODULE_PATH],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Kamailio:
    """A Kamailio process running ``cfg`` (a config string) on 127.0.0.1:``port``.

    Use :meth:`registrar` for the ready-made registrar/proxy with ``users``.
    """

    def __init__(
        self,
        procs: Procs,
        workdir: pathlib.Path,
        cfg: str,
        *,
        port: int,
        name: str = "kamailio",
        tcp: bool = True,
        memory_mb: tuple[int, int] = (64, 8),
        extra_args: Iterable[str] = (),
        start: bool = True,
    ) -> None:
        self.procs = procs
        self.name = procs.unique(name)
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.tcp = tcp
        self.cfg_path = self.dir / "kamailio.cfg"
        self.cfg_path.write_text(cfg)
        self.argv = [
            "kamailio",
            "-f",
            str(self.cfg_path),
            "-DD",
            "-E",
            "-w",
            str(self.dir),
            "-Y",
            str(self.dir),
            "-P",
            str(self.dir / "kamailio.pid"),
            "-L",
            MODULE_PATH,
            "-m",
            str(memory_mb[0]),
            "-M",
            str(memory_mb[1]),
            *extra_args,
        ]
        self.proc: PeerProcess | None = None
        if start:
            self.start()

    @classmethod
    def registrar(
        cls,
        procs: Procs,
        workdir: pathlib.Path,
        users: Mapping[str, str],
        *,
        domain: str = "127.0.0.1",
        port: int | None = None,
        auth_register: bool = True,
        auth_invite: bool = False,
        name: str = "kamailio",
    ) -> Kamailio:
        """A registrar/proxy for ``domain`` with digest users ``{user: password}``."""
        port = port if port is not None else free_port_both()
        db_dir = write_dbtext(workdir / f"{name}-db", users, domain)
        cfg = registrar_cfg(
            port=port,
            db_dir=db_dir,
            domain=domain,
            auth_register=auth_register,
            auth_invite=auth_invite,
        )
        return cls(procs, workdir, cfg, port=port, name=name)

    def start(self, timeout: float = 15.0) -> Kamailio:
        self.proc = self.procs.start(self.name, self.argv, cwd=self.dir)
        kinds: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp") if self.tcp else ("udp",)
        try:
            wait_bound(self.port, kinds, timeout=timeout)
        except AssertionError:
            raise AssertionError(
                f"{self.name} did not bind 127.0.0.1:{self.port}; log tail:\n{self.proc.tail()}"
            ) from None
        if not self.proc.alive:
            raise AssertionError(f"{self.name} exited at start:\n{self.proc.tail()}")
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def outbound(self, transport: str = "udp") -> str:
        """An ``outbound=`` / proxy URI for user agents: ``sip:127.0.0.1:PORT;transport=..``."""
        return f"sip:127.0.0.1:{self.port};transport={transport}"
