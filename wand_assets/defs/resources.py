"""Typed resources: where artifacts live, where the dataset comes from, and the quality gates."""


from pathlib import Path

import dagster as dg

from wand_assets import artifacts, dataset, firmware_build, simulators


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
    """The simulated board. ``backend``: "qemu" (default, Debian's qemu-system-riscv32)."""

    backend: str = "qemu"
    boot_timeout_s: float = 30.0
    request_timeout_s: float = 30.0
    process_timeout_s: float = 120.0

    def identity(self) -> dict:
        """What about the simulator changes results (part of the evaluation's fingerprint)."""
        return {"backend": self.backend, "version": simulators.simulator_version(self.backend)}

    def session(self, elf: Path, target, workdir: Path, log):
        return simulators.open_session(self.backend, elf, target, workdir, boot_timeout_s=self.boot_timeout_s, log=log)
