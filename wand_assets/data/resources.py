"""The dataset stage's resource: where the raw recordings come from."""

import dagster as dg

from wand_assets.data import dataset


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
