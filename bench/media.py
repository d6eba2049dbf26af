"""Media benchmark: N concurrent G.711 calls both ways between two processes on loopback.

Each process opens N media streams (RTP + RTCP ports each); stream i of process A and
stream i of process B send each other 20 ms PCMU packets of a looping tone for the whole
run (playback -> G.711 encode -> RTP -> UDP -> parse -> A.1/A.8 statistics -> decode ->
jitter buffer -> playout every 20 ms, RTCP every ~5 s). After a warm-up, each process
measures over --seconds:

* CPU%: its own process CPU time (user + system) over the wall-clock window;
* packets sent/received per stream per second (50 is the target);
* late sends (sent > 10 ms after their 20 ms slot), skipped frames (the pacer fell
  > 5 frames behind), lost (RFC 3550 §A.3) and late-arriving packets (jitter buffer).

    python bench/media.py [--streams 50,100,200,400] [--seconds 10] [--loop asyncio|uvloop]
                          [--impl sipwire|pyvoip|both]

``--impl pyvoip`` runs pyVoIP's RTPClient (pip install pyVoIP) the same way, stream for
stream: it is usable without its SIP phone (constructor + start/stop), but it uses two
threads per stream (a sender that sleeps between packets and a receiver that polls a
non-blocking socket every 10 ms) and 8-bit audio through audioop, so only CPU%, packet
rates and loss can be compared; it has no late-packet or jitter statistics.

pyVoIP runs are capped at --pyvoip-max streams (default 200): at 400 streams its 1,600
threads per process pair saturate a small machine for everyone.

Every child process is stopped at the end of its step (terminate, then kill), also when
the orchestrator is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

HOST = "127.0.0.1"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- sipwire child


async def _sipwire_child(n: int, seconds: float, warmup: float) -> None:
    from sipwire.media.session import MediaConfig, RemoteMedia
    from sipwire.media.stream import MediaStream
    from sipwire.media.tone import sine

    loop = asyncio.get_running_loop()
    config = MediaConfig()
    streams = [await MediaStream.open(HOST, config=config) for _ in range(n)]
    _emit({"ports": [s.local_port for s in streams]})
    peer_ports = json.loads(await asyncio.to_thread(sys.stdin.readline))["ports"]
    tone = sine(440, 1.0, amplitude=0.3)
    players = []
    for stream, port in zip(streams, peer_ports, strict=True):
        stream.start(RemoteMedia(address=HOST, port=port))
        players.append(asyncio.create_task(stream.play_pcm(tone, repeat=True)))
    await asyncio.sleep(warmup)

    def snapshot() -> dict[str, float]:
        total: dict[str, float] = {}
        for stream in streams:
            st = stream.statistics()
            for key in (
                "packets_sent",
                "packets_received",
                "late_sends",
                "skipped_frames",
                "packets_lost",
                "packets_late",
                "concealed",
            ):
                total[key] = total.get(key, 0) + getattr(st, key)
        total["cpu"] = time.process_time()
        total["wall"] = loop.time()
        return total

    before = snapshot()
    await asyncio.sleep(seconds)
    after = snapshot()
    delta = {k: after[k] - before[k] for k in after}
    for stream in streams:
        stream.stop_playing()
    await asyncio.gather(*players)
    for stream in streams:
        await stream.close()
    _emit({"result": delta})


# --------------------------------------------------------------------------- pyVoIP child


def _free_ports(count: int, first: int) -> list[int]:
    """``count`` even ports from ``first`` on (below the ephemeral range, a different
    range per process) that are free now; pyVoIP binds them itself."""
    ports: list[int] = []
    port = first
    while len(ports) < count and port < first + 10000:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, port))
                ports.append(port)
            except OSError:
                pass
        port += 2
    return ports


def _pyvoip_child(n: int, seconds: float, warmup: float, first_port: int) -> None:
    import warnings

    warnings.simplefilter("ignore")
    from pyVoIP.RTP import PayloadType, RTPClient, TransmitType

    received = [0]

    class CountingClient(RTPClient):
        def parse_packet(self, packet: bytes) -> None:
            received[0] += 1
            super().parse_packet(packet)

    ports = _free_ports(n, first_port)
    _emit({"ports": ports})
    peer_ports = json.loads(sys.stdin.readline())["ports"]
    clients = [
        CountingClient({0: PayloadType.PCMU}, HOST, port, HOST, peer, TransmitType.SENDRECV)
        for port, peer in zip(ports, peer_ports, strict=True)
    ]
    for client in clients:
        client.start()
    time.sleep(warmup)

    def snapshot() -> dict[str, float]:
        return {
            "packets_sent": float(sum(c.outSequence for c in clients)),
            "packets_received": float(received[0]),
            "cpu": time.process_time(),
            "wall": time.monotonic(),
        }

    before = snapshot()
    time.sleep(seconds)
    after = snapshot()
    for client in clients:
        client.stop()
    _emit({"result": {k: after[k] - before[k] for k in after}})


# --------------------------------------------------------------------------- orchestration


def _spawn(impl: str, n: int, args: argparse.Namespace, first_port: int) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        impl,
        "--n",
        str(n),
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--loop",
        args.loop,
        "--first-port",
        str(first_port),
    ]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _read(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The child's next JSON line, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 1.0))
        if ready:
            line = proc.stdout.readline()
            if line:
                return dict(json.loads(line))
        if proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode}")
    raise TimeoutError("child did not answer")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_step(impl: str, n: int, args: argparse.Namespace) -> list[dict[str, float]]:
    a = _spawn(impl, n, args, 10000)
    b = _spawn(impl, n, args, 20000)
    try:
        ports_a = _read(a, 60)["ports"]
        ports_b = _read(b, 60)["ports"]
        assert a.stdin is not None and b.stdin is not None
        a.stdin.write(json.dumps({"ports": ports_b}) + "\n")
        a.stdin.flush()
        b.stdin.write(json.dumps({"ports": ports_a}) + "\n")
        b.stdin.flush()
        budget = args.warmup + args.seconds + 60
        return [_read(a, budget)["result"], _read(b, budget)["result"]]
    finally:
        _stop(a)
        _stop(b)


def _row(impl: str, n: int, side: str, r: dict[str, float], seconds: float) -> str:
    wall = r["wall"] or seconds
    cpu = 100.0 * r["cpu"] / wall
    sent = r["packets_sent"] / n / wall
    received = r["packets_received"] / n / wall
    extra = "      -      -      -      -"
    if "late_sends" in r:
        extra = (
            f"{int(r['late_sends']):>7} {int(r['skipped_frames']):>6} "
            f"{int(r['packets_lost']):>6} {int(r['packets_late']):>6}"
        )
    return f"{impl:<8} {n:>5} {side:>4} {cpu:>6.1f} {sent:>7.2f} {received:>7.2f} {extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="50,100,200,400")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--impl", choices=["sipwire", "pyvoip", "both"], default="sipwire")
    parser.add_argument("--child", choices=["sipwire", "pyvoip"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-port", type=int, default=10000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--pyvoip-max",
        type=int,
        default=200,
        help="largest N run with pyVoIP (2 threads per stream; default 200)",
    )
    args = parser.parse_args()
    _raise_fd_limit()
    if args.child == "sipwire":
        if args.loop == "uvloop":
            import uvloop

            uvloop.install()
        asyncio.run(_sipwire_child(args.n, args.seconds, args.warmup))
        return
    if args.child == "pyvoip":
        _pyvoip_child(args.n, args.seconds, args.warmup, args.first_port)
        return
    # SIGTERM (e.g. from `timeout`) unwinds through run_step's finally: children stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    impls = ["sipwire", "pyvoip"] if args.impl == "both" else [args.impl]
    print(f"loop={args.loop} window={args.seconds}s warm-up={args.warmup}s cpus={os.cpu_count()}")
    print("impl         N side   CPU%  sent/s  recv/s  late_tx  skip   lost late_rx")
    for impl in impls:
        for n in (int(x) for x in args.streams.split(",")):
            if impl == "pyvoip" and n > args.pyvoip_max:
                print(f"{impl:<8} {n:>5}  skipped: {2 * n} threads per process (--pyvoip-max)")
                continue
            results = run_step(impl, n, args)
            for side, r in zip("AB", results, strict=True):
                print(_row(impl, n, side, r, args.seconds), flush=True)


if __name__ == "__main__":
    main()
