"""Start, watch and always kill real-peer processes.

Every peer runs in its own session (``start_new_session=True``), so its pid is its process
group id and :meth:`PeerProcess.stop` kills the whole group (SIGTERM, then SIGKILL after a
bounded wait). stdout and stderr are merged, read by a daemon thread, written to a log file
as they arrive and kept in memory (bounded) for :meth:`PeerProcess.wait_for`. A
:class:`Procs` manager (the ``procs`` fixture in ``tests/conftest.py``) owns every process
a test starts, stops them all in teardown even when the test fails, and renders their log
tails for the failure report. An ``atexit`` hook kills anything still running if the
interpreter exits without teardown.

Tricks and notes:

* Match on the merged output *text*, not lines: linphonec prints its ``linphonec>`` prompt
  without a newline.
* ``wait_for(pattern, start=...)`` searches from an offset; take ``mark = proc.mark()``
  *before* the action whose effect you wait for, so an old match cannot satisfy a new wait.
  ``expect()`` is the pexpect-style variant with an internal cursor.
* Waits are bounded and wake on new output (a condition variable), never fixed sleeps.
  :func:`wait_until` polls a predicate (for files, sockets) with a short interval until a
  deadline.
* The environment gets ``LC_ALL=C`` (stable messages); baresip still prints ANSI colour
  escapes, which :data:`ANSI_RE` removes from the searchable text (the log keeps them).
* A missing binary raises :class:`PeerMissingError` (an ``AssertionError``): peer tests fail,
  never skip, when the peer is not installed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

__all__ = [
    "ANSI_RE",
    "PeerMissingError",
    "PeerProcess",
    "PeerTimeoutError",
    "Procs",
    "require_binary",
    "wait_until",
]

T = TypeVar("T")

#: Removes ANSI colour/control sequences (baresip colours its warnings).
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: How much merged output a process keeps in memory (older text is dropped; the log file
#: keeps everything).
MAX_BUFFER_CHARS = 8 * 1024 * 1024

_live: set[PeerProcess] = set()
_live_lock = threading.Lock()


class PeerMissingError(AssertionError):
    """A peer binary the test needs is not installed (run scripts/install-peers.sh)."""


class PeerTimeoutError(AssertionError):
    """A bounded wait on a peer expired; the message carries the peer's recent output."""


def require_binary(name: str) -> str:
    """Absolute path of ``name`` on PATH (also /usr/sbin), or raise PeerMissingError."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        raise PeerMissingError(
            f"peer binary {name!r} not found; install the peers with scripts/install-peers.sh"
        )
    return path


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` expires."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PeerTimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


class PeerProcess:
    """One running peer: merged output captured to ``log_path`` and searchable in memory."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: pathlib.Path,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | str | None = None,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env["LC_ALL"] = "C"
        if env:
            full_env.update(env)
        self._cond = threading.Condition()
        self._text = ""
        self._dropped = 0  # characters dropped from the front of _text
        self._eof = False
        self._cursor = 0
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(target=self._read, name=f"peer-{name}", daemon=True)
        self._reader.start()

    # -- output -----------------------------------------------------------------------------

    def _read(self) -> None:
        stream = self.popen.stdout
        assert stream is not None
        fd = stream.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self._log.write(chunk)
                self._log.flush()
                text = ANSI_RE.sub("", chunk.decode("utf-8", "replace"))
                with self._cond:
                    self._text += text
                    excess = len(self._text) - MAX_BUFFER_CHARS
                    if excess > 0:
                        self._text = self._text[excess:]
                        self._dropped += excess
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            with contextlib.suppress(OSError, ValueError):
                self._log.close()
            # our end of the pipe: Popen.wait() never closes it, and the Procs of every
            # test stay referenced until the session ends, so each peer would keep an fd
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def output(self) -> str:
        """All captured output still in memory (ANSI escapes removed)."""
        with self._cond:
            return self._text

    def mark(self) -> int:
        """The current end of output, as an offset for ``wait_for(..., start=mark)``."""
        with self._cond:
            return self._dropped + len(self._text)

    def tail(self, chars: int = 3000) -> str:
        with self._cond:
            return self._text[-chars:]

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = 10.0,
        *,
        start: int = 0,
        flags: int = 0,
    ) -> re.Match[str]:
        """Wait until ``pattern`` (regex) appears in the output at or after offset ``start``.

        Raises PeerTimeoutError on timeout, or when the process exits without a match.
        """
        regex = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                pos = max(0, start - self._dropped)
                match = regex.search(self._text, pos)
                if match is not None:
                    return match
                if self._eof:
                    raise PeerTimeoutError(
                        f"{self.name} exited (rc={self.popen.poll()}) before output matched "
                        f"{regex.pattern!r}; output tail:\n{self._text[-3000:]}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerTimeoutError(
                        f"{self.name}: no {regex.pattern!r} within {timeout:.1f}s; "
                        f"output tail:\n{self._text[-3000:]}"
                    )
                self._cond.wait(remaining)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """pexpect-style: wait for ``pattern`` after the previous expect's match, advance."""
        match = self.wait_for(pattern, timeout, start=self._cursor)
        with self._cond:
            self._cursor = self._dropped + match.end()
        return match

    def skip_to_end(self) -> None:
        """Move the expect() cursor to the current end of output."""
        self._cursor = self.mark()

    # -- input ------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        stdin = self.popen.stdin
        if stdin is None:
            raise RuntimeError(f"{self.name} was started without stdin=True")
        stdin.write(text.encode())
        stdin.flush()

    def sendline(self, line: str) -> None:
        self.send(line + "\n")

    # -- lifetime ---------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit on its own; return its exit status."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PeerTimeoutError(
                f"{self.name} still running after {timeout:.1f}s; output tail:\n{self.tail()}"
            ) from None
        self._reader.join(timeout=2.0)
        self._forget()
        return rc

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, term_timeout: float = 3.0, kill_timeout: float = 3.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``term_timeout``; return the status."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(term_timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(kill_timeout)
        # The leader is gone (or going); make sure no child of it lingers in the group
        # (forked workers that outlive their parent keep its ports and our pipe open).
        # Safe after the leader is reaped: Linux does not reuse a pid that is still the
        # id of a process group with members.
        self.signal(signal.SIGKILL)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self._reader.join(timeout=2.0)
        self._forget()
        return self.popen.poll()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def __repr__(self) -> str:
        return f"<PeerProcess {self.name} pid={self.pid} rc={self.popen.poll()}>"


class Procs:
    """Owns the peer processes of one test: start, then stop them all in teardown."""

    def __init__(self, log_dir: pathlib.Path) -> None:
        self.log_dir = log_dir
        self.processes: list[PeerProcess] = []
        self._files: list[tuple[str, pathlib.Path]] = []
        self._cleanups: list[Callable[[], object]] = []
        self._taken: set[str] = set()
        self._reserved: set[str] = set()

    def unique(self, name: str) -> str:
        """Reserve and return ``name``, or ``name-2``, ``name-3``... if already taken.

        Wrappers reserve a name for their work dir, then :meth:`start` the process under it.
        """
        candidate, n = name, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{name}-{n}"
        self._taken.add(candidate)
        self._reserved.add(candidate)
        return candidate

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | str | None = None,
        stdin: bool = False,
    ) -> PeerProcess:
        """Start ``argv`` (its binary must exist) with its log in ``log_dir/<name>.log``."""
        require_binary(str(argv[0]))
        if name in self._reserved:
            self._reserved.discard(name)  # reserved by unique(): use it as is, once
        else:
            name = self.unique(name)
            self._reserved.discard(name)
        proc = PeerProcess(
            name, argv, log_path=self.log_dir / f"{name}.log", env=env, cwd=cwd, stdin=stdin
        )
        self.processes.append(proc)
        return proc

    def attach_file(self, label: str, path: pathlib.Path) -> None:
        """Show the tail of ``path`` in the failure report too (SIPp error logs...)."""
        self._files.append((label, path))

    def on_teardown(self, func: Callable[[], object]) -> None:
        """Run ``func`` in teardown before the processes are stopped (e.g. close sockets)."""
        self._cleanups.append(func)

    def stop_all(self) -> None:
        for func in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                func()
        self._cleanups.clear()
        for proc in reversed(self.processes):
            proc.stop()

    def report(self, chars: int = 4000) -> str:
        """Tails of every log and attached file, for a failed test's report."""
        parts: list[str] = []
        for proc in self.processes:
            parts.append(
                f"----- {proc.name} (pid {proc.pid}, rc {proc.popen.poll()}) {proc.log_path}\n"
                f"$ {' '.join(proc.argv)}\n{proc.tail(chars)}"
            )
        for label, path in self._files:
            try:
                text = path.read_text(errors="replace")[-chars:]
            except OSError as exc:
                text = f"<unreadable: {exc}>"
            parts.append(f"----- {label}: {path}\n{text}")
        return "\n".join(parts)


def _kill_leftovers(procs: Iterable[PeerProcess] | None = None) -> None:
    with _live_lock:
        leftovers = list(_live if procs is None else procs)
    for proc in leftovers:
        with contextlib.suppress(Exception):
            proc.stop(term_timeout=1.0, kill_timeout=1.0)


atexit.register(_kill_leftovers)
