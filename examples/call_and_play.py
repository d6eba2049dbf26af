"""Call someone, play a WAV file (or a tone), send DTMF, record the answer, hang up.

    python examples/call_and_play.py sip:alice@localhost sip:bob@localhost \
        --password alice-pw --server 127.0.0.1:5060 --play hello.wav --record reply.wav
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import sipwire


async def main(args: argparse.Namespace) -> int:
    async with sipwire.UserAgent(args.aor, password=args.password, server=args.server) as ua:
        call = await ua.call(args.target)
        try:
            await call.wait_answered(timeout=60)
        except sipwire.CallFailed as exc:
            print(f"not answered: {exc.status} {exc.reason}")
            return 1
        if args.record:
            call.record(args.record)  # runs until the call ends
        if args.play:
            await call.play(args.play)
        else:
            await call.play_tone(440, seconds=2.0)
        if args.dtmf:
            await call.send_dtmf(args.dtmf)
        await call.hangup()
        print(await call.wait_ended())
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aor", help="our address, e.g. sip:alice@localhost")
    parser.add_argument("target", help="who to call, e.g. sip:bob@localhost")
    parser.add_argument("--password")
    parser.add_argument("--server", required=True, help="registrar/proxy HOST:PORT")
    parser.add_argument("--play", metavar="FILE.wav")
    parser.add_argument("--record", metavar="OUT.wav")
    parser.add_argument("--dtmf", metavar="DIGITS")
    sys.exit(asyncio.run(main(parser.parse_args())))
