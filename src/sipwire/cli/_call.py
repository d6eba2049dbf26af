"""``sipwire call URI``: register, place one call, play/record/send DTMF, hang up.

Progress goes to stdout, one line per step (``registering ...``, ``registered ...``,
``calling ...``, ``ringing (180 Ringing)``, ``answered (200 OK)``, ``DTMF received: 5``,
``ended by the peer: remote BYE``).  Exit status: 0 when the call was answered and ended
normally (a BYE from either side), 1 when it was not answered (busy, declined, not
found, no answer...), 2 for bad arguments, 3 when registering failed (wrong password,
no response from the server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sipwire.cli._common import die, setup_logging

if TYPE_CHECKING:
    from sipwire.aio.endpoint import TraceRecord
    from sipwire.apps.useragent import Call, UserAgent

HELP = "call a SIP URI through a server: play a WAV, send DTMF, record, then hang up"

EXIT_OK, EXIT_CALL_FAILED, EXIT_USAGE, EXIT_REGISTRATION = 0, 1, 2, 3


def add_account_options(parser: argparse.ArgumentParser, *, user_help: str) -> None:
    """The options ``sipwire call`` and ``sipwire phone`` share."""
    parser.add_argument("--user", required=True, help=user_help)
    parser.add_argument(
        "--password", help="Digest password; '-' reads it from stdin (the first line)"
    )
    parser.add_argument(
        "--auth-user", metavar="NAME", help="Digest user name, if not the --user name"
    )
    parser.add_argument(
        "--server", required=True, metavar="HOST[:PORT]", help="registrar / outbound proxy"
    )
    parser.add_argument(
        "--transport", choices=["udp", "tcp", "tls"], default="udp", help="to the server"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="our SIP address (default: the local address towards the server, any port)",
    )
    parser.add_argument("--cert", help="certificate for our TLS listener (--transport tls)")
    parser.add_argument("--key", help="private key for our TLS listener")
    parser.add_argument(
        "--no-register", action="store_true", help="do not REGISTER (calls still authenticate)"
    )
    parser.add_argument("--record", metavar="OUT.wav", help="record what the peer sends")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: log; -vv: print SIP messages"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="who to call: sip:bob@DOMAIN (or bob, in --domain)")
    add_account_options(parser, user_help="our user name (sip:USER@DOMAIN), or USER@DOMAIN")
    parser.add_argument(
        "--domain", help="our domain (default: the domain of the URI called, or the server)"
    )
    parser.add_argument("--play", metavar="FILE.wav", help="play this WAV once answered")
    parser.add_argument("--dtmf", metavar="DIGITS", help="send these DTMF digits (0-9*#A-D)")
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="hang up this long after the answer (default: once --play and --dtmf are done; "
        "without them, when the peer hangs up or on Ctrl-C)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up (CANCEL) if not answered within this (default 60)",
    )


def read_password(args: argparse.Namespace, command: str) -> str | int | None:
    """The password (None without one), or an exit status after printing why not."""
    if args.password != "-":
        return str(args.password) if args.password is not None else None
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        return die(command, "no password on stdin", EXIT_USAGE)
    return line


def split_user(user: str, default_domain: str) -> tuple[str, str]:
    """``bob`` / ``bob@example.test`` / ``sip:bob@example.test`` -> (user, domain)."""
    text = user.removeprefix("sip:")
    name, at, domain = text.partition("@")
    return name, (domain if at else default_domain)


def trace_printer(verbose: int) -> Callable[[TraceRecord], None] | None:
    if verbose < 2:
        return None

    def show(record: TraceRecord) -> None:
        text = record.message.to_bytes().decode("utf-8", "replace")
        remote = f"{record.remote[0]}:{record.remote[1]}"
        print(f"--- {record.direction} {record.transport} {remote}\n{text}", flush=True)

    return show


def say(text: str) -> None:
    print(text, flush=True)


def make_user_agent(
    args: argparse.Namespace, command: str, domain: str, password: str | None
) -> UserAgent | int:
    """The UserAgent the options describe, or an exit status after printing why not."""
    from sipwire.apps.useragent import UserAgent
    from sipwire.core._errors import LocalProtocolError, RemoteProtocolError

    user, domain = split_user(args.user, domain)
    try:
        return UserAgent(
            f"sip:{user}@{domain}",
            password=password,
            username=args.auth_user,
            server=args.server,
            transport=args.transport,
            listen=args.listen,
            register=not args.no_register,
            certfile=args.cert,
            keyfile=args.key,
            trace=trace_printer(args.verbose),
        )
    except (LocalProtocolError, RemoteProtocolError) as exc:
        return die(command, exc.reason, EXIT_USAGE)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    if args.dtmf is not None:
        bad = sorted({c for c in args.dtmf.upper() if c not in "0123456789*#ABCD"})
        if bad or not args.dtmf:
            return die("call", f"--dtmf takes 0-9 * # A-D, not {''.join(bad)!r}", EXIT_USAGE)
    if args.duration is not None and args.duration < 0:
        return die("call", "--duration must not be negative", EXIT_USAGE)
    if args.play is not None:
        from pathlib import Path

        if not Path(args.play).is_file():
            return die("call", f"--play: no such file {args.play}", EXIT_USAGE)
    password = read_password(args, "call")
    if isinstance(password, int):
        return password
    from sipwire.aio.transport import run as aio_run

    try:
        return aio_run(_main(args, password))
    except KeyboardInterrupt:
        return 130


def _target_domain(uri: str, server: str) -> str:
    text = uri.removeprefix("sip:").removeprefix("sips:")
    if "@" in text:
        host = text.split("@", 1)[1]
        return host.split(";", 1)[0].split("?", 1)[0]
    return server.rsplit(":", 1)[0] if server.count(":") == 1 else server


async def start_until_stopped(ua: UserAgent, stop: asyncio.Event) -> bool:
    """``ua.start()`` (registering), abandoned when ``stop`` is set first: False then."""
    starting = asyncio.ensure_future(ua.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await ua.close()
        return False
    starting.result()  # raises the registration error
    return True


def install_stop(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; returns the function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def _main(args: argparse.Namespace, password: str | None) -> int:
    from sipwire.apps.useragent import CallFailed, NoResponseError, UserAgentError

    domain = args.domain or _target_domain(args.uri, args.server)
    ua = make_user_agent(args, "call", domain, password)
    if isinstance(ua, int):
        return ua
    stop = asyncio.Event()
    remove_handlers = install_stop(stop)
    try:
        if ua.register_on_start:
            say(f"registering {ua.aor} at {ua.server}")
        try:
            if not await start_until_stopped(ua, stop):
                say("stopped")
                return EXIT_CALL_FAILED
        except UserAgentError as exc:
            return die("call", str(exc), EXIT_REGISTRATION)
        if ua.registered:
            expires = getattr(ua.registration_event, "expires", 0)
            say(f"registered {ua.aor} for {expires} s")
        try:
            return await _place_call(ua, args, stop)
        except CallFailed as exc:
            say(f"failed: {exc.status} {exc.reason}" if exc.status else f"failed: {exc.reason}")
            return EXIT_CALL_FAILED
        except NoResponseError as exc:
            say(f"failed: {exc}")
            return EXIT_CALL_FAILED
        except UserAgentError as exc:
            return die("call", str(exc), EXIT_CALL_FAILED)
        finally:
            was_registered = ua.registered
            await ua.close()
            if was_registered:
                say("unregistered")
    finally:
        remove_handlers()


async def _give_up(call: Call, why: str) -> int:
    """CANCEL (or BYE) and wait a bounded time for the end."""
    say(why)
    await call.hangup()
    try:
        say(str(await call.wait_ended(10)))
    except TimeoutError:
        say("no final response to the CANCEL within 10 s")
    return EXIT_CALL_FAILED


async def _place_call(ua: UserAgent, args: argparse.Namespace, stop: asyncio.Event) -> int:
    call = await ua.call(args.uri)
    say(f"calling {call.remote}")
    answered = asyncio.ensure_future(call.wait_answered(args.timeout))
    stopper = asyncio.ensure_future(stop.wait())
    ringing = asyncio.ensure_future(call.wait_ringing())
    try:
        while not answered.done():
            waiting: set[asyncio.Future[Any]] = {answered, stopper}
            if not ringing.done():
                waiting.add(ringing)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if ringing.done() and call.progress_status is not None and not call.answered:
                say(f"ringing ({call.progress_status})")
                call.progress_status = None  # report it once
            if stopper.done() and not answered.done():
                return await _give_up(call, "cancelling")
        try:
            answered.result()
        except TimeoutError:
            return await _give_up(call, f"no answer within {args.timeout:g} s: cancelling")
        say(f"answered ({call.status} {call.reason_phrase})")
        return await _in_call(call, args, stop)
    finally:
        for fut in (answered, stopper, ringing):
            fut.cancel()
        await asyncio.gather(answered, stopper, ringing, return_exceptions=True)


async def _print_digits(call: Call) -> None:
    async for digit in call.dtmf():
        say(f"DTMF received: {digit}")


async def _in_call(call: Call, args: argparse.Namespace, stop: asyncio.Event) -> int:
    digits = asyncio.ensure_future(_print_digits(call))
    if args.record:
        call.record(args.record)
    work: list[asyncio.Future[Any]] = []
    if args.play:
        work.append(asyncio.ensure_future(call.play(args.play)))
    if args.dtmf:
        work.append(asyncio.ensure_future(call.send_dtmf(args.dtmf.upper())))
    waiters: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(call.wait_ended()),
        asyncio.ensure_future(stop.wait()),
    ]
    if args.duration is not None:
        waiters.append(asyncio.ensure_future(asyncio.sleep(args.duration)))
    elif work:
        waiters.append(asyncio.ensure_future(asyncio.gather(*work)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not call.ended:
            await call.hangup()
        end = await call.wait_ended(35)
    finally:
        for fut in (*waiters, *work):
            fut.cancel()
        await asyncio.gather(*waiters, *work, return_exceptions=True)
        # dtmf() ends with the call: print the last digits first.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(digits, 2.0)
    say(str(end))
    if end.reason in ("local BYE", "remote BYE"):
        return EXIT_OK
    return EXIT_CALL_FAILED
