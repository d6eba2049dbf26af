"""``sipwire serve``: the all-in-one SIP server (registrar, proxy/redirect, auth)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys

from sipwire.cli._common import die

_WORKER_ENV = "SIPWIRE_SERVE_WORKER"
_SECRET_ENV = "SIPWIRE_NONCE_SECRET"

HELP = "run the SIP server: registrar + location service, digest auth, proxy or redirect"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (flags override it)")
    parser.add_argument("--db", metavar="PATH", help="SQLite database (default ./sipwire.db)")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="listener, repeatable (default udp and tcp on 127.0.0.1:5060)",
    )
    parser.add_argument(
        "--domain",
        action="append",
        metavar="D",
        help="a domain this server is responsible for (default localhost)",
    )
    parser.add_argument(
        "--route",
        action="append",
        metavar="REGEX=URI[,URI...]",
        help="static route: Request-URIs matching REGEX go to these next hops",
    )
    parser.add_argument("--mode", choices=["proxy", "redirect"], help="proxy (default) or redirect")
    parser.add_argument(
        "--stateless", action="store_true", default=None, help="relay statelessly (RFC 3261 §16.11)"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        default=None,
        help="no digest authentication (benchmarks, closed networks)",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    from sipwire.apps.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        if args.db is not None:
            config.db = args.db
        if args.listen:
            config.listen = args.listen
        if args.domain:
            config.domains = args.domain
        if args.route:
            config.routes = args.route
        if args.mode is not None:
            config.mode = args.mode
        if args.stateless:
            config.stateless = True
        if args.no_auth:
            config.no_auth = True
        if args.workers is not None:
            config.workers = args.workers
        if args.log_level is not None:
            config.log_level = args.log_level
        config.validate()
    except ConfigError as exc:
        return die("serve", str(exc), 2)
    worker = os.environ.get(_WORKER_ENV) == "1"
    if config.workers > 1 and not worker:
        return _run_workers(args, config)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from sipwire.aio.transport import run as aio_run
    from sipwire.apps.server import Server
    from sipwire.core._errors import LocalProtocolError
    from sipwire.store import StoreError

    secret_hex = os.environ.get(_SECRET_ENV)
    secret = bytes.fromhex(secret_hex) if worker and secret_hex else None

    async def main() -> int:
        server = Server(config, worker=worker, secret=secret)
        await server.serve()
        return 0

    try:
        return aio_run(main())
    except OSError as exc:
        return die("serve", f"cannot listen: {exc}")
    except StoreError as exc:
        return die("serve", f"database error: {exc}")
    except LocalProtocolError as exc:
        return die("serve", exc.reason, 2)


def _run_workers(args: argparse.Namespace, config: object) -> int:
    """``--workers N``: start N worker processes sharing the ports (SO_REUSEPORT) and the
    database, forward SIGINT/SIGTERM to them, and stop them all if one dies."""
    import asyncio

    from sipwire.apps.config import ServerConfig
    from sipwire.store.sqlite import SQLiteDatabase

    assert isinstance(config, ServerConfig)
    if any(spec.rsplit(":", 1)[-1] in ("0", "") for spec in config.listen):
        return die("serve", "--workers needs fixed ports in --listen (not port 0)", 2)
    if sys.platform != "linux":
        return die("serve", "--workers needs SO_REUSEPORT (Linux)", 2)

    async def create_db() -> None:  # create the schema once, before the workers race for it
        await (await SQLiteDatabase(config.db).open()).close()

    asyncio.run(create_db())
    env = dict(os.environ, **{_WORKER_ENV: "1", _SECRET_ENV: secrets.token_hex(32)})
    argv = [sys.executable, "-m", "sipwire", *getattr(args, "_argv", [])]
    children = [subprocess.Popen(argv, env=env) for _ in range(config.workers)]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    try:
        while any(c.poll() is None for c in children):
            for child in children:
                code = child.poll()
                if code is not None and code != 0 and not stopping:
                    print(
                        f"sipwire serve: worker {child.pid} exited with {code}; stopping",
                        file=sys.stderr,
                    )
                    status = code
                    forward(signal.SIGTERM, None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                children[0].wait(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
    if status == 0:  # stopped by a signal: report the first worker that failed to stop cleanly
        status = next((c.returncode for c in children if c.returncode), 0)
    return status
