"""An echo bot: registers, answers every call and sends the caller's audio back.

    python examples/echo_bot.py sip:echo@localhost --password echo-pw --server 127.0.0.1:5060

Runs until Ctrl-C (then hangs up and un-REGISTERs). Call it from any phone and talk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import sipwire


async def serve_call(call: sipwire.Call) -> None:
    print(f"call from {call.remote}", flush=True)
    call.echo = True  # what arrives is sent back one frame (20 ms) later
    await call.answer()
    print(f"answered {call.remote}", flush=True)
    end = await call.wait_ended()
    print(f"{call.remote}: {end}", flush=True)


async def main(args: argparse.Namespace) -> None:
    async with sipwire.UserAgent(args.aor, password=args.password, server=args.server) as ua:
        print(f"registered {ua.aor}, waiting for calls", flush=True)
        ua.on_incoming(serve_call)
        await asyncio.Event().wait()  # until Ctrl-C / SIGTERM


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aor", help="our address, e.g. sip:echo@localhost")
    parser.add_argument("--password")
    parser.add_argument("--server", required=True, help="registrar/proxy HOST:PORT")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
