"""Report stage: Markdown + self-contained HTML over every target, and the same content in the UI."""

from pathlib import Path

import dagster as dg

from wand_assets.core.artifacts import fingerprint, sha256_file, write_bytes_atomic
from wand_assets.core.metadata import entry_output, file_metadata, table
from wand_assets.core.resources import ArtifactStoreResource
from wand_assets.report.build import ReportInputs, build_report

REPORT_CODE_VERSION = "2"  # 2: device results marked current / stale / missing

# Eager, except that it does not wait for upstreams that were never materialized: without device
# evaluations (no IREE source, or a new target) the report is the host-only one, refreshed all the same.
_REPORT_AUTOMATION = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


@dg.asset(
    kinds={"html", "markdown"},
    automation_condition=_REPORT_AUTOMATION,
    group_name="report",
    code_version=REPORT_CODE_VERSION,
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStoreResource,
    magic_wand_archive: Path,
    gesture_windows: Path,
    trained_model: Path,
    host_model: Path,
    host_evaluation: Path,
    compiled_model: dict[str, Path],
    firmware: dict[str, Path],
    device_evaluation: dict[str, Path],
) -> dg.Output[Path]:
    """Performance, classification (host vs device), device statistics and lineage for every target.

    Each device target's results are marked current (they measured the current compiled model and
    firmware), stale (older ones: left out of the numbers) or missing. Written as `report.md` and a
    self-contained `report.html` (plots embedded); the Markdown is shown here.
    """
    inputs = ReportInputs(
        archive=magic_wand_archive,
        windows=gesture_windows,
        model=trained_model,
        host_model=host_model,
        host=host_evaluation,
        compiled=compiled_model,
        firmware=firmware,
        devices=device_evaluation,
    )
    report, summary = build_report(inputs)
    markdown = report.markdown()
    stage = artifact_store.store().stage("evaluation_report")
    fp = fingerprint(markdown, REPORT_CODE_VERSION)
    if stage.cached(fp) is None:
        with stage.produce(fp) as out:
            write_bytes_atomic(out / "report.md", markdown.encode())
            write_bytes_atomic(out / "report.html", report.html().encode())
    entry = stage.entry(fp)
    html_path = entry / "report.html"
    status = summary["device_results"]
    context.log.info(f"report at {html_path}; device results: " + ", ".join(f"{r['target']} {r['status']}" for r in status))
    sha = sha256_file(html_path)
    return entry_output(
        entry,
        {
            **file_metadata(html_path, sha),
            "markdown_path": dg.MetadataValue.path(str(entry / "report.md")),
            "device_results": table(status),
            "current_device_targets": sum(r["status"] == "current" for r in status),
            "host_accuracy": summary["host_accuracy"],
            **({"vector_speedup": round(summary["vector_speedup"], 3)} if "vector_speedup" in summary else {}),
            "report": dg.MetadataValue.md(markdown),
        },
        sha,
    )
