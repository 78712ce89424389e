"""Small helpers shared by the asset modules: file metadata, tables and the target partitions."""


from pathlib import Path

import dagster as dg

from wand_assets.core.artifacts import sha256_file
from wand_assets.core.targets import TARGETS

target_partitions = dg.StaticPartitionsDefinition(list(TARGETS))


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
    return dg.MetadataValue.table(
        records=[dg.TableRecord(r) for r in rows], schema=dg.TableSchema(columns=columns)
    )
