"""The one place that runs external tools: argument lists, a timeout, streamed logs, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

LogFn = Callable[[str], None]


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
    """Run ``args`` (no shell), stream each output line to ``log``, kill the process group on timeout.

    Raises :class:`ToolError` with the last ``tail_lines`` lines when the tool fails or times out.
    """
    argv = [str(a) for a in args]
    started = time.monotonic()
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=tail_lines)
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
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
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace_s)
