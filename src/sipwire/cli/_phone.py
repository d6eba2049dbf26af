"""``sipwire phone``: register and take calls until SIGINT/SIGTERM (then un-REGISTER).

Prints one line per event: ``registered ...``, ``incoming call from ...``,
``answered``, ``DTMF received: 5``, ``ended by the peer: remote BYE``.  With
``--auto-answer`` every call is answered at once (``--answer-after`` waits first);
``--reject STATUS`` refuses every call (486 Busy Here, 603 Decline...).  Otherwise calls
ring until a command arrives on stdin, one per line:

* ``a`` -- answer the ringing call; ``r [STATUS]`` -- reject it (default 486);
* ``h`` -- hang up; ``d DIGITS`` -- send DTMF; ``q`` -- quit.

Answered calls play ``--play FILE.wav`` (once) or echo the caller (``--echo``), and are
recorded to ``--record OUT.wav`` (the second call to ``OUT-2.wav``, and so on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sipwire.cli._call import (
    EXIT_OK,
    EXIT_REGISTRATION,
    EXIT_USAGE,
    add_account_options,
    install_stop,
    make_user_agent,
    read_password,
    say,
    start_until_stopped,
)
from sipwire.cli._common import die, setup_logging

if TYPE_CHECKING:
    from sipwire.apps.useragent import Call, UserAgent

HELP = "register and answer calls: auto-answer, play a WAV or echo, record, print DTMF"


def configure(parser: argparse.ArgumentParser) -> None:
    add_account_options(parser, user_help="our user name (sip:USER@DOMAIN), or USER@DOMAIN")
    parser.add_argument("--domain", help="our domain (default: the server's host)")
    parser.add_argument("--auto-answer", action="store_true", help="answer every call at once")
    parser.add_argument(
        "--answer-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --auto-answer: ring this long first (default 0)",
    )
    parser.add_argument(
        "--reject", type=int, metavar="STATUS", help="refuse every call with STATUS (e.g. 486)"
    )
    audio = parser.add_mutually_exclusive_group()
    audio.add_argument("--play", metavar="FILE.wav", help="play this WAV to every answered call")
    audio.add_argument("--echo", action="store_true", help="send callers back what they send")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    if args.reject is not None and not 300 <= args.reject <= 699:
        return die("phone", f"--reject takes a status 300-699, not {args.reject}", EXIT_USAGE)
    if args.reject is not None and args.auto_answer:
        return die("phone", "--reject and --auto-answer exclude each other", EXIT_USAGE)
    if args.answer_after < 0:
        return die("phone", "--answer-after must not be negative", EXIT_USAGE)
    if args.play is not None and not Path(args.play).is_file():
        return die("phone", f"--play: no such file {args.play}", EXIT_USAGE)
    password = read_password(args, "phone")
    if isinstance(password, int):
        return password
    from sipwire.aio.transport import run as aio_run

    try:
        return aio_run(_main(args, password))
    except KeyboardInterrupt:
        return 130


def _server_host(server: str) -> str:
    text = server.removeprefix("sip:").split(";", 1)[0]
    if text.startswith("["):
        return text[: text.index("]") + 1]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class _Phone:
    def __init__(self, ua: UserAgent, args: argparse.Namespace) -> None:
        self.ua = ua
        self.args = args
        self.ringing: list[Call] = []
        self.active: list[Call] = []
        self.recordings = 0
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def record_path(self) -> str:
        self.recordings += 1
        path = Path(self.args.record)
        if self.recordings == 1:
            return str(path)
        return str(path.with_name(f"{path.stem}-{self.recordings}{path.suffix}"))

    async def on_incoming(self, call: Call) -> None:
        say(f"incoming call from {call.remote}")
        self.spawn(self.watch(call))
        if self.args.reject is not None:
            await call.reject(self.args.reject)
            return
        if self.args.auto_answer:
            if self.args.answer_after:
                await asyncio.sleep(self.args.answer_after)
            await self.answer(call)
        else:
            self.ringing.append(call)
            say("  'a' answers, 'r [STATUS]' rejects")

    async def answer(self, call: Call) -> None:
        from sipwire.apps.useragent import CallFailed

        if call in self.ringing:
            self.ringing.remove(call)
        if self.args.record:
            call.record(self.record_path())
        if self.args.echo:
            call.echo = True
        try:
            await call.answer()
        except CallFailed:
            return  # "ended" is printed by watch()
        say(f"answered {call.remote}")
        self.active.append(call)
        if self.args.play:
            self.spawn(call.play(self.args.play))

    async def watch(self, call: Call) -> None:
        digits = asyncio.ensure_future(self.print_digits(call))
        end = await call.wait_ended()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(digits, 2.0)
        for queue in (self.ringing, self.active):
            if call in queue:
                queue.remove(call)
        say(str(end))

    async def print_digits(self, call: Call) -> None:
        async for digit in call.dtmf():
            say(f"DTMF received: {digit}")

    async def commands(self) -> None:
        """Read commands from stdin in a daemon thread (works for terminals, pipes and
        files alike, and never keeps the process alive)."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def reader() -> None:
            try:
                for line in sys.stdin:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
            except (OSError, ValueError, RuntimeError):
                pass
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=reader, name="phone-stdin", daemon=True).start()
        while not self.stop.is_set():
            line = await lines.get()
            if line is None:
                return
            await self.command(line.strip())

    async def command(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word in ("a", "answer"):
            if self.ringing:
                self.spawn(self.answer(self.ringing[0]))
            else:
                say("no call is ringing")
        elif word in ("r", "reject"):
            if not self.ringing:
                say("no call is ringing")
                return
            status = int(rest) if rest.strip().isdigit() else 486
            call = self.ringing.pop(0)
            await call.reject(status if 300 <= status <= 699 else 486)
        elif word in ("h", "hangup"):
            for call in [*self.active, *self.ringing]:
                await call.hangup()
        elif word in ("d", "dtmf"):
            digits = "".join(c for c in rest.upper() if c in "0123456789*#ABCD")
            for call in self.active:
                self.spawn(call.send_dtmf(digits))
        elif word in ("q", "quit"):
            self.stop.set()
        elif word:
            say("commands: a, r [STATUS], h, d DIGITS, q")


async def _main(args: argparse.Namespace, password: str | None) -> int:
    from sipwire.apps.useragent import UserAgentError

    domain = args.domain or _server_host(args.server)
    ua = make_user_agent(args, "phone", domain, password)
    if isinstance(ua, int):
        return ua
    phone = _Phone(ua, args)
    ua.on_incoming(phone.on_incoming)
    remove_handlers = install_stop(phone.stop)
    try:
        if ua.register_on_start:
            say(f"registering {ua.aor} at {ua.server}")
        try:
            if not await start_until_stopped(ua, phone.stop):
                say("stopped")
                return EXIT_OK
        except UserAgentError as exc:
            return die("phone", str(exc), EXIT_REGISTRATION)
        host, port = ua.local_address
        if ua.registered:
            expires = getattr(ua.registration_event, "expires", 0)
            say(f"registered {ua.aor} for {expires} s (contact {ua.contact})")
        else:
            say(f"listening on {ua.transport}:{host}:{port} as {ua.aor}")
        phone.spawn(phone.commands())
        await phone.stop.wait()
        say("stopping")
        was_registered = ua.registered
        await ua.close()
        if was_registered:
            say("unregistered")
        return EXIT_OK
    finally:
        remove_handlers()
        for task in list(phone.tasks):
            task.cancel()
        await asyncio.gather(*phone.tasks, return_exceptions=True)
        if not ua.closed:
            await ua.close()
