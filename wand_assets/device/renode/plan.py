"""What the Renode worker is to do: a :class:`RenodeSetup` resolved into a :class:`Plan` (JSON, absolute
paths) and the monitor commands that build the machine (:func:`setup_commands`).

Two ways to describe the board:

- the wand board (default): ``renode/wand.resc`` with the platform rendered for the target
  (:mod:`wand_assets.device.renode.board`), the protocol UART and the log UART on ptys created here;
- the seed's own setup: any ``.resc`` plus dependency files (each exposed as a monitor variable
  named after the file, Kenning's convention: :func:`monitor_variable_name`), extra monitor commands,
  post-start commands, an init message and, if the script makes its own pty, that pty's path (the
  session then runs a copy of the script with a pty of its own: :func:`private_copy_of_script`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from wand_assets.core.targets import Target
from wand_assets.device.qemu import READY_LINE, SimulatorError
from wand_assets.device.renode.board import BOARD_FILE_NAME, BOARD_SCRIPT, render_board

PROTOCOL_TERMINAL = "wand_uart"
LOG_TERMINAL = "wand_log"


def monitor_variable_name(path: str | os.PathLike) -> str:
    """Kenning's convention: ``SpringbokRiscV32.cs`` -> ``springbokriscv32_cs`` (used as ``$springbokriscv32_cs``)."""
    return Path(path).name.lower().replace(".", "_").replace("-", "_")


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
    script_enables_opcode_counting: bool = False  # the script runs EnableRiscvOpcodesCounting itself (Springbok's)


def private_copy_of_script(resc: Path, fixed_pty: str, own_pty: Path, workdir: Path) -> Path:
    """A copy of ``resc`` in ``workdir`` whose pty is ``own_pty`` instead of the fixed ``fixed_pty``.

    Kenning's Springbok script creates its pty at ``/tmp/uart``, so two sessions at once would take
    each other's UART. The user's file stays as it is; the session runs this copy (the same commands
    but for the pty path, which the script names only in quotes) from the session's own folder.
    """
    text = resc.read_text()
    quoted = f'"{fixed_pty}"'
    if quoted not in text:
        raise SimulatorError(f"{resc} does not create the pty {quoted} that the setup names (uart_pty)")
    copy = workdir / resc.name
    if copy.resolve() == resc.resolve():
        raise SimulatorError(f"the session folder {workdir} holds the script {resc} itself; use another folder")
    copy.write_text(text.replace(quoted, f'"{own_pty}"'))
    return copy


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
    opcode_counting: bool  # read the opcode counters
    enable_opcode_counting: bool  # and enable them (False when the script already does)
    monitor_commands: list[str]
    post_start_commands: list[str]

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Plan:
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
    uart_pty = str(workdir / "uart.pty")
    if setup.uart_pty:
        resc = private_copy_of_script(resc, setup.uart_pty, Path(uart_pty), workdir)
    variables["bin"] = str(Path(elf).resolve())  # last: the ELF is always $bin
    return Plan(
        elf=str(Path(elf).resolve()),
        workdir=str(workdir),
        resc=str(resc),
        variables=variables,
        cpu=setup.cpu,
        uart=setup.uart,
        uart_pty=uart_pty,
        create_uart_pty=not setup.uart_pty,
        log_uart=setup.log_uart,
        log_pty=str(workdir / "log_uart.pty") if setup.log_uart else "",
        log_file=str(workdir / "firmware.log"),
        renode_log=str(workdir / "renode.log"),
        profiler_dump=str(workdir / "profiler.dump") if setup.profiler else "",
        opcode_counting=setup.opcode_counting,
        enable_opcode_counting=setup.opcode_counting and not setup.script_enables_opcode_counting,
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
    if plan.enable_opcode_counting:
        commands.append(f"{plan.cpu} EnableRiscvOpcodesCounting")
    if plan.create_uart_pty:
        commands.append(f'emulation CreateUartPtyTerminal "{PROTOCOL_TERMINAL}" "{plan.uart_pty}" true')
        commands.append(f"connector Connect {plan.uart} {PROTOCOL_TERMINAL}")
    if plan.log_uart:
        commands.append(f'emulation CreateUartPtyTerminal "{LOG_TERMINAL}" "{plan.log_pty}" true')
        commands.append(f"connector Connect {plan.log_uart} {LOG_TERMINAL}")
    commands += plan.monitor_commands
    return commands
