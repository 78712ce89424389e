"""Dataset stage: the verified raw recordings and the windowed person split."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from wand_assets.core import plots
from wand_assets.core.artifacts import fingerprint, sha256_file, write_json_atomic
from wand_assets.core.metadata import entry_output, file_metadata, table
from wand_assets.core.resources import ArtifactStoreResource
from wand_assets.data import dataset, recordings, windows
from wand_assets.data.resources import DatasetSource

ARCHIVE_CODE_VERSION = "2"  # 2: entries keyed by the dataset's content
WINDOWS_CODE_VERSION = "1"


def dataset_hash(files: dict[str, str]) -> str:
    """The dataset's identity: SHA-256 over its files' relative paths and SHA-256s, wherever it was read from."""
    return hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in sorted(files.items())).encode()).hexdigest()


@dg.asset(
    kinds={"python", "dataset"},
    group_name="dataset",
    code_version=ARCHIVE_CODE_VERSION,
)
def magic_wand_archive(
    context: dg.AssetExecutionContext, source: DatasetSource, artifact_store: ArtifactStoreResource
) -> dg.Output[Path]:
    """The raw Magic Wand recordings (TFLM's official archive), verified and copied into the artifact root.

    Source: the `source` resource, `$WAND_DATASET`, or the official URL. Archives must match the
    official SHA-1; folders must hold the official files byte for byte unless verification is off.
    The entry is named after the content, so the same recordings from anywhere are one entry.
    """
    location = source.resolved()
    stage = artifact_store.store().stage("magic_wand_archive")
    # Acquiring is cheap (a 1.4 MB copy or a 0.45 MB download), so it always runs and re-verifies.
    with stage.produce_by_content(lambda folder: json.loads((folder / "manifest.json").read_text())["dataset_sha256"]) as made:
        acquired = dataset.acquire(
            location,
            made.folder / "raw",
            expected_sha1=source.expected_sha1,
            verify_files=source.verify_files,
            download_timeout_s=source.download_timeout_s,
            log=context.log.info,
        )
        recs, _ = recordings.parse_tree(acquired.raw_dir)
        manifest: dict[str, Any] = {
            "files": acquired.files,
            "recordings_per_class": recordings.recordings_per_class(recs),
            "dataset_sha256": dataset_hash(acquired.files),
        }
        write_json_atomic(made.folder / "manifest.json", manifest)
    assert made.entry is not None
    files_per_class = {c: sum(1 for k in acquired.files if k.startswith(c + "/")) for c in dataset.CLASSES}
    rows = [{"class": c, "files": files_per_class[c], "recordings": manifest["recordings_per_class"][c]} for c in dataset.CLASSES]
    context.log.info(f"{len(acquired.files)} files, recordings per class {manifest['recordings_per_class']}")
    return entry_output(
        made.entry,
        {
            "path": dg.MetadataValue.path(str(made.entry / "raw")),
            "dataset_sha256": manifest["dataset_sha256"],
            "source": location,
            "source_kind": acquired.source_kind,
            "archive_sha1": acquired.archive_sha1 or "(folder)",
            "official_data": acquired.is_official,
            "files": len(acquired.files),
            "recordings": sum(manifest["recordings_per_class"].values()),
            "per_class": table(rows),
        },
        manifest["dataset_sha256"],
    )


class WindowsConfig(dg.Config):
    """Windowing and train-only augmentation (TFLM's recipe by default)."""

    seed: int = 30
    augment: bool = True
    shift_copies: int = 5
    noise_copies: int = 5
    time_warp_copies: int = 7  # how many of TFLM's 7 warp ratios to use
    amplitude_copies: int = 7

    def to_windowing(self) -> windows.WindowingConfig:
        return windows.WindowingConfig(
            seed=self.seed,
            augment=self.augment,
            shift_copies=self.shift_copies,
            noise_copies=self.noise_copies,
            time_warp_ratios=windows.TFLM_RATIOS[: self.time_warp_copies],
            amplitude_ratios=windows.TFLM_RATIOS[: self.amplitude_copies],
        )


@dg.asset(
    kinds={"numpy", "dataset"},
    group_name="dataset",
    code_version=WINDOWS_CODE_VERSION,
)
def gesture_windows(
    context: dg.AssetExecutionContext, config: WindowsConfig, artifact_store: ArtifactStoreResource, magic_wand_archive: Path
) -> dg.Output[Path]:
    """128×3 milli-g windows split by person (no person in two splits), train split augmented.

    Stored as `windows.npz` (x, y, split, group, recording, variant). The split table and one
    example window per class are shown below.
    """
    raw_entry = magic_wand_archive
    archive_sha = json.loads((raw_entry / "manifest.json").read_text())["dataset_sha256"]
    windowing = config.to_windowing()
    stage = artifact_store.store().stage("gesture_windows")
    fp = fingerprint(archive_sha, asdict(windowing), WINDOWS_CODE_VERSION)
    if (entry := stage.cached(fp)) is None:
        recs, report = recordings.parse_tree(raw_entry / "raw")
        context.log.info(
            f"parsed {report.files} files: {len(recs)} recordings, {report.data_lines} samples, "
            f"{report.skipped_lines} non-data lines skipped"
        )
        windowset = windows.build_windows(recs, windowing)
        with stage.produce(fp) as out:
            windowset.save(out / "windows.npz")
            write_json_atomic(
                out / "summary.json",
                {
                    "counts": windowset.counts(),
                    "split_problems": windows.check_split(windowset),
                    "parse": {
                        "files": report.files,
                        "recordings": len(recs),
                        "data_lines": report.data_lines,
                        "separators": report.separators,
                        "blank_lines": report.blank_lines,
                        "skipped_lines": report.skipped_lines,
                        "skipped_examples": report.skipped_examples,
                        "skipped_by_file": dict(report.skipped_by_file),
                    },
                    "archive_sha256": archive_sha,
                    "groups": {s: sorted(g for g, sp in windows.SPLIT_OF_GROUP.items() if sp == s) for s in windows.SPLITS},
                },
            )
        entry = stage.entry(fp)
    else:
        context.log.info(f"windows for these inputs already exist ({fp}); nothing to do")
    summary = json.loads((entry / "summary.json").read_text())
    windowset = windows.WindowSet.load(entry / "windows.npz")
    rows = [{"split": s, **summary["counts"][s], "total": sum(summary["counts"][s].values())} for s in windows.SPLITS]
    test = windowset.select("test")
    examples = {cls: test.x[np.flatnonzero(test.y == i)[0]] for i, cls in enumerate(dataset.CLASSES) if (test.y == i).any()}
    groups_md = "\n".join(f"- **{s}**: {', '.join(g)}" for s, g in summary["groups"].items())
    npz = entry / "windows.npz"
    sha = sha256_file(npz)
    return entry_output(
        entry,
        {
            **file_metadata(npz, sha),
            "dataset_sha256": archive_sha,
            "windows": len(windowset),
            "windows_per_split": table(rows),
            "skipped_lines": summary["parse"]["skipped_lines"],
            "recordings": summary["parse"]["recordings"],
            "split_assignment": dg.MetadataValue.md(groups_md),
            "examples": dg.MetadataValue.md(
                "One test window per class (pre-padded):\n\n"
                + plots.markdown_image(plots.window_examples_png(examples), "example windows")
            ),
        },
        sha,
    )


@dg.asset_check(asset=gesture_windows, description="Every class in every split; no person in two splits.")
def split_is_sound(gesture_windows: Path) -> dg.AssetCheckResult:
    problems = windows.check_split(windows.WindowSet.load(gesture_windows / "windows.npz"))
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": "\n".join(problems) or "none"})
