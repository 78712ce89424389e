"""Booting a firmware ELF in QEMU's RISC-V ``virt`` machine with its UART on a loopback TCP port.

``-icount shift=0`` makes the guest's ``minstret``/``mcycle`` count retired instructions exactly,
so the device's own counters are the numbers we report. ``sleep=off``: QEMU derives ``minstret``
from its virtual clock, which with the default ``sleep=on`` runs on in real time while the guest
sleeps in ``wfi`` (waiting for the host would count as instructions again); with ``sleep=off`` the
clock stands still while the guest waits for a byte (the firmware arms no timer for that wait).
The firmware's log (readiness line, errors,
trap reports) leaves through semihosting into a file, never on the protocol UART.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wand_assets.core.procs import kill_process_group, run_tool, spawn
from wand_assets.core.targets import Target
from wand_assets.device.protocol import Port

READY_LINE = "Runtime started"
_WAITING = re.compile(r"waiting for connection on: \S*tcp:127\.0\.0\.1:(\d+)")
QEMU_BINARY = "qemu-system-riscv32"
UART_LSR_OFFSET = 5  # NS16550A, one byte per register: line status


class SimulatorError(RuntimeError):
    """The simulator could not start, the firmware never became ready, or it died."""


def qemu_version(binary: str = QEMU_BINARY) -> str:
    path = shutil.which(binary)
    if not path:
        raise SimulatorError(f"{binary} not found; install Debian's qemu-system-misc (scripts/setup.sh does)")
    return run_tool([path, "--version"], what=f"{binary} --version", timeout_s=30).output.splitlines()[0].strip()


def qemu_command(
    elf: Path,
    target: Target,
    port: int,
    log_path: Path,
    binary: str = QEMU_BINARY,
    *,
    paused: bool = False,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """``paused``: the guest waits for ``cont`` on the monitor, which then reads stdin. ``extra_args``
    go last (e.g. the execution trace of :mod:`wand_assets.device.profile`)."""
    cpu = target.qemu_cpu()  # first: the host reference target has neither CPU nor board
    command = [
        binary,
        "-M",
        target.device_board.qemu_machine,
        "-bios",
        "none",
        "-display",
        "none",
        "-monitor",
        "stdio" if paused else "none",
        "-icount",
        "shift=0,sleep=off",
        "-cpu",
        cpu,
        "-kernel",
        str(elf),
        # wait=on: the guest starts only once the host is connected, so no byte is lost.
        "-serial",
        f"tcp:127.0.0.1:{port},server=on,wait=on",
        "-chardev",
        f"file,id=wandlog,path={log_path}",
        "-semihosting-config",
        "enable=on,target=native,chardev=wandlog",
    ]
    return [*command, *extra_args, "-S"] if paused else [*command, *extra_args]


@dataclass
class QemuSession:
    """A running QEMU with a connected UART. Use :func:`start_qemu`; teardown is guaranteed there."""

    process: subprocess.Popen
    port: Port  # a connected pyserial port
    log_path: Path
    command: list[str]
    uart_address: str = ""
    log_offset: int = field(default=0)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def new_log_lines(self) -> list[str]:
        text = self.log_text()
        fresh, self.log_offset = text[self.log_offset :], len(text)
        return [line for line in fresh.splitlines() if line.strip()]

    def exit_status(self) -> int | None:
        return self.process.poll()

    def describe(self) -> dict:
        return {"name": "qemu", "version": qemu_version(self.command[0]), "command": self.command, "uart": self.uart_address}


@contextlib.contextmanager
def start_qemu(
    elf: Path,
    target: Target,
    workdir: Path,
    *,
    boot_timeout_s: float = 30.0,
    binary: str = QEMU_BINARY,
    log: Callable[[str], None] = lambda _m: None,
    early_input: bytes = b"",
    extra_args: Sequence[str] = (),
) -> Iterator[QemuSession]:
    """Start QEMU, connect its UART, wait for the firmware's ready line; always kill QEMU on exit.

    QEMU also dies when this process dies, even by SIGKILL (:func:`wand_assets.core.procs.spawn`).

    ``early_input`` (a host that does not wait for the ready line, at its most extreme): QEMU starts
    paused, the bytes are written as soon as the UART is connected, and the guest runs its first
    instruction only once the UART holds the first of them.
    """
    import serial

    if shutil.which(binary) is None:
        raise SimulatorError(f"{binary} not found; install Debian's qemu-system-misc (scripts/setup.sh does)")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "firmware.log"
    log_path.unlink(missing_ok=True)
    stderr_path = workdir / "qemu.stderr"
    # Port 0: QEMU binds a free loopback port itself and names it, so concurrent sessions never race.
    command = qemu_command(elf, target, 0, log_path, binary, paused=bool(early_input), extra_args=extra_args)
    log("starting " + " ".join(command))
    process = None
    uart = None
    try:
        with open(stderr_path, "wb") as stderr:
            process = spawn(
                command,
                stdin=subprocess.PIPE if early_input else subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + boot_timeout_s
        port_number = _listening_port(process, stderr_path, deadline)
        uart = serial.serial_for_url(f"socket://127.0.0.1:{port_number}", timeout=0.5)
        log(f"UART connected on 127.0.0.1:{port_number}")
        if early_input:
            uart.write(early_input)
            _resume_once_received(process, stderr_path, deadline, target.device_board.uart0_base + UART_LSR_OFFSET)
        session = QemuSession(process, uart, log_path, command, uart_address=f"127.0.0.1:{port_number}")
        while READY_LINE not in session.log_text():
            if process.poll() is not None:
                raise SimulatorError(
                    f"firmware stopped before it was ready (QEMU exit status {process.returncode}); "
                    f"firmware log:\n{session.log_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise SimulatorError(
                    f"firmware did not log '{READY_LINE}' within {boot_timeout_s:.0f} s; log:\n{session.log_text()[-2000:]}"
                )
            time.sleep(0.02)
        for line in session.new_log_lines():
            log(f"firmware: {line}")
        yield session
    finally:
        if uart is not None:
            with contextlib.suppress(Exception):
                uart.close()
        if process is not None:
            kill_process_group(process)
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()


def _listening_port(process: subprocess.Popen, stderr_path: Path, deadline: float) -> int:
    """The port QEMU bound for the UART, from its "waiting for connection" notice."""
    while True:
        text = stderr_path.read_text(errors="replace")
        if match := _WAITING.search(text):
            return int(match.group(1))
        if process.poll() is not None:
            raise SimulatorError(f"QEMU exited with status {process.returncode}: {text[-2000:]}")
        if time.monotonic() > deadline:
            raise SimulatorError(f"QEMU did not open its UART socket in time: {text[-2000:]}")
        time.sleep(0.02)


def _resume_once_received(process: subprocess.Popen, stderr_path: Path, deadline: float, lsr_address: int) -> None:
    """Let the paused guest run once its UART reports Data Ready (an LSR read only clears error bits)."""
    lsr_dump = re.compile(rf"{lsr_address:016x}: 0x([0-9a-f]{{2}})")  # the monitor's answer to "xp /1bx"
    monitor = process.stdin
    assert monitor is not None  # a paused guest is started with stdin=PIPE: the monitor
    asked = 0
    while True:
        if process.poll() is not None:
            raise SimulatorError(f"QEMU exited with status {process.returncode} before the guest started")
        if time.monotonic() > deadline:
            raise SimulatorError("the UART did not receive the early input in time")
        answers = lsr_dump.findall(stderr_path.read_text(errors="replace"))
        if len(answers) == asked:  # the monitor has answered every question so far
            if answers and int(answers[-1], 16) & 0x01:
                break
            monitor.write(f"xp /1bx {lsr_address:#x}\n".encode())
            monitor.flush()
            asked += 1
        time.sleep(0.02)
    monitor.write(b"cont\n")
    monitor.flush()
