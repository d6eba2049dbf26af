"""Call-rate benchmark: SIPp's built-in uac against `sipwire uas`, side by side with SIPp's
own built-in uas (C++) as the reference peer, in the same run.

One call is INVITE, 180, 200, ACK, BYE, 200 over UDP on 127.0.0.1.  For each responder
the offered rate is multiplied by --factor from --start for up to --steps steps, while no
call fails and the responder does not saturate a core; after the first failing step up to
--refine more steps bisect between the last good and the first bad rate.  Each step runs
--seconds seconds of calls.  Printed per step: offered rate, successful/failed calls,
SIPp's retransmissions (a responder that lags gets retransmitted requests), the average
call length seen by SIPp, and the responder's CPU time per call split into user and
system time (from /proc/PID/stat, so only the responder is measured; its start-up is not
counted).  At the end: the max rate with zero failed calls, the max rate at which the
responder also keeps up (SIPp retransmitted under 1% of the calls: answers within T1),
and the sipwire/SIPp ratios.

    python bench/uas.py [--start 200] [--steps 4] [--seconds 3] [--factor 2] [--refine 0]

Every loop is bounded (steps + refine steps, each bounded in time); every process
started is stopped.  The numbers depend on the machine and on what else runs on it:
compare the two responders of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime


def wait_udp_bound(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on udp {port}")


def sipp_duration(text: str) -> float:
    """SIPp's ``HH:MM:SS:micro`` statistics format, in seconds."""
    try:
        h, m, s, us = (int(p) for p in text.split(":"))
    except ValueError:
        return 0.0
    return h * 3600 + m * 60 + s + us / 1e6


@dataclass
class Step:
    rate: int
    ok: int
    failed: int
    retransmissions: int
    call_ms: float
    user_us: float
    sys_us: float
    cpu_share: float

    @property
    def cpu_us_per_call(self) -> float:
        return self.user_us + self.sys_us


def run_step(port: int, pid: int, rate: int, seconds: float, workdir: Path) -> Step:
    calls = int(rate * seconds)
    stats = workdir / f"uac-{port}-{rate}.csv"
    user0, sys0 = cpu_times(pid)
    t0 = time.monotonic()
    subprocess.run(
        [
            "sipp",
            "-sn",
            "uac",
            f"127.0.0.1:{port}",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-m",
            str(calls),
            "-r",
            str(rate),
            "-l",
            str(max(rate * 4, 100)),
            "-nostdin",
            "-timeout",
            f"{int(seconds * 4 + 20)}s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
            str(stats),
            "-fd",
            "60",
            "-max_socket",
            "50000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds * 6 + 40,
        check=False,
        cwd=workdir,
    )
    wall = time.monotonic() - t0
    user1, sys1 = cpu_times(pid)
    rows = list(csv.reader(stats.open(), delimiter=";"))
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = calls - ok  # failed outright, or never completed before SIPp gave up
    n = max(ok, 1)
    return Step(
        rate=rate,
        ok=ok,
        failed=failed,
        retransmissions=int(last[head.index("Retransmissions(C)")]),
        call_ms=sipp_duration(last[head.index("CallLength(C)")]) * 1e3,
        user_us=(user1 - user0) / n * 1e6,
        sys_us=(sys1 - sys0) / n * 1e6,
        cpu_share=(user1 - user0 + sys1 - sys0) / wall,
    )


def next_rate(args: argparse.Namespace, results: list[Step]) -> int | None:
    """The next rate to offer, or None when done: multiply by --factor while every call
    succeeds, then bisect between the best good and the lowest failing rate."""
    if not results:
        return int(args.start)
    first_bad = next((i for i, s in enumerate(results) if s.failed), None)
    last = results[-1]
    if first_bad is None:
        if len(results) >= args.steps or last.cpu_share > 0.97:
            return None
        return int(last.rate * args.factor)
    if len(results) - first_bad - 1 >= args.refine:
        return None
    high = min(s.rate for s in results if s.failed)
    below = [s.rate for s in results if not s.failed and s.rate < high]
    if not below:
        return None
    low = max(below)
    rate = (low + high) // 2
    if high - low <= max(50, low // 20):
        return None
    return rate


def bench(
    name: str, argv: list[str], port: int, args: argparse.Namespace, workdir: Path
) -> list[Step]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=workdir,
    )
    steps: list[Step] = []
    try:
        wait_udp_bound(port)
        for _ in range(args.steps + args.refine):
            rate = next_rate(args, steps)
            if rate is None:
                break
            step = run_step(port, proc.pid, rate, args.seconds, workdir)
            steps.append(step)
            print(
                f"  {name:8} rate {step.rate:6}/s  ok {step.ok:7}  failed {step.failed:5}  "
                f"retrans {step.retransmissions:6}  call {step.call_ms:7.1f} ms  "
                f"cpu {step.cpu_us_per_call:7.1f} us/call "
                f"(user {step.user_us:6.1f} + sys {step.sys_us:5.1f}, "
                f"{step.cpu_share * 100:5.1f}% of a core)",
                flush=True,
            )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return steps


def best(steps: list[Step], *, keeping_up: bool = False) -> Step | None:
    """The fastest step without failed calls; ``keeping_up``: also with SIPp retransmitting
    under 1% of the calls (the responder answers within T1 = 500 ms: not queueing)."""
    good = [
        s for s in steps if s.failed == 0 and (not keeping_up or s.retransmissions <= s.ok // 100)
    ]
    return max(good, key=lambda s: s.rate) if good else None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--start", type=int, default=200, help="first offered rate (calls/s)")
    parser.add_argument("--steps", type=int, default=4, help="ramp steps at most")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each step")
    parser.add_argument("--factor", type=float, default=2.0, help="rate multiplier per step")
    parser.add_argument(
        "--refine", type=int, default=0, help="bisection steps after the first failing step"
    )
    args = parser.parse_args()
    if args.factor <= 1 or args.start < 1 or args.steps < 1 or args.seconds <= 0:
        parser.error("need --factor > 1, --start >= 1, --steps >= 1, --seconds > 0")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        p1 = free_port()
        print("SIPp uac -> sipwire uas (UDP)")
        ours = bench(
            "sipwire",
            [sys.executable, "-m", "sipwire", "uas", "--listen", f"udp:127.0.0.1:{p1}"],
            p1,
            args,
            workdir,
        )
        p2 = free_port()
        print("SIPp uac -> SIPp uas (UDP, the C++ reference)")
        theirs = bench(
            "sipp-uas",
            [
                "sipp",
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                str(p2),
                "-nostdin",
                "-max_socket",
                "50000",
            ],
            p2,
            args,
            workdir,
        )
    print()
    for keeping_up in (False, True):
        what = "0 failed calls, <1% retransmitted" if keeping_up else "0 failed calls"
        a, b = best(ours, keeping_up=keeping_up), best(theirs, keeping_up=keeping_up)
        for label, step in (("sipwire uas:", a), ("SIPp uas:   ", b)):
            if step:
                print(
                    f"{label} max {step.rate}/s with {what}, "
                    f"{step.cpu_us_per_call:.0f} us CPU/call "
                    f"(user {step.user_us:.0f} + sys {step.sys_us:.0f})"
                )
            else:
                print(f"{label} no step with {what}")
        if a and b:
            print(
                f"ratio sipwire/SIPp: rate {a.rate / b.rate:.2f}x, "
                f"CPU per call {a.cpu_us_per_call / b.cpu_us_per_call:.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
