"""Forked children that write snapshots (Redis's `redisFork`), for persistence and replicas.

A snapshot of the keyspace is written by a child process: the fork's copy-on-write image is
the dataset exactly at the moment of the fork (the stream applies whole transactions between
two trio checkpoints, and the fork happens between two), and the relay goes on serving
meanwhile. Both users (`persistence` for BGSAVE and the save policy, `downstream` for a
replica's full sync) fork through `Forker.fork`, which:

- detaches the child from the parent's event loop, signals and listening sockets first
  (`_detach`), and makes it die with the parent (Linux `PR_SET_PDEATHSIG`);
- runs `work()` in the child, sends its JSON report through a pipe (it must fit the pipe
  buffer, so the child never blocks on it) and `_exit`s without running anything of the
  parent's (atexit handlers, trio's cleanups, buffered files);
- gives the parent a `Child` to poll, wait for or kill; the result carries the exit code
  and the report.

It owns no snapshot format and no file names: the work function does.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import trio

POLL = 0.02  # seconds between checks of a running child
_REPORT_MAX = 60_000  # a child's report must fit in the pipe buffer (64 KB): it never blocks


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _detach(parent: int, close_fds: list[int]) -> None:
    """First thing in the child: it must not act on the parent's signals, sockets or event loop.

    Python-level signal handlers would write to trio's wakeup fd, shared with the parent;
    closing the listening sockets frees the ports if the parent dies first (Redis closes
    them in its child too); a garbage collection would write into every object header and
    turn the copy-on-write image into a full copy. On Linux the child dies with its parent.
    """
    gc.disable()
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child_main(
    work: Callable[[], dict[str, Any]], parent: int, report_fd: int, close_fds: list[int]
) -> NoReturn:
    """Run `work` in the forked child, write its report to the pipe and `_exit`: never returns."""
    code = 1
    report: dict[str, Any] = {"error": "the child failed before starting"}
    try:
        _detach(parent, close_fds)
        report = work()
        code = 0
    except BaseException as e:
        report = {"error": f"{type(e).__name__}: {e}"[:4096]}
    finally:
        try:
            os.write(report_fd, json.dumps(report).encode()[:_REPORT_MAX])
        finally:
            os._exit(code)


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: its exit code (negative: killed by that signal) and its report."""

    code: int
    report: dict[str, Any]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code == 0 and "error" not in self.report

    @property
    def error(self) -> str:
        """Why it failed, for the log."""
        if self.code < 0:
            return f"terminated by signal {-self.code}"
        return str(self.report.get("error", f"exit code {self.code}"))


@dataclass(eq=False)
class Child:
    """A running child, as the parent sees it. Reap it exactly once: `poll` until it gives
    a result, or `wait`, or `kill`."""

    pid: int
    report_fd: int
    started: float  # monotonic
    result: ChildResult | None = field(default=None)

    def poll(self) -> ChildResult | None:
        """The result if the child has exited (reaping it), else None."""
        if self.result is not None:
            return self.result
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._reaped(status)

    async def wait(self) -> ChildResult:
        """Until the child exits. If the wait is cancelled, the child is killed first."""
        try:
            while True:
                result = self.poll()
                if result is not None:
                    return result
                await trio.sleep(POLL)
        except BaseException:
            self.kill()
            raise

    def kill(self) -> ChildResult:
        """Kill the child now (if it still runs) and reap it."""
        if self.result is not None:
            return self.result
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        return self._reaped(status)

    def _reaped(self, status: int) -> ChildResult:
        chunks = []
        try:
            while chunk := os.read(self.report_fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(self.report_fd)
        try:
            report = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            report = {}
        if not isinstance(report, dict):
            report = {}
        self.result = ChildResult(
            os.waitstatus_to_exitcode(status), report, time.monotonic() - self.started
        )
        return self.result


class Forker:
    """Forks snapshot children; knows which inherited descriptors a child must close."""

    def __init__(self) -> None:
        self._listeners: list[trio.SocketListener] = []

    def listening(self, listeners: list[trio.SocketListener]) -> None:
        """Listening sockets the children must close at once (so a dead parent's ports are
        free). Their numbers are read at each fork: a closed listener's number is reused."""
        self._listeners.extend(listeners)

    def _close_fds(self) -> list[int]:
        return [fd for fd in (li.socket.fileno() for li in self._listeners) if fd >= 0]

    def fork(self, work: Callable[[], dict[str, Any]]) -> Child:
        """Run `work` in a forked child; raises OSError when the fork fails."""
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        close_fds = [fd for fd in self._close_fds() if fd not in (read_fd, write_fd)]
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:
            os.close(read_fd)
            _child_main(work, parent, write_fd, close_fds)
        os.close(write_fd)
        return Child(pid, read_fd, time.monotonic())
