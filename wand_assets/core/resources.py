"""Typed resources every stage shares: where artifacts live and the quality gates."""

from pathlib import Path

import dagster as dg

from wand_assets.core import artifacts


class ArtifactStoreResource(dg.ConfigurableResource):
    """Root folder for every file the pipeline writes. Empty: $WAND_ARTIFACT_ROOT, $DAGSTER_HOME/wand-artifacts or ./.wand."""

    root: str = ""

    def store(self) -> artifacts.ArtifactStore:
        return artifacts.ArtifactStore(Path(self.root) if self.root else artifacts.default_artifact_root())


class QualityGates(dg.ConfigurableResource):
    """Thresholds the blocking checks enforce."""

    min_test_accuracy: float = 0.85
    parity_atol: float = 1e-5
    # Regression warnings: a device evaluation against the previous one of the same target.
    max_accuracy_drop: float = 0.02
    max_instruction_growth: float = 0.05
