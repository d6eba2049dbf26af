"""Call-rate benchmark: SIPp's built-in uac against `sipwire uas`, side by side with SIPp's
own built-in uas (C++) as the reference peer, in the same run.

For each responder the rate doubles from --start until a step has failed calls (or the
responder saturates a core), each step running --seconds seconds of calls. Printed per
step: offered rate, successful/failed calls, the responder's CPU time per call (from
/proc/PID/stat, so only the responder is measured), and at the end the max rate with
zero failed calls and the sipwire/SIPp ratios.

    python bench/uas.py [--start 100] [--steps 5] [--seconds 4]

Every loop is bounded (steps x seconds); every process started is stopped.
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


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


@dataclass
class Step:
    rate: int
    ok: int
    failed: int
    cpu_us_per_call: float
    cpu_share: float


def run_step(port: int, pid: int, rate: int, seconds: float, workdir: Path) -> Step:
    calls = int(rate * seconds)
    stats = workdir / f"uac-{port}-{rate}.csv"
    cpu0 = cpu_seconds(pid)
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
    cpu = cpu_seconds(pid) - cpu0
    rows = list(csv.reader(stats.open(), delimiter=";"))
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")]) + (
        calls - ok - int(last[head.index("FailedCall(C)")])
    )
    return Step(rate, ok, failed, cpu / max(ok, 1) * 1e6, cpu / wall)


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
        rate = args.start
        for _ in range(args.steps):
            step = run_step(port, proc.pid, rate, args.seconds, workdir)
            steps.append(step)
            print(
                f"  {name:8} rate {step.rate:6}/s  ok {step.ok:7}  failed {step.failed:5}  "
                f"cpu {step.cpu_us_per_call:8.1f} us/call  "
                f"({step.cpu_share * 100:5.1f}% of a core)",
                flush=True,
            )
            if step.failed or step.cpu_share > 0.97:
                break
            rate *= 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return steps


def best(steps: list[Step]) -> Step | None:
    good = [s for s in steps if s.failed == 0]
    return max(good, key=lambda s: s.rate) if good else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
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
    a, b = best(ours), best(theirs)
    print()
    if a:
        print(
            f"sipwire uas: max {a.rate}/s with 0 failed calls, {a.cpu_us_per_call:.0f} us CPU/call"
        )
    if b:
        print(
            f"SIPp uas:    max {b.rate}/s with 0 failed calls, {b.cpu_us_per_call:.0f} us CPU/call"
        )
    if a and b:
        print(
            f"ratio sipwire/SIPp: rate {a.rate / b.rate:.2f}x, "
            f"CPU per call {a.cpu_us_per_call / b.cpu_us_per_call:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
