"""A small IVR: answers, plays a prompt, reads DTMF digits and acts on them.

    python examples/ivr.py sip:ivr@localhost --password ivr-pw --server 127.0.0.1:5060

Menu: press 1 for a low tone, 2 for a high tone, or enter a PIN ending with # to hear it
read back as beeps (one per digit value, 0 = ten); * hangs up.  Callers who press
nothing for 15 seconds are hung up on.  Pass ``--prompt FILE.wav`` to play your own
greeting instead of the default two-tone chime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import sipwire

IDLE_TIMEOUT = 15.0


async def greet(call: sipwire.Call, prompt: str | None) -> None:
    if prompt:
        await call.play(prompt)
    else:
        await call.play_tone(660, seconds=0.3)
        await call.play_tone(880, seconds=0.3)


async def beep(call: sipwire.Call, count: int) -> None:
    for _ in range(count):
        await call.play_tone(1000, seconds=0.15)
        await asyncio.sleep(0.15)


async def serve_call(call: sipwire.Call, prompt: str | None) -> None:
    await call.answer()
    print(f"answered {call.remote}", flush=True)
    await greet(call, prompt)
    digits = call.dtmf()
    pin = ""
    while not call.ended:
        try:
            digit = await asyncio.wait_for(anext(digits), IDLE_TIMEOUT)
        except (TimeoutError, StopAsyncIteration):
            break  # silence, or the caller hung up
        print(f"{call.remote} pressed {digit}", flush=True)
        if digit == "*":
            break
        if digit == "1" and not pin:
            await call.play_tone(440, seconds=1.0)
        elif digit == "2" and not pin:
            await call.play_tone(1200, seconds=1.0)
        elif digit == "#":
            print(f"{call.remote} entered PIN {pin}", flush=True)
            for d in pin:
                await beep(call, int(d) or 10)
                await asyncio.sleep(0.4)
            pin = ""
        else:
            pin += digit
    await call.hangup()
    print(f"{call.remote}: {await call.wait_ended()}", flush=True)


async def main(args: argparse.Namespace) -> None:
    async with sipwire.UserAgent(args.aor, password=args.password, server=args.server) as ua:
        print(f"registered {ua.aor}, waiting for calls", flush=True)
        running: set[asyncio.Task[None]] = set()
        async for call in ua.incoming():  # one task per call, so callers do not wait
            task = asyncio.create_task(serve_call(call, args.prompt))
            running.add(task)
            task.add_done_callback(running.discard)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aor", help="our address, e.g. sip:ivr@localhost")
    parser.add_argument("--password")
    parser.add_argument("--server", required=True, help="registrar/proxy HOST:PORT")
    parser.add_argument("--prompt", metavar="FILE.wav", help="greeting to play")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
