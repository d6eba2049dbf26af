"""The all-in-one server behind ``sipwire serve``: registrar + location service, digest
authentication, and a stateful forking proxy (or a redirect server), on one Endpoint
with SQLite as the embedded default store.

Request flow: REGISTER for one of our domains -> authentication (401) -> the registrar
(RFC 3261 §10.3); every other request (and REGISTERs for foreign domains) -> the proxy
(RFC 3261 §16), which authenticates callers from our domains (407), looks callees up in
the location service and relays, forks, redirects or rejects.

Bindings expire on time: one timer, armed at the store's earliest expiry (re-armed when
a REGISTER changes bindings), deletes expired rows — never a polling loop per binding.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.apps.config import ServerConfig
from sipwire.apps.registrar import Registrar, RegistrarPolicy
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import Request
from sipwire.core.uri import SipURI
from sipwire.store.sqlite import SQLiteDatabase

__all__ = ["Server"]

_log = logging.getLogger("sipwire.server")

#: Longest single sleep of the expiry timer (it re-arms; wall-clock jumps are caught).
_MAX_EXPIRY_SLEEP = 600.0


class Server:
    """Run with ``await server.start()`` ... ``await server.stop()``, or :meth:`serve`."""

    def __init__(
        self, config: ServerConfig, *, worker: bool = False, secret: bytes | None = None
    ) -> None:
        """``worker=True``: one of ``--workers N`` processes sharing the listening ports
        (SO_REUSEPORT). Each worker also binds a private UDP port per UDP listener address,
        first, so the Via of the requests it sends names it and their responses come back to
        it rather than to a sibling. ``secret`` is the nonce key shared by the workers, so a
        nonce minted by one verifies in another."""
        self.config = config.validate()
        self.db = SQLiteDatabase(config.db)
        listen = list(config.listen)
        if worker:
            private = []
            for spec in listen:
                scheme, _, rest = spec.partition(":")
                if scheme.lower() == "udp":
                    host = rest.rsplit(":", 1)[0]
                    if f"udp:{host}:0" not in private:
                        private.append(f"udp:{host}:0")
            listen = private + listen
        self.endpoint = Endpoint(
            listen=listen,
            reuse_port=worker,
            certfile=config.tls.cert or None,
            keyfile=config.tls.key or None,
            user_agent=config.server_header or None,
            server_header=config.server_header or "",
            outbound_proxy=config.outbound_proxy or None,
            detect_merged=False,  # a proxy must not reject merged requests (§16.3)
        )
        r = config.registrar
        self.registrar = Registrar(
            self.db.locations,
            wall_clock=time.time,
            policy=RegistrarPolicy(
                default_expires=r.default_expires,
                min_expires=r.min_expires,
                max_expires=r.max_expires,
                max_bindings=r.max_bindings,
            ),
            on_change=self._bindings_changed,
        )
        self._secret = secret
        self.auth: Any = None if config.no_auth else self._make_authenticator()
        self.proxy: Any = self._make_proxy()
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at: float | None = None
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ wiring

    def _make_authenticator(self) -> Any:
        from sipwire.apps.auth import Authenticator, AuthPolicy

        c = self.config
        policy = AuthPolicy(
            trusted=tuple(c.trusted),
            algorithms=tuple(c.auth.algorithms),
            md5_only_user_agents=tuple(c.auth.md5_only_user_agents),
            nonce_lifetime=float(c.auth.nonce_lifetime),
        )
        return Authenticator(
            self.db.users,
            domains=c.domains,
            policy=policy,
            host_aliases=self.is_our_address,
            secret=self._secret,
        )

    def _make_proxy(self) -> Any:
        from sipwire.apps.proxy import Proxy
        from sipwire.apps.routing import RouteTable

        c = self.config
        return Proxy(
            self.endpoint,
            domains=c.domains,
            location=self.registrar,
            auth=self.auth,
            routes=RouteTable.from_config(c.routes),
            mode="redirect" if c.mode == "redirect" else "proxy",
            stateless=c.stateless,
            fork="sequential" if c.fork == "sequential" else "parallel",
            record_route=c.record_route,
            hook=c.hook or None,
            user_exists=self._user_exists,
            outbound_proxy=c.outbound_proxy or None,
        )

    async def _user_exists(self, aor: str) -> bool:
        # A user with an account but no binding gets 480, anyone else 404 (as Kamailio
        # answers a failed lookup), with or without authentication.
        scheme_user, _, domain = aor.partition("@")
        user = scheme_user.split(":", 1)[-1]
        return await self.db.users.get_user(user, domain) is not None

    def is_our_address(self, host: str) -> bool:
        """True if ``host`` is one of our listeners' addresses (not a domain name)."""
        host = host.lower().strip("[]")
        return any(
            host in (listener.host.strip("[]"), listener.advertised_host.strip("[]"))
            for listener in self.endpoint.listeners
        )

    def is_our_host(self, host: str) -> bool:
        """A domain of ours, or one of our addresses (a phone configured with our IP)."""
        return host.lower().strip("[]") in self.config.domains or self.is_our_address(host)

    def _aor(self, uri: SipURI) -> str:
        """The AOR key: users at one of our addresses belong to the primary domain."""
        if self.is_our_address(uri.host) and uri.user is not None:
            return SipURI(scheme=uri.scheme, user=uri.user, host=self.config.domains[0]).aor()
        return uri.aor()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.db.open()
        await self.endpoint.start()
        self.proxy.install()
        self.endpoint.on("REGISTER", self.on_register)  # the registrar wins over the proxy
        await self._arm_expiry()
        for listener in self.endpoint.listeners:
            _log.info("listening on %s", listener)
        _log.info(
            "domains %s, mode %s%s, database %s",
            ", ".join(self.config.domains),
            self.config.mode,
            " (stateless)" if self.config.stateless else "",
            self.config.db,
        )

    async def stop(self, *, grace: float = 2.0) -> None:
        """Graceful shutdown: refuse new transactions (503), let live ones finish for up
        to ``grace`` seconds, flush and close the store."""
        if self._expiry is not None:
            self._expiry.cancel()
        await self.endpoint.close(grace=grace)
        await self.proxy.close()
        await self.db.close()
        self._stopped.set()

    async def serve(self) -> None:
        """start(), then run until SIGINT/SIGTERM, then stop()."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            _log.info("shutting down")
        finally:
            # The handlers stay installed while stopping: a second SIGTERM (a supervisor
            # signalling the whole process group, or ``--workers`` forwarding it) must not
            # kill a graceful shutdown half-way.
            await self.stop()

    # ------------------------------------------------------------------ registrar

    async def on_register(self, request: Request, tx: ServerTransaction) -> None:
        uri = request.uri
        if not isinstance(uri, SipURI) or not self.is_our_host(uri.host):
            await self.proxy.handle_request(request, tx)  # a REGISTER for another domain
            return
        try:
            to_uri = request.to.uri
            if not isinstance(to_uri, SipURI) or not self.is_our_host(to_uri.host):
                await tx.respond(404, "Not Found (not a domain of this registrar)")
                return
            if to_uri.user is None:
                await tx.respond(400, "Bad Request (To of a REGISTER needs a user part)")
                return
            aor = self._aor(to_uri)
            if self.auth is not None:
                who = await self.auth.authenticate_register(request, tx)
                if who is None:
                    return  # the authenticator answered 401/403
                aor = who
            src = tx.source
            outcome = await self.registrar.register(
                request, source=f"{src.transport} {src.remote[0]}:{src.remote[1]}", aor=aor
            )
        except RemoteProtocolError as exc:
            await tx.respond(
                exc.status_hint if exc.status_hint >= 400 else 400,
                _reason(exc.status_hint, exc.reason),
            )
            return
        await tx.respond(outcome.status, outcome.reason, headers=outcome.headers)
        _log.info(
            "REGISTER %s from %s %s:%s -> %s",
            request.to.uri,
            tx.source.transport,
            *tx.source.remote,
            outcome.status,
        )

    async def _bindings_changed(self, aor: str) -> None:
        await self._arm_expiry()

    async def _arm_expiry(self) -> None:
        at = await self.db.locations.next_expiry()
        if (
            at is not None
            and self._expiry_at is not None
            and self._expiry_at <= at
            and self._expiry is not None
        ):
            return  # already armed earlier
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._expiry_at = at
        if at is None:
            return
        delay = min(max(at - time.time(), 0.0), _MAX_EXPIRY_SLEEP)
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(delay, lambda: self.endpoint._spawn(self._expire()))

    async def _expire(self) -> None:
        self._expiry = None
        self._expiry_at = None
        gone = await self.db.locations.expire(time.time())
        for binding in gone:
            _log.info("binding expired: %s -> %s", binding.aor, binding.contact)
        await self._arm_expiry()


def _reason(status: int, detail: str) -> str:
    from sipwire.core.message import reason_phrase

    text = f"{reason_phrase(status)} ({detail})"
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200]
