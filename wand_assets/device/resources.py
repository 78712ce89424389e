"""The device stage's resources: how firmware is built and which simulated board runs it."""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg

from wand_assets.core import artifacts
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

    def identity(self) -> dict:
        """What about the simulator changes results (part of the evaluation's fingerprint)."""
        check_protocol(self.protocol)
        identity: dict[str, Any] = {"backend": self.backend, "version": simulators.simulator_version(self.backend)}
        if self.protocol != "legacy":  # so that evaluations over the legacy protocol keep their fingerprints
            identity["protocol"] = self.protocol
        if self.backend == "renode":
            setup = asdict(self.renode_setup())
            board = [self.renode_resc] if self.renode_resc else [renode.BOARD_SCRIPT, renode.BOARD_TEMPLATE]
            setup["files_sha256"] = {Path(p).name: artifacts.sha256_file(Path(p)) for p in [*board, *self.renode_dependencies]}
            identity["renode"] = setup
        return identity

    def session(self, elf: Path, target, workdir: Path, log):
        return simulators.open_session(
            self.backend,
            elf,
            target,
            workdir,
            boot_timeout_s=self.boot_timeout_s,
            log=log,
            renode_setup=self.renode_setup() if self.backend == "renode" else None,
            protocol=self.protocol,
        )
