"""``sipwire uas``: a responder for tests and load (like SIPp's built-in uas)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from sipwire.cli._common import die, setup_logging

HELP = "answer INVITEs (180 then a final response with SDP), BYE, CANCEL and OPTIONS"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="listener, e.g. udp:127.0.0.1:5090 (repeatable; default udp:127.0.0.1:5090)",
    )
    parser.add_argument("--code", type=int, default=200, help="final response to INVITE")
    parser.add_argument(
        "--ring",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="ring this long (180) before the final response",
    )
    parser.add_argument("--cert", help="certificate file for tls/wss listeners")
    parser.add_argument("--key", help="private key file for tls/wss listeners")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's garbage collector settings (by default they are tuned for load)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args: argparse.Namespace) -> int:
    if not 200 <= args.code <= 699:
        return die("uas", f"--code must be a final response code (200-699), not {args.code}", 2)
    if args.ring < 0:
        return die("uas", "--ring must not be negative", 2)
    setup_logging(args.verbose)
    from sipwire.aio.transport import run as aio_run

    try:
        return aio_run(_main(args))
    except OSError as exc:
        return die("uas", f"cannot listen: {exc}")


async def _main(args: argparse.Namespace) -> int:
    from sipwire.aio.endpoint import Endpoint
    from sipwire.aio.transport import tune_gc
    from sipwire.apps.uas import Responder, ResponderConfig
    from sipwire.core._errors import LocalProtocolError

    listen = args.listen or ["udp:127.0.0.1:5090"]
    try:
        ep = Endpoint(listen=listen, certfile=args.cert, keyfile=args.key)
        await ep.start()
    except LocalProtocolError as exc:
        print(f"sipwire uas: {exc.reason}", flush=True)
        return 2
    host = ep.listeners[0].host
    responder = Responder(ep, ResponderConfig(code=args.code, ring=args.ring, media_address=host))
    responder.install()
    if not args.default_gc:
        tune_gc()  # a load target: see tune_gc for why and what
    for listener in ep.listeners:
        print(f"sipwire uas: listening on {listener}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await ep.close(grace=1.0)
    counters = dict(responder.counters)
    print(f"sipwire uas: stopped; {counters}", flush=True)
    return 0
