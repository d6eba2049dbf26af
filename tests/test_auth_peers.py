"""The authentication policy against real peers on loopback (``pytest -m peer``).

A :class:`LoopbackServer` runs an :class:`~sipwire.aio.endpoint.Endpoint` with the
:class:`~sipwire.apps.auth.Authenticator` in front of the
:class:`~sipwire.apps.registrar.Registrar` (REGISTER) and of a stand-in proxy (anything
else: ``authorize`` then 480) on its own event loop thread, so the peers' blocking harness
can drive it. Proven here:

* SIPVicious ``svcrack`` with a 20-word list holding the right password does not find it:
  with the default guard (one verified guess per cooldown) and with the cooldown off (five
  verified guesses, then a ban). A control run with the guard off finds it, so these tests
  can fail.
* ``svwar`` (REGISTER, INVITE, OPTIONS) learns nothing about which users exist; a control
  server that answers 404 for unknown users is caught by the same scan.
* baresip 1.0.0 with a wrong password re-sends REGISTER 15 times within milliseconds; that
  costs one counted failure, and restarted with the right password from the same address
  it registers at once (well inside 60 s).
* SIPp 3.6.1 registers with Digest when its User-Agent names it (MD5 alone offered), over
  UDP and TCP.
* The same against the real ``sipwire user add`` + ``sipwire serve`` processes.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from peers.baresip import Baresip, BaresipAccount
from peers.ports import free_port_both, wait_bound
from peers.procs import Procs
from peers.sipp import Sipp, register_scenario
from peers.sipvicious import svcrack, svwar
from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.apps.auth import Authenticator, AuthOutcome, AuthPolicy, GuardConfig
from sipwire.apps.registrar import Registrar
from sipwire.core.digest import DigestResult, ha1_table
from sipwire.core.message import Request
from sipwire.store import UserRecord
from sipwire.store.memory import MemoryLocationStore, MemoryUserStore

pytestmark = pytest.mark.peer

DOMAIN = "sipwire.test"
T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    """One request the server decided on."""

    method: str
    to_user: str | None
    username: str | None  # from the credentials, if any
    source: tuple[str, int]
    outcome: AuthOutcome


class LoopbackServer:
    """Endpoint + Authenticator + Registrar on 127.0.0.1 (UDP and TCP), in a thread.

    ``leaky=True`` answers 404 to REGISTERs for unknown users before authenticating: a
    deliberately bad server for control runs.
    """

    def __init__(
        self,
        procs: Procs,
        users: dict[str, str],
        *,
        policy: AuthPolicy | None = None,
        domain: str = DOMAIN,
        leaky: bool = False,
    ) -> None:
        self.users = users
        self.policy = policy or AuthPolicy()
        self.domain = domain
        self.leaky = leaky
        self.port = free_port_both()
        self.seen: list[Seen] = []
        self.auth: Authenticator | None = None
        self.registrar: Registrar | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="auth-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise TimeoutError("the loopback server did not start")
        if self._error is not None:
            raise self._error
        procs.on_teardown(self.close)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = MemoryUserStore()
        for name, password in self.users.items():
            await store.put_user(
                UserRecord(
                    username=name, domain=self.domain, ha1=ha1_table(name, self.domain, password)
                )
            )
        self.auth = Authenticator(store, domains=[self.domain], policy=self.policy)
        self.registrar = Registrar(MemoryLocationStore(), wall_clock=time.time)
        endpoint = Endpoint(
            listen=[f"udp:127.0.0.1:{self.port}", f"tcp:127.0.0.1:{self.port}"],
            user_agent="sipwire-test",
        )
        endpoint.on("REGISTER", self._on_register)
        endpoint.on_request(self._on_other)
        async with endpoint:
            self._ready.set()
            await self._stop.wait()

    def _note(self, request: Request, tx: ServerTransaction, outcome: AuthOutcome) -> None:
        header = "Authorization" if request.method == "REGISTER" else "Proxy-Authorization"
        username = None
        value = request.headers.get(header)
        if value is not None:
            from sipwire.core.digest import Credentials

            try:
                username = Credentials.parse(value).username
            except Exception:
                username = None
        to_user = getattr(request.to.uri, "user", None)
        self.seen.append(Seen(request.method, to_user, username, tx.source.remote, outcome))

    async def _on_register(self, request: Request, tx: ServerTransaction) -> None:
        assert self.auth is not None and self.registrar is not None
        if self.leaky:
            to_user = getattr(request.to.uri, "user", None)
            if to_user not in self.users:
                await tx.respond(404, "Not Found")
                return
        outcome = await self.auth.authenticate(request, tx, proxy=False)
        self._note(request, tx, outcome)
        if not outcome.accepted:
            return
        result = await self.registrar.register(request, source=f"UDP {tx.source.remote[0]}")
        await tx.respond(result.status, result.reason, headers=result.headers)

    async def _on_other(self, request: Request, tx: ServerTransaction) -> None:
        assert self.auth is not None
        outcome = await self.auth.authenticate(request, tx, proxy=True)
        self._note(request, tx, outcome)
        if outcome.accepted and not tx.is_final:
            await tx.respond(480, "Temporarily Unavailable")

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop thread and return its result."""
        assert self._loop is not None

        async def job() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(job(), self._loop).result(5.0)

    def bindings(self, aor: str) -> list[str]:
        assert self._loop is not None and self.registrar is not None
        registrar = self.registrar
        future = asyncio.run_coroutine_threadsafe(registrar.lookup(aor), self._loop)
        return [b.contact for b in future.result(5.0)]

    def attempts(self, username: str) -> list[Seen]:
        """Requests that carried credentials of ``username``."""
        return [s for s in list(self.seen) if s.username == username]

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10.0)


GUARD_OFF = GuardConfig(max_failures=10_000, max_failures_per_source=10_000, retry_cooldown=0)
MD5_ONLY = ("MD5",)  # svcrack 0.3.3 computes MD5 only: it cannot answer a SHA-256 challenge


def wordlist(right: str) -> list[str]:
    words = [f"guess{i:02d}" for i in range(20)]
    words[12] = right  # the 13th word
    return words


# ------------------------------------------------------------------------------------------
# svcrack


def test_svcrack_control_finds_the_password_when_the_guard_is_off(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    """Proof that svcrack works against this server and that the tests below can fail."""
    server = LoopbackServer(
        procs, {"alice": "Tr0ub4dor"}, policy=AuthPolicy(algorithms=MD5_ONLY, guard=GUARD_OFF)
    )
    result = svcrack(procs, server.port, "alice", wordlist("Tr0ub4dor"), tmp_path, domain=DOMAIN)
    assert ("alice", "Tr0ub4dor") in result.rows, result.output
    assert any(s.outcome.accepted for s in server.attempts("alice"))


@pytest.mark.parametrize(
    "guard",
    [GuardConfig(), GuardConfig(retry_cooldown=0)],
    ids=["default-guard", "ban-only"],
)
def test_svcrack_does_not_find_the_password(
    procs: Procs, tmp_path: pathlib.Path, guard: GuardConfig
) -> None:
    server = LoopbackServer(
        procs, {"alice": "Tr0ub4dor"}, policy=AuthPolicy(algorithms=MD5_ONLY, guard=guard)
    )
    result = svcrack(procs, server.port, "alice", wordlist("Tr0ub4dor"), tmp_path, domain=DOMAIN)
    assert "Tr0ub4dor" not in result.output
    assert ("alice", "Tr0ub4dor") not in result.rows, result.output
    attempts = server.attempts("alice")
    # svcrack did try its whole list, and none of its answers got in.
    assert len(attempts) >= 20, [s.outcome.why for s in attempts]
    assert not any(s.outcome.accepted for s in attempts)
    verified = [
        s
        for s in attempts
        if s.outcome.result in (DigestResult.BAD_RESPONSE, DigestResult.UNKNOWN_USER, None)
        and s.outcome.why not in ("cooling down", "banned", "repeated answer")
    ]
    assert len(verified) <= guard.max_failures, [s.outcome.why for s in attempts]
    if guard.retry_cooldown == 0:
        assert any(s.outcome.status == 403 for s in attempts)  # the ban kicked in


# ------------------------------------------------------------------------------------------
# svwar


USERS = {"1000": "pw-1000", "1003": "pw-1003", "1007": "pw-1007"}


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_learns_nothing(procs: Procs, tmp_path: pathlib.Path, method: str) -> None:
    server = LoopbackServer(procs, USERS)
    # svwar's own check: it refuses to scan a server that challenges unknown users.
    probe = svwar(procs, server.port, "1000-1009", tmp_path, method=method, domain=DOMAIN)
    assert "authentication request for an unknown extension" in probe.output, probe.output
    assert probe.rows == []
    scan = svwar(
        procs, server.port, "1000-1009", tmp_path, method=method, domain=DOMAIN, force=True
    )
    assert scan.rows == [] and scan.found_nothing, scan.output
    # Forced, svwar takes its random probe's answer as "unknown user" and gives up at the
    # first extension answered the same way ("We got an unknown response"): 1000, which
    # exists, looked exactly like a user that does not.
    assert "unknown response" in scan.output, scan.output
    answered = [s for s in server.seen if s.method == method]
    assert "1000" in {s.to_user for s in answered}
    assert any(s.to_user not in USERS for s in answered)
    expected = 401 if method == "REGISTER" else 407
    assert {s.outcome.status for s in answered} == {expected}


def test_svwar_control_catches_a_leaky_server(procs: Procs, tmp_path: pathlib.Path) -> None:
    server = LoopbackServer(procs, USERS, leaky=True)
    scan = svwar(procs, server.port, "1000-1009", tmp_path, domain=DOMAIN)
    assert sorted(ext for ext, _ in scan.rows) == sorted(USERS), scan.output


# ------------------------------------------------------------------------------------------
# baresip: wrong password, then fixed


def test_baresip_wrong_password_then_right_registers_at_once(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    server = LoopbackServer(procs, {"alice": "correct-horse"})
    outbound = f"sip:{server.address};transport=udp"
    wrong = Baresip(
        procs,
        tmp_path,
        BaresipAccount("alice", domain=DOMAIN, password="battery", outbound=outbound, regint=60),
        name="baresip-wrong",
    )
    wrong.wait_event("REGISTER_FAIL", timeout=15)
    burst = server.attempts("alice")
    assert len(burst) >= 10, [s.outcome.why for s in burst]  # baresip's quick re-sends
    assert all(s.outcome.status == 401 for s in burst)
    counted = [s for s in burst if s.outcome.result is DigestResult.BAD_RESPONSE]
    assert len(counted) == 1, [s.outcome.why for s in burst]
    assert server.auth is not None
    auth = server.auth
    assert server.call(lambda: auth.guard.banned_until("127.0.0.1", "alice", time.time())) is None
    wrong.quit()

    right = Baresip(
        procs,
        tmp_path,
        BaresipAccount(
            "alice", domain=DOMAIN, password="correct-horse", outbound=outbound, regint=60
        ),
        name="baresip-right",
    )
    right.wait_event("REGISTER_OK", timeout=60)
    assert server.bindings(f"sip:alice@{DOMAIN}"), "the registrar holds no binding"
    assert any(s.outcome.accepted and s.source[1] == right.sip_port for s in server.seen)


# ------------------------------------------------------------------------------------------
# SIPp


def sipp_register_with_user_agent() -> str:
    xml = register_scenario(domain=DOMAIN)
    with_agent = xml.replace(
        "      Max-Forwards: 70\n", "      Max-Forwards: 70\n      User-Agent: SIPp\n"
    )
    assert with_agent.count("User-Agent: SIPp") == 2
    return with_agent


@pytest.mark.parametrize("transport", [None, "t1"], ids=["udp", "tcp"])
def test_sipp_registers_with_digest(
    procs: Procs, tmp_path: pathlib.Path, transport: str | None
) -> None:
    server = LoopbackServer(procs, {"alice": "sipp-pw"})
    sipp = Sipp(
        procs,
        tmp_path,
        sipp_register_with_user_agent(),
        remote=server.address,
        transport=transport,
        service="alice",
        auth=("alice", "sipp-pw"),
        calls=1,
        global_timeout=20,
    )
    result = sipp.wait(30)
    assert result.returncode == 0 and result.successful == 1, result
    accepted = [s for s in server.seen if s.outcome.accepted]
    assert [s.outcome.identity for s in accepted] == ["alice"]
    assert server.bindings(f"sip:alice@{DOMAIN}")


def test_sipp_with_a_wrong_password_is_refused(procs: Procs, tmp_path: pathlib.Path) -> None:
    server = LoopbackServer(procs, {"alice": "sipp-pw"})
    sipp = Sipp(
        procs,
        tmp_path,
        sipp_register_with_user_agent(),
        remote=server.address,
        service="alice",
        auth=("alice", "not-it"),
        calls=1,
        global_timeout=20,
    )
    result = sipp.wait(30)
    assert result.returncode != 0 and result.successful == 0, result
    assert not server.bindings(f"sip:alice@{DOMAIN}")
    assert any(s.outcome.result is DigestResult.BAD_RESPONSE for s in server.seen)


# ------------------------------------------------------------------------------------------
# The real thing: `sipwire user add` + `sipwire serve`

SIPWIRE = (sys.executable, "-m", "sipwire")


def test_sipwire_serve_resists_svcrack_and_lets_the_fixed_phone_in(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "sipwire.db"
    add = subprocess.run(
        [*SIPWIRE, "user", "add", "alice", "--password", "-", "--db", str(db), "--domain", DOMAIN],
        input="Tr0ub4dor\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    config = tmp_path / "sipwire.toml"
    config.write_text('[auth]\nalgorithms = ["MD5"]\n')  # what svcrack can compute
    port = free_port_both()
    listen = f"udp:127.0.0.1:{port}"
    argv = [*SIPWIRE, "serve", "--config", str(config), "--db", str(db), "--domain", DOMAIN]
    serve = procs.start("sipwire-serve", [*argv, "--listen", listen, "--log-level", "info"])
    wait_bound(port, ("udp",), timeout=15)
    cracked = svcrack(procs, port, "alice", wordlist("Tr0ub4dor"), tmp_path, domain=DOMAIN)
    assert cracked.rows == [] and "Tr0ub4dor" not in cracked.output, cracked.output
    serve.wait_for(r"failure for 'alice'", timeout=5)  # it did guess, and was logged

    outbound = f"sip:127.0.0.1:{port};transport=udp"
    wrong = Baresip(
        procs,
        tmp_path,
        BaresipAccount("alice", domain=DOMAIN, password="battery", outbound=outbound, regint=60),
        name="baresip-wrong",
    )
    wrong.wait_event("REGISTER_FAIL", timeout=15)
    wrong.quit()
    right = Baresip(
        procs,
        tmp_path,
        BaresipAccount("alice", domain=DOMAIN, password="Tr0ub4dor", outbound=outbound, regint=60),
        name="baresip-right",
    )
    right.wait_event("REGISTER_OK", timeout=60)
