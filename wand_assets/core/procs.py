"""The one place that starts external processes: argument lists, a timeout, streamed logs, teardown,
and a guarantee that no child outlives this process, even when this process is SIGKILLed.

Children die with this process. Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``) makes the
kernel SIGKILL a child when its parent dies, however it dies. But the parent it watches is the
*thread* that forked the child, not the process: a child forked by a Dagster step that runs in a
worker thread would be killed when that thread ends, while the process and the code holding the child
live on. So no caller forks itself. Every child is forked by one spawner thread that never returns
(started on first use, one per process, a daemon), and its death signal therefore fires when, and
only when, the process dies. Between fork and exec the child arms the signal, then checks that its
parent is still the process that forked it (the parent may have died before the signal was armed).

The signal reaches the direct child only; a tool's own children outlive it until they finish. Tools
that fan out long-lived work are run so that the long-lived process is the direct child (the
firmware build runs ninja itself, not through ``cmake --build``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LogFn = Callable[[str], None]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_SIGKILL = int(signal.SIGKILL)
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the child between fork and exec only calls it


class ToolError(RuntimeError):
    """An external tool failed; the message carries the command and the tail of its output."""

    def __init__(self, what: str, args: Sequence[str], returncode: int | None, tail: str):
        self.returncode = returncode
        self.tail = tail
        status = "timed out" if returncode is None else f"exited with status {returncode}"
        super().__init__(f"{what} {status}: {' '.join(map(str, args))}\n{tail}")


@dataclass
class ToolResult:
    returncode: int
    output: str
    seconds: float


def spawn(args: Sequence[str | os.PathLike], **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(args, **popen_kwargs)`` for a child that dies with this process.

    The child leads its own process group (so :func:`kill_process_group` reaches what it starts) and
    is SIGKILLed by the kernel when this process dies (see the module docstring).
    """
    if "preexec_fn" in popen_kwargs or "start_new_session" in popen_kwargs:
        raise TypeError("spawn() sets preexec_fn and start_new_session itself")
    return _SPAWNER.popen([str(a) for a in args], popen_kwargs)


def _arm_parent_death_signal(parent_pid: int) -> None:
    """Runs in the child between fork and exec: be SIGKILLed when ``parent_pid`` dies."""
    if _LIBC.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), _SIGKILL)


class _Spawner:
    """The one thread that forks children; see the module docstring for why it exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue | None = None

    def popen(self, argv: list[str], kwargs: dict) -> subprocess.Popen:
        started: concurrent.futures.Future = concurrent.futures.Future()
        self._queue().put((argv, kwargs, started))
        try:
            concurrent.futures.wait([started])
        except BaseException:
            # Interrupted (Ctrl-C) while the spawner forks: nobody else will ever hold this child.
            started.add_done_callback(_kill_if_started)
            raise
        return started.result()

    def _queue(self) -> queue.SimpleQueue:
        with self._lock:
            if self._requests is None:
                self._requests = queue.SimpleQueue()
                thread = threading.Thread(target=_serve, args=(self._requests, os.getpid()), name="wand-spawner", daemon=True)
                thread.start()
            return self._requests

    def forget_after_fork(self) -> None:
        """In a forked child the spawner thread does not exist (and the lock may be held): start afresh."""
        self._lock = threading.Lock()
        self._requests = None


def _serve(requests: queue.SimpleQueue, parent_pid: int) -> None:
    arm = functools.partial(_arm_parent_death_signal, parent_pid)
    while True:  # never returns: the children's death signal is tied to this thread
        argv, kwargs, started = requests.get()
        if not started.set_running_or_notify_cancel():
            continue
        try:
            started.set_result(subprocess.Popen(argv, preexec_fn=arm, start_new_session=True, **kwargs))  # noqa: PLW1509 - only this thread forks
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            started.set_exception(exc)


def _kill_if_started(started: concurrent.futures.Future) -> None:
    if started.exception() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.result().pid, _SIGKILL)
        started.result().wait()


_SPAWNER = _Spawner()
os.register_at_fork(after_in_child=_SPAWNER.forget_after_fork)


def run_tool(
    args: Sequence[str | os.PathLike],
    *,
    what: str,
    timeout_s: float,
    log: LogFn | None = None,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    tail_lines: int = 60,
) -> ToolResult:
    """Run ``args`` (no shell, :func:`spawn`), stream each output line to ``log``, kill the process group on timeout.

    Raises :class:`ToolError` with the last ``tail_lines`` lines when the tool fails or times out.
    """
    argv = [str(a) for a in args]
    started = time.monotonic()
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=tail_lines)
    proc = spawn(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    )

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            tail.append(line)
            if log:
                log(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        reader.join(timeout=5)
        raise ToolError(what, argv, None, "\n".join(tail)) from None
    except BaseException:
        kill_process_group(proc)
        raise
    reader.join(timeout=5)
    if proc.returncode != 0:
        raise ToolError(what, argv, proc.returncode, "\n".join(tail))
    return ToolResult(proc.returncode, "\n".join(lines), time.monotonic() - started)


def kill_process_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate ``proc`` and everything it started; escalate to SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
