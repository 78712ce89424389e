"""Typed resources: where artifacts live, where the dataset comes from, and the quality gates."""


from pathlib import Path

import dagster as dg

from wand_assets import artifacts, dataset


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
