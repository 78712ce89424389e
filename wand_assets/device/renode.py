"""Booting a firmware ELF in Renode (through pyrenode3) with its UART on a local pty.

Renode runs in a worker process (:mod:`wand_assets.device.renode_worker`) that owns the mono runtime: mono
must not be loaded twice in, or torn down from, a long-lived process such as Dagster's, and a
separate process group is the only teardown that is guaranteed. The worker gets a :class:`Plan`
(JSON), runs the monitor commands of :func:`setup_commands`, starts the machine and answers small
requests on its stdin/stdout (counter marks, opcode snapshots, finish). The worker dies with this
process, even by SIGKILL (:func:`wand_assets.core.procs.spawn`). This module never imports pyrenode3.

Two ways to describe the board:

- the wand board (default): ``renode/wand.resc`` with the platform rendered from
  ``renode/wand_board.repl.in`` for one :class:`~wand_assets.core.targets.Target` (CPU type, VLEN, ELEN
  from the registry), the protocol UART and the log UART on ptys created here;
- the seed's own setup: any ``.resc`` plus dependency files (each exposed as a monitor variable
  named after the file, Kenning's convention: :func:`monitor_variable_name`), extra monitor commands,
  post-start commands, an init message and, if the script makes its own pty, that pty's path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template
from typing import Callable, Iterator

from wand_assets.core.procs import kill_process_group, spawn
from wand_assets.core.targets import Target
from wand_assets.device.qemu import READY_LINE, SimulatorError

PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds wand_assets/
RENODE_DIR = PACKAGE_PARENT / "renode"
BOARD_TEMPLATE = RENODE_DIR / "wand_board.repl.in"
BOARD_SCRIPT = RENODE_DIR / "wand.resc"
BOARD_FILE_NAME = "wand_board.repl"  # -> monitor variable $wand_board_repl, used by wand.resc
PROTOCOL_TERMINAL = "wand_uart"
LOG_TERMINAL = "wand_log"
ENV_PKG, ENV_BUILD_DIR, ENV_RUNTIME, ENV_BIN = "PYRENODE_PKG", "PYRENODE_BUILD_DIR", "PYRENODE_RUNTIME", "PYRENODE_BIN"
INSTALL_HINT = (
    "Renode is not available to this pipeline. Install Renode (the official package from "
    "https://builds.renode.io, or a build of its source tree, v1.15.1 tested), pythonnet from PyPI and "
    "pyrenode3 from its git repository (pip install 'git+https://github.com/antmicro/pyrenode3'), then set "
    f"{ENV_PKG} to the Renode package file, or {ENV_BUILD_DIR} to the Renode build directory together "
    f"with {ENV_RUNTIME}=mono (or coreclr)."
)


class RenodeUnavailable(SimulatorError):
    """Renode or pyrenode3 is not installed or not configured; the message says what to set."""


def renode_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The pyrenode3 variables that are set; raises :class:`RenodeUnavailable` naming what is missing."""
    env = os.environ if env is None else env
    found = {k: env[k] for k in (ENV_PKG, ENV_BUILD_DIR, ENV_RUNTIME, ENV_BIN) if env.get(k)}
    if ENV_PKG in found or ENV_BIN in found:
        where = found.get(ENV_PKG) or found.get(ENV_BIN)
        if not Path(where).exists():
            raise RenodeUnavailable(f"{ENV_PKG if ENV_PKG in found else ENV_BIN}={where} does not exist. {INSTALL_HINT}")
        return found
    if ENV_BUILD_DIR in found:
        if ENV_RUNTIME not in found:
            raise RenodeUnavailable(f"{ENV_BUILD_DIR} is set but {ENV_RUNTIME} is not (mono or coreclr). {INSTALL_HINT}")
        if not Path(found[ENV_BUILD_DIR]).is_dir():
            raise RenodeUnavailable(f"{ENV_BUILD_DIR}={found[ENV_BUILD_DIR]} is not a directory. {INSTALL_HINT}")
        return found
    raise RenodeUnavailable(f"neither {ENV_PKG} nor {ENV_BUILD_DIR} + {ENV_RUNTIME} is set. {INSTALL_HINT}")


def check_renode_available(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment and pyrenode3 present (without loading mono). Returns the pyrenode3 variables."""
    found = renode_environment(env)
    if importlib.util.find_spec("pyrenode3") is None:
        raise RenodeUnavailable(f"the Python package pyrenode3 is not installed in {sys.executable}. {INSTALL_HINT}")
    return found


def renode_version(env: dict[str, str] | None = None) -> str:
    """Renode's version as read from the build tree or the package name (no mono needed)."""
    found = check_renode_available(env)
    if ENV_BUILD_DIR in found:
        version_file = Path(found[ENV_BUILD_DIR]) / "tools" / "version"
        version = version_file.read_text().strip() if version_file.exists() else "unknown version"
        return f"Renode {version} ({found[ENV_RUNTIME]}, source build)"
    name = Path(found.get(ENV_PKG) or found[ENV_BIN]).name
    match = re.search(r"(\d+\.\d+\.\d+[^_/]*?)(?:\.linux|\.tar|\.pkg|$)", name)
    return f"Renode {match.group(1) if match else name} ({name})"


def monitor_variable_name(path: str | os.PathLike) -> str:
    """Kenning's convention: ``SpringbokRiscV32.cs`` -> ``springbokriscv32_cs`` (used as ``$springbokriscv32_cs``)."""
    return Path(path).name.lower().replace(".", "_").replace("-", "_")


def render_board(target: Target) -> str:
    """The wand board's ``.repl`` for ``target``: CPU type and vector lengths from the registry.

    ELEN is set before VLEN: Renode checks VLEN ≥ ELEN whenever either changes.
    """
    properties = ""
    if target.has_vector:
        properties = f"\n    VectorElementMaxWidth: {target.elen}\n    VectorRegisterLength: {target.vlen}"
    return Template(BOARD_TEMPLATE.read_text()).substitute(cpu_type=target.renode_cpu_type(), cpu_properties=properties)


@dataclass(frozen=True)
class RenodeSetup:
    """How to build the board. Defaults: the wand board; every field can describe a user's own setup."""

    resc: str = ""  # empty: renode/wand.resc with the generated wand board
    dependencies: tuple[str, ...] = ()  # files the script uses, exposed as $<monitor_variable_name>
    cpu: str = "sysbus.cpu"
    uart: str = "sysbus.uart0"  # connected to a pty created here ...
    uart_pty: str = ""  # ... unless the script creates its own pty at this path (Kenning's /tmp/uart)
    log_uart: str = "sysbus.log_uart"  # empty: no log UART (the init message then comes from the Renode log)
    init_message: str = READY_LINE
    monitor_commands: tuple[str, ...] = ()  # after the script, before start
    post_start_commands: tuple[str, ...] = ()  # e.g. Springbok's "sysbus.vec_controlblock WriteDoubleWord 0xc 0"
    profiler: bool = True
    opcode_counting: bool = True


@dataclass
class Plan:
    """Everything the worker needs, written as JSON. Paths are absolute."""

    elf: str
    workdir: str
    resc: str
    variables: dict[str, str]  # monitor variable name -> file
    cpu: str
    uart: str
    uart_pty: str
    create_uart_pty: bool
    log_uart: str
    log_pty: str
    log_file: str  # what the log UART printed
    renode_log: str
    profiler_dump: str  # empty: no profiler
    opcode_counting: bool
    monitor_commands: list[str]
    post_start_commands: list[str]

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Plan":
        return cls(**json.loads(Path(path).read_text()))


def make_plan(elf: Path, target: Target | None, workdir: Path, setup: RenodeSetup) -> Plan:
    """Resolve a setup into a plan; the default setup writes the target's board into ``workdir``."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    variables: dict[str, str] = {}
    if setup.resc:
        resc = Path(setup.resc).resolve()
    else:
        if target is None:
            raise ValueError("the wand board needs a target (its CPU comes from the target registry)")
        board = workdir / BOARD_FILE_NAME
        board.write_text(render_board(target))
        variables[monitor_variable_name(board)] = str(board)
        resc = BOARD_SCRIPT
    for dep in setup.dependencies:
        path = Path(dep).resolve()
        if not path.exists():
            raise SimulatorError(f"Renode dependency {path} does not exist")
        variables[monitor_variable_name(path)] = str(path)
    if not resc.exists():
        raise SimulatorError(f"Renode script {resc} does not exist")
    variables["bin"] = str(Path(elf).resolve())  # last: the ELF is always $bin
    return Plan(
        elf=str(Path(elf).resolve()),
        workdir=str(workdir),
        resc=str(resc),
        variables=variables,
        cpu=setup.cpu,
        uart=setup.uart,
        uart_pty=setup.uart_pty or str(workdir / "uart.pty"),
        create_uart_pty=not setup.uart_pty,
        log_uart=setup.log_uart,
        log_pty=str(workdir / "log_uart.pty") if setup.log_uart else "",
        log_file=str(workdir / "firmware.log"),
        renode_log=str(workdir / "renode.log"),
        profiler_dump=str(workdir / "profiler.dump") if setup.profiler else "",
        opcode_counting=setup.opcode_counting,
        monitor_commands=list(setup.monitor_commands),
        post_start_commands=list(setup.post_start_commands),
    )


def setup_commands(plan: Plan) -> list[str]:
    """The monitor commands run before the machine starts, in order (Kenning's sequence, KENNING_FACTS §3.4).

    The profiler is not here: the worker enables it when the evaluation loop starts (see
    ``RenodeSession.mark_loop_start``), so the dump covers the loop and not the model upload.
    """
    commands = [f"logFile @{plan.renode_log}"]
    commands += [f"${name}=@{path}" for name, path in plan.variables.items()]
    commands.append(f"include @{plan.resc}")
    commands.append("mach set 0")
    if plan.opcode_counting:
        commands.append(f"{plan.cpu} EnableRiscvOpcodesCounting")
    if plan.create_uart_pty:
        commands.append(f'emulation CreateUartPtyTerminal "{PROTOCOL_TERMINAL}" "{plan.uart_pty}" true')
        commands.append(f"connector Connect {plan.uart} {PROTOCOL_TERMINAL}")
    if plan.log_uart:
        commands.append(f'emulation CreateUartPtyTerminal "{LOG_TERMINAL}" "{plan.log_pty}" true')
        commands.append(f"connector Connect {plan.log_uart} {LOG_TERMINAL}")
    commands += plan.monitor_commands
    return commands


# --- the parent side of the worker ------------------------------------------------------------------


class _Worker:
    """The worker process and its line-based JSON channel; every call has a timeout."""

    def __init__(self, plan_path: Path, stderr_path: Path, env: dict[str, str]):
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:
            self.process = spawn(
                [sys.executable, "-m", "wand_assets.device.renode_worker", str(plan_path)],
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
            self.process.stdin.close()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        kill_process_group(self.process)


class _MarkingPort:
    """A pyserial port that tells the session when the evaluation loop starts and brackets each PROCESS.

    The protocol client writes each frame with one ``write`` call, so the frame type is at bytes 4..6.
    The PROCESS reply is an empty OK: 6 bytes.
    """

    _OWN = ("_port", "_session", "_await")

    def __init__(self, port, session: "RenodeSession"):
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_await", 0)

    def write(self, data: bytes):
        if len(data) >= 6:
            frame_type = int.from_bytes(data[4:6], "little")
            if frame_type == 2 and not self._session.loop_started:  # DATA
                self._session.mark_loop_start()
            elif frame_type == 4:  # PROCESS
                self._session.mark("process_start")
                object.__setattr__(self, "_await", 6)
        return self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        if self._await and data:
            left = self._await - len(data)
            object.__setattr__(self, "_await", max(left, 0))
            if left <= 0:
                self._session.mark("process_end")
        return data

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._port, name, value)


@dataclass
class RenodeSession:
    """A running Renode with a connected UART. Use :func:`start_renode`; teardown is guaranteed there.

    After the ``with`` block ``statistics`` holds the Renode-only measurements (see
    :func:`wand_assets.device.renode_stats.renode_statistics`).
    """

    worker: _Worker
    plan: Plan
    version: str
    port: object = None
    log_offset: int = 0
    loop_started: bool = False
    marks: list[dict] = field(default_factory=list)
    process_opcodes: dict[str, int] = field(default_factory=dict)  # summed over the PROCESS requests
    _process_start_opcodes: dict | None = None
    loop_start: dict | None = None
    finish: dict | None = None
    statistics: dict | None = None
    wall_seconds: float = 0.0

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
        with contextlib.suppress(FileNotFoundError):
            return Path(self.plan.log_file).read_text(errors="replace")
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
    setup: RenodeSetup = RenodeSetup(),
    boot_timeout_s: float = 30.0,
    worker_start_timeout_s: float = 120.0,
    log: Callable[[str], None] = lambda _m: None,
) -> Iterator[RenodeSession]:
    """Start Renode in a worker, connect the UART pty, wait for the init message; always stop the worker."""
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
    worker = _Worker(plan_path, workdir / "renode_worker.stderr", env)
    session = RenodeSession(worker, plan, version)
    uart = None
    try:
        ready = worker.receive(worker_start_timeout_s, "starting Renode")
        log(f"Renode started in {time.monotonic() - started:.1f} s (worker pid {worker.process.pid})")
        uart = serial.Serial(ready["uart_pty"], 115200, timeout=0.5)
        session.port = _MarkingPort(uart, session)
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
        from wand_assets.device import renode_stats

        session.statistics = renode_stats.renode_statistics(session)
