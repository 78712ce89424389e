"""The device stage's resources: how firmware is built and which simulated board runs it."""

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg

from wand_assets.core import artifacts
from wand_assets.core.targets import Board, Target
from wand_assets.device import firmware_build, renode, simulators
from wand_assets.device.session import check_protocol


class FirmwareToolchain(dg.ConfigurableResource):
    """How firmware is built. ``iree_source_dir`` empty means ``$IREE_SOURCE_DIR`` (the IREE source of the
    installed compiler's release, ``firmware_build.IREE_SOURCE_VERSION``)."""

    iree_source_dir: str = ""
    build_root: str = ""  # where the CMake build trees live; empty: <artifact root>/build
    build_timeout_s: float = 1800.0

    def iree_source(self) -> Path:
        return firmware_build.resolve_iree_source(self.iree_source_dir or None)

    def build_dir(self, artifact_root: Path, target: str, fingerprint: str) -> Path:
        """One build tree per target and fingerprint, so two runs never share one."""
        root = Path(self.build_root) if self.build_root else artifact_root / "build"
        return root / "firmware" / target / fingerprint


class SimulatorResource(dg.ConfigurableResource):
    """The simulated board. ``backend``: "qemu" (default, Debian's qemu-system-riscv32) or "renode".

    Renode (through pyrenode3; needs ``PYRENODE_PKG``, or ``PYRENODE_BUILD_DIR`` + ``PYRENODE_RUNTIME``)
    runs the wand board from ``renode/`` by default. The ``renode_*`` fields describe another setup,
    e.g. Kenning's Springbok files: a ``.resc``, its dependency files (each exposed as
    ``$<file name lower-cased, dots as underscores>``, the ELF as ``$bin``), monitor commands before
    and after start, the UART (or the pty the script creates), the log UART and the init message.

    ``protocol``: what the host speaks on the UART, "legacy" (Kenning <= v0.8.0, the seed's; default) or
    "kenning" (KenningProtocol, Kenning v0.8.1+). The firmware serves both.
    A target whose board is described by the user's own Renode files (Springbok: ``Board.renode_platform``)
    runs on those files, from ``renode_platform_dir`` (a folder holding them, e.g. taken from a Kenning
    checkout), else from ``$WAND_<BOARD>_DIR`` (``$WAND_SPRINGBOK_DIR``); the ``renode_*`` fields above
    do not apply to it. QEMU cannot run such a target: the session says so.
    """

    backend: str = "qemu"
    protocol: str = "legacy"
    boot_timeout_s: float = 30.0
    request_timeout_s: float = 30.0
    process_timeout_s: float = 120.0
    renode_resc: str = ""
    renode_dependencies: list[str] = []  # noqa: RUF012 - pydantic copies field defaults
    renode_cpu: str = "sysbus.cpu"
    renode_uart: str = "sysbus.uart0"
    renode_uart_pty: str = ""
    renode_log_uart: str = "sysbus.log_uart"
    renode_init_message: str = "Runtime started"
    renode_monitor_commands: list[str] = []  # noqa: RUF012 - pydantic copies field defaults
    renode_post_start_commands: list[str] = []  # noqa: RUF012 - pydantic copies field defaults
    renode_profiler: bool = True
    renode_platform_dir: str = ""

    def platform_files(self, board: Board) -> list[Path]:
        """The user's Renode files of ``board`` (its script first); raises when they cannot be found."""
        platform = board.renode_platform
        assert platform is not None, board.name
        variable = f"WAND_{board.name.upper()}_DIR"
        folder = self.renode_platform_dir or os.environ.get(variable, "")
        if not folder:
            raise renode.SimulatorError(
                f"the {board.name} board runs on your own Renode files ({platform.resc}, {', '.join(platform.dependencies)}, "
                f"e.g. from a Kenning checkout): set {variable} or the simulator resource's renode_platform_dir to their folder"
            )
        files = [Path(folder) / name for name in (platform.resc, *platform.dependencies)]
        if missing := [str(p) for p in files if not p.is_file()]:
            raise renode.SimulatorError(f"the {board.name} board's Renode files are missing: {', '.join(missing)}")
        return files

    def setup_for(self, target: Target) -> renode.RenodeSetup:
        """How Renode builds ``target``'s board: the user's platform files, or the configured setup."""
        board = target.device_board
        if (platform := board.renode_platform) is None:
            return self.renode_setup()
        resc, *dependencies = self.platform_files(board)
        return renode.RenodeSetup(
            resc=str(resc),
            dependencies=tuple(str(p) for p in dependencies),
            uart_pty=platform.uart_pty,
            log_uart="",  # the log comes from simprint, in Renode's log
            init_message=self.renode_init_message,
            post_start_commands=platform.post_start_commands,
            profiler=self.renode_profiler,
            script_enables_opcode_counting=platform.script_enables_opcode_counting,
        )

    def renode_setup(self) -> renode.RenodeSetup:
        return renode.RenodeSetup(
            resc=self.renode_resc,
            dependencies=tuple(self.renode_dependencies),
            cpu=self.renode_cpu,
            uart=self.renode_uart,
            uart_pty=self.renode_uart_pty,
            log_uart=self.renode_log_uart,
            init_message=self.renode_init_message,
            monitor_commands=tuple(self.renode_monitor_commands),
            post_start_commands=tuple(self.renode_post_start_commands),
            profiler=self.renode_profiler,
        )

    def identity(self, target: Target | None = None) -> dict:
        """What about the simulator changes results (part of the evaluation's fingerprint)."""
        check_protocol(self.protocol)
        identity: dict[str, Any] = {"backend": self.backend, "version": simulators.simulator_version(self.backend)}
        if self.protocol != "legacy":  # so that evaluations over the legacy protocol keep their fingerprints
            identity["protocol"] = self.protocol
        if self.backend == "renode":
            own = target is not None and target.device_board.renode_platform is not None
            setup = asdict(self.setup_for(target) if target is not None else self.renode_setup())
            if own:
                files = [setup["resc"], *setup["dependencies"]]
            else:
                files = [self.renode_resc] if self.renode_resc else [renode.BOARD_SCRIPT, renode.BOARD_TEMPLATE]
                files += self.renode_dependencies
            setup["files_sha256"] = {Path(p).name: artifacts.sha256_file(Path(p)) for p in files}
            identity["renode"] = setup
        return identity

    def session(self, elf: Path, target: Target, workdir: Path, log):
        if self.backend != "renode":
            try:
                target.require_qemu()
            except ValueError as exc:
                raise renode.SimulatorError(str(exc)) from None
        return simulators.open_session(
            self.backend,
            elf,
            target,
            workdir,
            boot_timeout_s=self.boot_timeout_s,
            log=log,
            renode_setup=self.setup_for(target) if self.backend == "renode" else None,
            protocol=self.protocol,
        )
