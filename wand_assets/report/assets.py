"""Report stage: Markdown + self-contained HTML over every target, and the same content in the UI."""

import dagster as dg

from wand_assets.compilation.assets import host_evaluation
from wand_assets.core.artifacts import fingerprint, sha256_file, write_bytes_atomic
from wand_assets.core.metadata import file_metadata
from wand_assets.core.resources import ArtifactStoreResource
from wand_assets.device.assets import device_evaluation
from wand_assets.report.build import build_report

REPORT_CODE_VERSION = "1"


@dg.asset(
    deps=[host_evaluation, device_evaluation],
    kinds={"html", "markdown"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="report",
    code_version=REPORT_CODE_VERSION,
)
def evaluation_report(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.MaterializeResult:
    """Performance, classification (host vs device), device statistics and lineage for every target.

    Written as `report.md` and a self-contained `report.html` (plots embedded); the Markdown is shown here.
    """
    store = artifact_store.store()
    report, summary = build_report(store)
    markdown = report.markdown()
    stage = store.stage("evaluation_report")
    fp = fingerprint(markdown, REPORT_CODE_VERSION)
    if stage.cached(fp) is None:
        with stage.produce(fp) as out:
            write_bytes_atomic(out / "report.md", markdown.encode())
            write_bytes_atomic(out / "report.html", report.html().encode())
    else:
        stage.set_current(fp)
    entry = stage.entry(fp)
    html_path = entry / "report.html"
    targets = summary["targets"]
    context.log.info(f"report for {len(targets)} device targets at {html_path}")
    return dg.MaterializeResult(
        metadata={
            **file_metadata(html_path),
            "markdown_path": dg.MetadataValue.path(str(entry / "report.md")),
            "device_targets": len(targets),
            "host_accuracy": summary["host_accuracy"],
            **({"vector_speedup": round(summary["vector_speedup"], 3)} if "vector_speedup" in summary else {}),
            "report": dg.MetadataValue.md(markdown),
        },
        data_version=dg.DataVersion(sha256_file(html_path)),
    )
