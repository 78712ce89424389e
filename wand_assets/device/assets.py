"""Device stage: firmware per target, evaluation of the test split on the simulated device, parity gate."""

import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from wand_assets.compilation.assets import compiled_model, host_evaluation
from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core import plots
from wand_assets.core.artifacts import (
    fingerprint,
    sha256_file,
    sha256_tree,
    write_json_atomic,
)
from wand_assets.core.metadata import file_metadata, table
from wand_assets.core.metrics import classification_metrics
from wand_assets.core.resources import ArtifactStoreResource, QualityGates
from wand_assets.core.targets import DEVICE_TARGETS, get_target
from wand_assets.data.assets import gesture_windows
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.device import firmware_build, renode_stats
from wand_assets.device.protocol import DeviceClient
from wand_assets.device.regression import Tolerances, find_regressions
from wand_assets.device.resources import FirmwareToolchain, SimulatorResource
from wand_assets.device.session import evaluate_on_device
from wand_assets.training.model import as_model_input

FIRMWARE_CODE_VERSION = "1"
DEVICE_EVAL_CODE_VERSION = "1"

device_partitions = dg.StaticPartitionsDefinition(DEVICE_TARGETS)

_same_target = dg.StaticPartitionMapping({t: t for t in DEVICE_TARGETS})


@dg.asset(
    partitions_def=device_partitions,
    kinds={"c", "riscv"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="device",
    code_version=FIRMWARE_CODE_VERSION,
)
def firmware(
    context: dg.AssetExecutionContext, toolchain: FirmwareToolchain, artifact_store: ArtifactStoreResource
) -> dg.MaterializeResult:
    """Bare-metal RV32 firmware (ELF) that receives a `.vmfb` over UART and runs it with the IREE runtime.

    Built from `firmware/` with Debian's riscv64-unknown-elf GCC + picolibc and the IREE v3.11.0 runtime
    source given by `IREE_SOURCE_DIR`; `-march/-mabi` come from the target registry.
    """
    target = get_target(context.partition_key)
    iree = firmware_build.check_iree_source(toolchain.iree_source())
    stage = artifact_store.store().stage("firmware", target.name)
    fp = fingerprint(
        sha256_tree(firmware_build.FIRMWARE_DIR), asdict(target), iree.version, iree.commit, firmware_build.toolchain_versions(), FIRMWARE_CODE_VERSION
    )
    if (entry := stage.cached(fp)) is None:
        build_dir = toolchain.build_dir(target.name)
        log_path = build_dir.parent / f"{target.name}-{firmware_build.BUILD_LOG_NAME}"
        context.log.info(f"{target.name}: building the firmware; the full compiler output goes to {log_path}")
        with stage.produce(fp) as out:
            with firmware_build.build_log(log_path, context.log.info) as build_log:
                build = firmware_build.build_firmware(
                    target,
                    iree.path,
                    build_dir,
                    out / firmware_build.ELF_NAME,
                    log=build_log,
                    timeout_s=toolchain.build_timeout_s,
                )
            shutil.copyfile(log_path, out / firmware_build.BUILD_LOG_NAME)
            write_json_atomic(out / "build.json", build.as_dict())
        entry = stage.entry(fp)
    else:
        stage.set_current(fp)
        context.log.info(f"{target.name}: firmware for these sources and toolchain already exists ({fp})")
    info = json.loads((entry / "build.json").read_text())
    elf = entry / firmware_build.ELF_NAME
    sha = sha256_file(elf)
    return dg.MaterializeResult(
        metadata={
            **file_metadata(elf, sha),
            "build_log": dg.MetadataValue.path(str(entry / firmware_build.BUILD_LOG_NAME)),
            "target": target.name,
            "march": target.gcc_march,
            "mabi": target.gcc_mabi,
            "text_bytes": info["text_bytes"],
            "data_bytes": info["data_bytes"],
            "bss_bytes": info["bss_bytes"],
            "iree_source_version": info["iree_source_version"] or "",
            "iree_source_commit": info["iree_source_commit"] or "(not a git checkout)",
            "gcc": info["gcc_version"],
            "picolibc": info["picolibc_version"],
            "cmake": info["cmake_version"],
        },
        data_version=dg.DataVersion(sha),
    )


class DeviceEvaluationConfig(dg.Config):
    force: bool = False  # evaluate again even if a result for these exact inputs exists (nightly runs)
    windows: int = 0  # 0: the whole test split; N: its first N windows (a quick look, e.g. in tests)


@dg.asset(
    deps=[
        dg.AssetDep(compiled_model, partition_mapping=_same_target),
        firmware,
        gesture_windows,
        host_evaluation,
    ],
    partitions_def=device_partitions,
    kinds={"qemu", "renode", "riscv"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="device",
    code_version=DEVICE_EVAL_CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "device_matches_host",
            asset="device_evaluation",
            blocking=True,
            description="Device argmax equals host IREE argmax on every test window, max |device − host| within tolerance.",
        ),
        dg.AssetCheckSpec(
            "no_regression",
            asset="device_evaluation",
            description="Accuracy and instructions per inference against the previous evaluation of this target (warns).",
        ),
    ],
)
def device_evaluation(
    context: dg.AssetExecutionContext,
    config: DeviceEvaluationConfig,
    simulator: SimulatorResource,
    artifact_store: ArtifactStoreResource,
    gates: QualityGates,
) -> dg.MaterializeResult:
    """The whole test split on the simulated device over Kenning's UART protocol.

    IOSPEC + MODEL once, then DATA / PROCESS / OUTPUT (+ STATS for the device's own instruction count)
    per window. Results: `results.parquet` per window and `measurements.json` in Kenning's vocabulary.
    With the Renode backend also `renode_stats.json`: opcode counters around the evaluation loop, the
    profiler's per-interval series and Kenning's renode_stats metrics, with every plot in the metadata.
    """
    target = get_target(context.partition_key)
    store = artifact_store.store()
    compiled = store.stage("compiled_model", target.name).current()
    elf = store.stage("firmware", target.name).current() / firmware_build.ELF_NAME
    windows_path = store.stage("gesture_windows").current() / "windows.npz"
    host_predictions = store.stage("host_evaluation").current() / "predictions.parquet"
    vmfb = compiled / "model.vmfb"
    inputs = {"vmfb": sha256_file(vmfb), "elf": sha256_file(elf), "windows": sha256_file(windows_path), "host": sha256_file(host_predictions)}
    stage = store.stage("device_evaluation", target.name)
    if config.windows < 0:
        raise dg.Failure(f"windows must be 0 (the whole test split) or a positive count, not {config.windows}")
    fp = fingerprint(inputs, simulator.identity(), config.windows, DEVICE_EVAL_CODE_VERSION)
    if (entry := stage.cached(fp)) is None or config.force:
        test = WindowSet.load(windows_path).select("test")
        if config.windows:
            test = test.head(config.windows)
        started = time.monotonic()
        scratch_root = store.root / "scratch"
        scratch_root.mkdir(parents=True, exist_ok=True)
        # A private folder per session (logs, ptys, Renode's profiler dump of ~1 GB), gone afterwards.
        with tempfile.TemporaryDirectory(prefix=f"sim-{target.name}-{context.run_id[:8]}-", dir=scratch_root) as scratch:
            with simulator.session(elf, target, Path(scratch), context.log.info) as session:
                run = evaluate_on_device(
                    DeviceClient(session.port, timeout_s=simulator.request_timeout_s),
                    MODEL_IO,
                    vmfb.read_bytes(),
                    as_model_input(test.x),
                    log=context.log.info,
                    process_timeout_s=simulator.process_timeout_s,
                )
                sim_info = session.describe()
            firmware_log = session.log_text()
        wall = time.monotonic() - started
        renode = getattr(session, "statistics", None)  # Renode-only; complete once the session has ended
        host = pd.read_parquet(host_predictions).iloc[: len(test)]
        host_scores = host[[f"iree_{c}" for c in CLASSES]].to_numpy(np.float32)
        device_class = run.scores.argmax(axis=1)
        frame = pd.DataFrame(
            {
                "window": np.arange(len(test)),
                "recording": test.recording,
                "true_class": test.y,
                "device_class": device_class,
                "host_class": host["iree_class"].to_numpy(),
                "max_abs_diff_vs_host": np.abs(run.scores - host_scores).max(axis=1),
                "inference_instructions": run.inference_instructions,
                "inference_cycles": run.inference_cycles,
                "simulated_seconds": run.inference_seconds,
                "round_trip_seconds": run.round_trip_seconds,
                **{f"device_{c}": run.scores[:, i] for i, c in enumerate(CLASSES)},
            }
        )
        if renode and len(renode["request_window_instructions"]) == len(test):
            frame["renode_request_instructions"] = renode["request_window_instructions"]
            frame["renode_request_virtual_seconds"] = renode["request_window_virtual_seconds"]
        metrics = classification_metrics(test.y, device_class, CLASSES)
        allocation = {k: run.final_stats.get(k) for k in ("host_bytes_peak", "host_bytes_allocated", "host_bytes_freed", "device_bytes_peak", "device_bytes_allocated", "device_bytes_freed")}
        summary = {
            "target": target.name,
            "simulator": sim_info,
            "windows": len(test),
            "accuracy": metrics.accuracy,
            "metrics": metrics.as_dict(),
            "argmax_mismatches_vs_host": int((frame["device_class"] != frame["host_class"]).sum()),
            "max_abs_diff_vs_host": float(frame["max_abs_diff_vs_host"].max()),
            "instructions_per_inference_mean": float(run.inference_instructions.mean()),
            "instructions_per_inference_median": float(np.median(run.inference_instructions)),
            "simulated_ms_mean": float(np.nanmean(run.inference_seconds) * 1e3),
            "setup_seconds": run.setup_seconds,
            "wall_seconds": wall,
            "final_stats": run.final_stats,
            "inputs": inputs,
        }
        measurements = {
            "build_cfg": {"target": asdict(target), "simulator": sim_info, "vmfb_sha256": inputs["vmfb"], "firmware_sha256": inputs["elf"]},
            "protocol_inference_step": run.inference_seconds.tolist(),
            "inference_instructions": run.inference_instructions.tolist(),
            "eval_confusion_matrix": metrics.confusion.tolist(),
            "total": len(test),
            "class_names": list(CLASSES),
            "allocation_stats": allocation,
            "compiled_model_size": vmfb.stat().st_size,
        }
        if renode:
            summary["renode"] = _renode_summary(renode)
            measurements.update({k: renode[k] for k in _RENODE_MEASUREMENT_KEYS if k in renode})
        with stage.produce(fp) as out:
            frame.to_parquet(out / "results.parquet", index=False)
            write_json_atomic(out / "summary.json", summary)
            write_json_atomic(out / "measurements.json", measurements)
            (out / "firmware.log").write_text(firmware_log)
            if renode:
                write_json_atomic(out / "renode_stats.json", renode)
        entry = stage.entry(fp)
    else:
        stage.set_current(fp)
        context.log.info(f"{target.name}: a device evaluation for these inputs already exists ({fp})")
    summary = json.loads((entry / "summary.json").read_text())
    metrics = summary["metrics"]
    parity = summary["argmax_mismatches_vs_host"] == 0 and summary["max_abs_diff_vs_host"] <= gates.parity_atol
    stats = summary["final_stats"]
    previous = _previous_evaluation(context)
    current = {"accuracy": metrics["accuracy"], "instructions": summary["instructions_per_inference_median"]}
    regressions = find_regressions(previous, current, Tolerances(gates.max_accuracy_drop, gates.max_instruction_growth))
    for problem in regressions:
        context.log.warning(f"{target.name}: {problem}")
    renode_metadata = _renode_metadata(entry) if "renode" in summary else {}
    return dg.MaterializeResult(
        metadata={
            **renode_metadata,
            **file_metadata(entry / "results.parquet"),
            "measurements": dg.MetadataValue.path(str(entry / "measurements.json")),
            "firmware_log": dg.MetadataValue.path(str(entry / "firmware.log")),
            "target": target.name,
            "simulator": f"{summary['simulator'].get('name')} {summary['simulator'].get('version', '')}".strip(),
            "windows": summary["windows"],
            "accuracy": metrics["accuracy"],
            "g_mean": metrics["g_mean"],
            "instructions_per_inference_mean": summary["instructions_per_inference_mean"],
            "instructions_per_inference_median": summary["instructions_per_inference_median"],
            "simulated_ms_per_inference_mean": summary["simulated_ms_mean"],
            "device_wall_seconds": round(summary["wall_seconds"], 1),
            "host_bytes_peak": stats.get("host_bytes_peak", 0),
            "heap_bytes_peak": stats.get("heap_bytes_peak", 0),
            "per_class": table(metrics["per_class"]),
            "confusion_matrix": dg.MetadataValue.md(
                plots.markdown_image(
                    plots.confusion_matrix_png(np.asarray(metrics["confusion_matrix"]), CLASSES, f"test split ({target.name})"),
                    "confusion",
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="device_matches_host",
                passed=parity,
                metadata={
                    "argmax_mismatches": summary["argmax_mismatches_vs_host"],
                    "max_abs_diff": summary["max_abs_diff_vs_host"],
                    "tolerance": gates.parity_atol,
                },
            ),
            dg.AssetCheckResult(
                check_name="no_regression",
                passed=not regressions,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "previous": str(previous) if previous else "(first evaluation)",
                    "current": str(current),
                    "regressions": "\n".join(regressions) or "none",
                },
            ),
        ],
    )


def _previous_evaluation(context: dg.AssetExecutionContext) -> dict | None:
    """Accuracy and median instructions of this target's previous materialization, from the event log."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        return None
    metadata = records[0].asset_materialization.metadata
    try:
        return {
            "accuracy": metadata["accuracy"].value,
            "instructions": metadata["instructions_per_inference_median"].value,
        }
    except KeyError:
        return None


_RENODE_MEASUREMENT_KEYS = (
    "opcode_counters",
    "profiler_timestamps",
    "executed_instructions",
    "memory_accesses",
    "peripheral_accesses",
    "exceptions",
)


def _renode_summary(stats: dict) -> dict:
    """The scalar Renode-only numbers (the series stay in renode_stats.json)."""
    windows = np.asarray(stats["request_window_instructions"], dtype=np.float64)
    seconds = np.asarray(stats["request_window_virtual_seconds"], dtype=np.float64)
    return {
        "instructions_per_inference_pass": stats["instructions_per_inference_pass"],
        "vector_opcodes_fraction": stats["vector_opcodes_fraction"],
        "top_10_opcodes_per_inference_pass": stats["top_10_opcodes_per_inference_pass"],
        "request_window_instructions_median": float(np.median(windows)) if len(windows) else None,
        "request_window_virtual_ms_median": float(np.median(seconds) * 1e3) if len(seconds) else None,
        "loop_executed_instructions": stats["loop_executed_instructions"],
        "loop_virtual_seconds": stats["loop_virtual_seconds"],
        "worker_peak_rss_kib": stats["worker_peak_rss_kib"],
        "profiler_dump_bytes": stats.get("profiler_dump_bytes"),
        "process_requests": stats.get("inference"),  # opcode counts within the PROCESS requests only
    }


def _renode_metadata(entry: Path) -> dict:
    stats = json.loads((entry / "renode_stats.json").read_text())
    summary = _renode_summary(stats)
    top = dict(sorted(stats["top_10_opcodes_per_inference_pass"].items(), key=lambda kv: -kv[1]))  # JSON sorted the keys
    return {
        "renode_stats": dg.MetadataValue.path(str(entry / "renode_stats.json")),
        "renode_instructions_per_inference_pass": summary["instructions_per_inference_pass"],
        "renode_vector_share": summary["vector_opcodes_fraction"],
        "renode_process_vector_share": (summary["process_requests"] or {}).get("vector_opcodes_fraction", 0.0),
        "renode_process_instructions_per_pass": (summary["process_requests"] or {}).get("instructions_per_inference_pass", 0.0),
        "renode_request_window_instructions_median": summary["request_window_instructions_median"] or 0.0,
        "renode_request_window_virtual_ms_median": summary["request_window_virtual_ms_median"] or 0.0,
        "renode_worker_peak_rss_mib": round((summary["worker_peak_rss_kib"] or 0) / 1024, 1),
        "renode_top_10_opcodes": table([{"opcode": op, "per_inference_pass": round(v, 1)} for op, v in top.items()]),
        "renode_report": dg.MetadataValue.md(renode_stats.renode_report_markdown(stats)),
    }
