"""``sipwire serve``: the all-in-one SIP server (registrar, proxy/redirect, auth)."""

from __future__ import annotations

import argparse
import logging

from sipwire.cli._common import die

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
    if config.workers != 1:
        return die(
            "serve",
            "--workers > 1 is not supported yet; run one process per core "
            "behind a stateless sipwire (--stateless) instead",
            2,
        )
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from sipwire.aio.transport import run as aio_run
    from sipwire.apps.server import Server
    from sipwire.core._errors import LocalProtocolError
    from sipwire.store import StoreError

    async def main() -> int:
        server = Server(config)
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
