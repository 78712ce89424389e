"""Typed resources: where artifacts live, where the dataset comes from, and the quality gates."""


from dataclasses import asdict
from pathlib import Path

import dagster as dg

from wand_assets import artifacts, dataset, firmware_build, renode, simulators


class ArtifactStoreResource(dg.ConfigurableResource):
    """Root folder for every file the pipeline writes. Empty: $WAND_ARTIFACT_ROOT, $DAGSTER_HOME/wand-artifacts or ./.wand."""

    root: str = ""

    def store(self) -> artifacts.ArtifactStore:
        return artifacts.ArtifactStore(Path(self.root) if self.root else artifacts.default_artifact_root())


class DatasetSource(dg.ConfigurableResource):
    """Where the raw Magic Wand recordings come from.

    ``location``: a folder of raw files (``<class>/*.txt``), a local ``data.tar.gz``, or an http(s) URL.
    Empty means ``$WAND_DATASET``, else the official TensorFlow download.
    """

    location: str = ""
    expected_sha1: str = dataset.OFFICIAL_SHA1
    verify_files: bool = True
    download_timeout_s: float = 60.0

    def resolved(self) -> str:
        return dataset.resolve_source(self.location or None)


class QualityGates(dg.ConfigurableResource):
    """Thresholds the blocking checks enforce."""

    min_test_accuracy: float = 0.85
    parity_atol: float = 1e-5
    # Regression warnings: a device evaluation against the previous one of the same target.
    max_accuracy_drop: float = 0.02
    max_instruction_growth: float = 0.05


class FirmwareToolchain(dg.ConfigurableResource):
    """How firmware is built. ``iree_source_dir`` empty means ``$IREE_SOURCE_DIR`` (IREE v3.11.0 source)."""

    iree_source_dir: str = ""
    build_root: str = ""  # CMake build trees; empty: <artifact root>/../wand-build or ./.wand-build
    build_timeout_s: float = 1800.0

    def iree_source(self) -> Path:
        return firmware_build.resolve_iree_source(self.iree_source_dir or None)

    def build_dir(self, target: str) -> Path:
        root = Path(self.build_root) if self.build_root else artifacts.default_artifact_root().parent / "wand-build"
        return root / target


class SimulatorResource(dg.ConfigurableResource):
    """The simulated board. ``backend``: "qemu" (default, Debian's qemu-system-riscv32) or "renode".

    Renode (through pyrenode3; needs ``PYRENODE_PKG``, or ``PYRENODE_BUILD_DIR`` + ``PYRENODE_RUNTIME``)
    runs the wand board from ``renode/`` by default. The ``renode_*`` fields describe another setup,
    e.g. Kenning's Springbok files: a ``.resc``, its dependency files (each exposed as
    ``$<file name lower-cased, dots as underscores>``, the ELF as ``$bin``), monitor commands before
    and after start, the UART (or the pty the script creates), the log UART and the init message.
    """

    backend: str = "qemu"
    boot_timeout_s: float = 30.0
    request_timeout_s: float = 30.0
    process_timeout_s: float = 120.0
    renode_resc: str = ""
    renode_dependencies: list[str] = []
    renode_cpu: str = "sysbus.cpu"
    renode_uart: str = "sysbus.uart0"
    renode_uart_pty: str = ""
    renode_log_uart: str = "sysbus.log_uart"
    renode_init_message: str = "Runtime started"
    renode_monitor_commands: list[str] = []
    renode_post_start_commands: list[str] = []
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
        identity = {"backend": self.backend, "version": simulators.simulator_version(self.backend)}
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
        )
