"""A Renode session seen from the pipeline: the worker process that owns Renode, its JSON channel, and
:func:`start_renode`, which hands back a connected UART and always stops the worker.

Renode runs in a worker process (:mod:`wand_assets.device.renode.worker`) that owns the mono runtime:
mono must not be loaded twice in, or torn down from, a long-lived process such as Dagster's, and a
separate process group is the only teardown that is guaranteed. The worker gets a
:class:`~wand_assets.device.renode.plan.Plan` (JSON), runs its monitor commands, starts the machine and
answers small requests on its stdin/stdout (counter marks, opcode snapshots, finish). The worker dies
with this process, even by SIGKILL (:func:`wand_assets.core.procs.spawn`). This module never imports
pyrenode3.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from wand_assets.core.procs import kill_process_group, spawn
from wand_assets.core.targets import Target
from wand_assets.device import protocol
from wand_assets.device.protocol import Port
from wand_assets.device.qemu import SimulatorError
from wand_assets.device.renode.installation import renode_version
from wand_assets.device.renode.plan import Plan, RenodeSetup, make_plan, setup_commands
from wand_assets.device.renode.sniffer import MarkingPort
from wand_assets.device.renode.stats import renode_statistics

# SpringbokRiscV32.cs logs each simprint as `simprint: "<text>", <number> (0x<number>)`.
SIMPRINT_ENTRY = re.compile(r'simprint: "(.*)", \d+ \(0x[0-9A-F]+\)$', re.MULTILINE)
PACKAGE_PARENT = Path(__file__).resolve().parents[3]  # the folder that holds wand_assets/ (the worker's import root)


class WorkerConnection:
    """The worker process and its line-based JSON channel; every call has a timeout."""

    def __init__(self, plan_path: Path, stderr_path: Path, env: dict[str, str]):
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:
            self.process = spawn(
                [sys.executable, "-m", "wand_assets.device.renode.worker", str(plan_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=str(PACKAGE_PARENT),
            )
        self._lines: list[dict] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            with self._cv:
                self._lines.append(message)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def stderr_tail(self, chars: int = 3000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def receive(self, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not self._lines:
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise SimulatorError(
                        f"the Renode worker exited with status {self.process.returncode} while {what}:\n{self.stderr_tail()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SimulatorError(f"the Renode worker did not answer within {timeout_s:.0f} s while {what}")
                self._cv.wait(min(left, 0.2))
            message = self._lines.pop(0)
        if message.get("error"):
            raise SimulatorError(f"Renode: {message['error']}")
        return message

    def call(self, op: str, timeout_s: float = 30.0, **args) -> dict:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SimulatorError(f"the Renode worker is gone (status {self.process.poll()}):\n{self.stderr_tail()}") from None
        return self.receive(timeout_s, f"answering {op!r}")

    def stop(self, grace_s: float = 60.0) -> None:
        """Close the channel (the worker tears Renode down on EOF) and make sure the process group is gone."""
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None  # started with stdin=PIPE
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        kill_process_group(self.process)


@dataclass
class RenodeSession:
    """A running Renode with a connected UART. Use :func:`start_renode`; teardown is guaranteed there.

    After the ``with`` block ``statistics`` holds the Renode-only measurements (see
    :func:`wand_assets.device.renode.stats.renode_statistics`).
    """

    worker: WorkerConnection
    plan: Plan
    version: str
    _port: Port | None = None  # connected by start_renode before it yields the session
    log_offset: int = 0
    loop_started: bool = False
    marks: list[dict] = field(default_factory=list)
    process_opcodes: dict[str, int] = field(default_factory=dict)  # summed over the PROCESS requests
    _process_start_opcodes: dict | None = None
    loop_start: dict | None = None
    finish: dict | None = None
    statistics: dict | None = None
    wall_seconds: float = 0.0

    @property
    def port(self) -> Port:
        """The protocol UART; :func:`start_renode` connects it before it yields the session."""
        if self._port is None:
            raise SimulatorError("the Renode session's UART is not connected yet")
        return self._port

    def mark(self, label: str) -> dict:
        """Read the simulator's counters now; around PROCESS also the opcode counters (summed per request)."""
        answer = self.worker.call("mark", label=label, opcodes=self.plan.opcode_counting)
        self.marks.append({"label": label, "instructions": answer["instructions"], "virtual_s": answer["virtual_s"]})
        opcodes = answer.get("opcodes")
        if opcodes is not None and label == "process_start":
            self._process_start_opcodes = opcodes
        elif opcodes is not None and label == "process_end" and self._process_start_opcodes is not None:
            for op, count in opcodes.items():
                delta = count - self._process_start_opcodes.get(op, 0)
                if delta:
                    self.process_opcodes[op] = self.process_opcodes.get(op, 0) + delta
            self._process_start_opcodes = None
        return answer

    def mark_loop_start(self) -> None:
        """Snapshot the opcode counters and start the profiler: the evaluation loop begins now."""
        self.loop_start = self.worker.call("loop_start", timeout_s=60.0)
        self.loop_started = True

    def log_text(self) -> str:
        parts = []
        for path in (self.plan.log_file, self.plan.renode_log):
            with contextlib.suppress(FileNotFoundError):
                parts.append(Path(path).read_text(errors="replace"))
        return "\n".join(parts)

    def firmware_log_text(self) -> str:
        """What the firmware logged: the log UART's output, or, on a board without one (Springbok), the
        text of its ``simprint`` instructions, which Renode writes into its own log."""
        path = Path(self.plan.log_file if self.plan.log_uart else self.plan.renode_log)
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text(errors="replace")
            if self.plan.log_uart:
                return text
            return "".join(f"{m.group(1)}\n" for m in SIMPRINT_ENTRY.finditer(text))
        return ""

    def new_log_lines(self) -> list[str]:
        text = self.firmware_log_text()
        fresh, self.log_offset = text[self.log_offset :], len(text)
        return [line for line in fresh.splitlines() if line.strip()]

    def exit_status(self) -> int | None:
        return self.worker.process.poll()

    def describe(self) -> dict:
        return {
            "name": "renode",
            "version": self.version,
            "script": self.plan.resc,
            "variables": self.plan.variables,
            "commands": setup_commands(self.plan),
            "post_start_commands": self.plan.post_start_commands,
            "profiler": bool(self.plan.profiler_dump),
        }


def _wait_for_init(session: RenodeSession, message: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while message not in session.log_text():
        if session.exit_status() is not None:
            raise SimulatorError(
                f"the Renode worker exited (status {session.exit_status()}) before the firmware was ready:\n"
                f"{session.worker.stderr_tail()}\nlog:\n{session.log_text()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise SimulatorError(
                f"firmware did not log '{message}' within {timeout_s:.0f} s (log UART and Renode log); log:\n"
                f"{session.log_text()[-2000:]}"
            )
        time.sleep(0.05)


@contextlib.contextmanager
def start_renode(
    elf: Path,
    target: Target | None,
    workdir: Path,
    *,
    setup: RenodeSetup = RenodeSetup(),  # noqa: B008 - frozen dataclass, never mutated
    boot_timeout_s: float = 30.0,
    worker_start_timeout_s: float = 120.0,
    log: Callable[[str], None] = lambda _m: None,
    wire: ModuleType = protocol,
) -> Iterator[RenodeSession]:
    """Start Renode in a worker, connect the UART pty, wait for the init message; always stop the worker.

    ``wire``: the protocol module the host speaks (``protocol`` or ``kenning_protocol``), for the sniffer."""
    import serial

    version = renode_version()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("firmware.log", "renode.log", "profiler.dump", "uart.pty", "log_uart.pty", "worker.json"):
        (workdir / stale).unlink(missing_ok=True)
    plan = make_plan(elf, target, workdir, setup)
    plan_path = workdir / "plan.json"
    plan.dump(plan_path)
    log(f"starting Renode worker ({version}): {plan.resc} with {', '.join('$' + k for k in plan.variables)}")
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    started = time.monotonic()
    worker = WorkerConnection(plan_path, workdir / "renode_worker.stderr", env)
    session = RenodeSession(worker, plan, version)
    uart = None
    try:
        ready = worker.receive(worker_start_timeout_s, "starting Renode")
        log(f"Renode started in {time.monotonic() - started:.1f} s (worker pid {worker.process.pid})")
        uart = serial.Serial(ready["uart_pty"], 115200, timeout=0.5)
        session._port = MarkingPort(uart, session, wire)
        _wait_for_init(session, setup.init_message, boot_timeout_s)
        for line in session.new_log_lines():
            log(f"firmware: {line}")
        yield session
        session.finish = worker.call("finish", timeout_s=120.0)
    finally:
        # Renode must dispose its pty before the host side closes it (else mono can die on EIO).
        worker.stop()
        if uart is not None:
            with contextlib.suppress(Exception):
                uart.close()
        session.wall_seconds = time.monotonic() - started
    if session.finish is not None:
        session.statistics = renode_statistics(session)
