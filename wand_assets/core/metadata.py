"""Small helpers shared by the asset modules: the device partitions, entry outputs, file metadata, tables."""

import warnings
from pathlib import Path

import dagster as dg

from wand_assets.core.artifacts import sha256_file
from wand_assets.core.handoff import ENTRY
from wand_assets.core.targets import DEVICE_TARGETS

# One partition set for everything per device variant: compiled model, firmware, device evaluation.
device_partitions = dg.StaticPartitionsDefinition(DEVICE_TARGETS)


def entry_output(entry: Path, metadata: dict, data_version: str) -> dg.Output:
    """What every asset returns: its immutable artifact entry (handed to the stages below it), the entry's
    path in the metadata, and a data version from the content it stands for."""
    with warnings.catch_warnings():  # Output's data_version is "beta" in 1.13; it is how an output names its version
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(
            entry, metadata={ENTRY: dg.MetadataValue.path(str(entry)), **metadata}, data_version=dg.DataVersion(data_version)
        )


def file_metadata(path: Path, sha256: str | None = None) -> dict:
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": sha256 or sha256_file(path),
        "size_bytes": path.stat().st_size,
    }


def table(rows: list[dict]) -> dg.MetadataValue:
    """A metadata table from uniform dict rows (column types inferred from the first row)."""
    if not rows:
        return dg.MetadataValue.md("_(empty)_")
    kinds = {bool: "bool", int: "int", float: "float"}
    columns = [dg.TableColumn(k, kinds.get(type(v), "string")) for k, v in rows[0].items()]
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows], schema=dg.TableSchema(columns=columns))
