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

from wand_assets.compilation import emitc
from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core import plots
from wand_assets.core.artifacts import (
    exclusive,
    fingerprint,
    sha256_file,
    write_json_atomic,
)
from wand_assets.core.metadata import (
    device_partitions,
    entry_output,
    file_metadata,
    table,
)
from wand_assets.core.resources import ArtifactStoreResource, QualityGates
from wand_assets.core.targets import get_target
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.device import firmware_build, profile, results
from wand_assets.device.regression import Tolerances, find_regressions
from wand_assets.device.renode import stats as renode_stats
from wand_assets.device.resources import FirmwareToolchain, SimulatorResource
from wand_assets.device.session import device_client, evaluate_on_device
from wand_assets.training.model import as_model_input

FIRMWARE_CODE_VERSION = "3"  # 2: the linker map beside the ELF; 3: wfi idle, STATS total_instructions
DEVICE_EVAL_CODE_VERSION = "3"  # 2: the instruction profile of one inference; 3: summary.instruction_counts
# How many earlier evaluations of a target to look through for the regression baseline.
BASELINE_LOOKBACK = 50


@dg.asset(
    partitions_def=device_partitions,
    kinds={"c", "riscv"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="device",
    code_version=FIRMWARE_CODE_VERSION,
)
def firmware(
    context: dg.AssetExecutionContext, toolchain: FirmwareToolchain, artifact_store: ArtifactStoreResource, compiled_model: Path
) -> dg.Output[Path]:
    """Bare-metal RV32 firmware (ELF) that receives a `.vmfb` over UART and runs it with the IREE runtime.

    Built from `firmware/` with Debian's riscv64-unknown-elf GCC + picolibc and the IREE v3.11.0 runtime
    source given by `IREE_SOURCE_DIR`; `-march/-mabi` come from the target registry. An EmitC target's
    firmware is built from its compiled model (the C module linked in, the `.vmfb`'s SHA-256 that MODEL
    must match); for every other target the compiled model is not an input of the build (nor of its
    fingerprint).
    """
    target = get_target(context.partition_key)
    iree = firmware_build.check_iree_source(toolchain.iree_source())
    store = artifact_store.store()
    stage = store.stage("firmware", target.name)
    linked = None
    if target.is_emitc:
        linked = firmware_build.LinkedModule(
            c_module=compiled_model / emitc.C_MODULE_NAME, vmfb_sha256=sha256_file(compiled_model / "model.vmfb")
        )
    fp = fingerprint(
        firmware_build.sources_sha256(),
        target.identity(),
        iree.version,
        iree.commit,
        firmware_build.toolchain_versions(),
        FIRMWARE_CODE_VERSION,
        *([sha256_file(linked.c_module), linked.vmfb_sha256] if linked else []),
    )
    if (entry := stage.cached(fp)) is None:
        # A second run of the same build waits for the first instead of sharing its tree.
        build_dir = toolchain.build_dir(store.root, target.name, fp)
        log_path = build_dir / firmware_build.BUILD_LOG_NAME
        context.log.info(f"{target.name}: building the firmware; the full compiler output goes to {log_path}")
        with exclusive(build_dir.with_name(build_dir.name + ".lock")):
            if (entry := stage.cached(fp)) is None:
                with stage.produce(fp) as out:
                    with firmware_build.build_log(log_path, context.log.info) as build_log:
                        build = firmware_build.build_firmware(
                            target,
                            iree.path,
                            build_dir / "cmake",
                            out / firmware_build.ELF_NAME,
                            linked_module=linked,
                            log=build_log,
                            timeout_s=toolchain.build_timeout_s,
                        )
                    shutil.copyfile(log_path, out / firmware_build.BUILD_LOG_NAME)
                    write_json_atomic(out / "build.json", build.as_dict())
                entry = stage.entry(fp)
    else:
        context.log.info(f"{target.name}: firmware for these sources and toolchain already exists ({fp})")
    info = json.loads((entry / "build.json").read_text())
    elf = entry / firmware_build.ELF_NAME
    sha = sha256_file(elf)
    return entry_output(
        entry,
        {
            **file_metadata(elf, sha),
            "build_log": dg.MetadataValue.path(str(entry / firmware_build.BUILD_LOG_NAME)),
            "target": target.name,
            "march": target.gcc_march,
            "mabi": target.gcc_mabi,
            "module_format": target.module_format,
            **({"linked_vmfb_sha256": linked.vmfb_sha256} if linked else {}),
            "text_bytes": info["text_bytes"],
            "data_bytes": info["data_bytes"],
            "bss_bytes": info["bss_bytes"],
            "size_breakdown": table(info["size_breakdown"]),
            "linker_map": dg.MetadataValue.path(str(entry / firmware_build.MAP_NAME)),
            "iree_source_version": info["iree_source_version"] or "",
            "iree_source_commit": info["iree_source_commit"] or "(not a git checkout)",
            "gcc": info["gcc_version"],
            "picolibc": info["picolibc_version"],
            "cmake": info["cmake_version"],
        },
        sha,
    )


class DeviceEvaluationConfig(dg.Config):
    force: bool = False  # evaluate again even if a result for these exact inputs exists (nightly runs)
    windows: int = 0  # 0: the whole test split; N: its first N windows (a quick look, e.g. in tests)
    # Where one inference's instructions go: a second, traced QEMU session of PROFILE_WINDOWS windows
    # (a few seconds and a ~150 MB trace in the scratch folder).
    profile: bool = True


PROFILE_WINDOWS = 2  # the profile is the last one's: the first invoke also pays one-time costs


@dg.asset(
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
            description="Accuracy and instructions per inference against the last evaluation of this target that passed (warns).",
        ),
    ],
)
def device_evaluation(
    context: dg.AssetExecutionContext,
    config: DeviceEvaluationConfig,
    simulator: SimulatorResource,
    artifact_store: ArtifactStoreResource,
    gates: QualityGates,
    compiled_model: Path,
    firmware: Path,
    gesture_windows: Path,
    host_evaluation: Path,
):
    """The whole test split on the simulated device over Kenning's UART protocol (the simulator's ``protocol``:
    legacy or KenningProtocol; metadata ``protocol`` says which).

    IOSPEC + MODEL once, then DATA / PROCESS / OUTPUT (+ STATS for the device's own instruction count)
    per window. Results: `results.parquet` per window and `measurements.json` in Kenning's vocabulary.
    With the Renode backend also `renode_stats.json`: opcode counters around the evaluation loop, the
    profiler's per-interval series and Kenning's renode_stats metrics, with every plot in the metadata.
    """
    target = get_target(context.partition_key)
    store = artifact_store.store()
    vmfb = compiled_model / "model.vmfb"
    elf = firmware / firmware_build.ELF_NAME
    windows_path = gesture_windows / "windows.npz"
    host_predictions = host_evaluation / "predictions.parquet"
    inputs = results.EvaluationInputs(
        vmfb=sha256_file(vmfb), elf=sha256_file(elf), windows=sha256_file(windows_path), host=sha256_file(host_predictions)
    )
    stage = store.stage("device_evaluation", target.name)
    if config.windows < 0:
        raise dg.Failure(f"windows must be 0 (the whole test split) or a positive count, not {config.windows}")
    fp = fingerprint(asdict(inputs), simulator.identity(target), config.windows, config.profile, DEVICE_EVAL_CODE_VERSION)
    if config.force:  # a forced run measures again into an entry of its own; earlier entries stay as they were
        fp = fingerprint(fp, "forced", context.run_id)
    if (entry := stage.cached(fp)) is None:
        test = WindowSet.load(windows_path).select("test")
        if config.windows:
            test = test.head(config.windows)
        started = time.monotonic()
        scratch_root = store.root / "scratch"
        scratch_root.mkdir(parents=True, exist_ok=True)
        # A private folder per session (logs, ptys, Renode's profiler dump of ~1 GB), gone afterwards.
        with tempfile.TemporaryDirectory(prefix=f"sim-{target.name}-{context.run_id[:8]}-", dir=scratch_root) as scratch:
            with simulator.session(elf, target, Path(scratch), context.log.info) as session:
                client = device_client(
                    simulator.protocol, session.port, timeout_s=simulator.request_timeout_s, log=context.log.info
                )
                run = evaluate_on_device(
                    client,
                    MODEL_IO,
                    vmfb.read_bytes(),
                    as_model_input(test.x),
                    log=context.log.info,
                    process_timeout_s=simulator.process_timeout_s,
                )
                sim_info = {**session.describe(), "protocol": client.protocol}
            firmware_log = session.log_text()
            invoke_profile = None
            if config.profile and not target.device_board.runs_on_qemu:
                # The profile is a QEMU trace; a board only Renode simulates has none (yet).
                context.log.info(f"{target.name}: no instruction profile: it is traced in QEMU, which does not run this board")
            elif config.profile:
                context.log.info(f"{target.name}: tracing {PROFILE_WINDOWS} windows in QEMU for the instruction profile")
                invoke_profile = profile.trace_inference(
                    elf, target, MODEL_IO, vmfb.read_bytes(), as_model_input(test.x[:PROFILE_WINDOWS]), Path(scratch) / "profile"
                )
        renode = getattr(session, "statistics", None)  # Renode-only; complete once the session has ended
        measured = results.assemble(
            target,
            test,
            pd.read_parquet(host_predictions),
            run,
            inputs=inputs,
            simulator=sim_info,
            vmfb_bytes=vmfb.stat().st_size,
            wall_seconds=time.monotonic() - started,
            renode=renode,
        )
        with stage.produce(fp) as out:
            measured.frame.to_parquet(out / "results.parquet", index=False)
            write_json_atomic(out / "summary.json", measured.summary)
            write_json_atomic(out / "measurements.json", measured.measurements)
            (out / "firmware.log").write_text(firmware_log)
            if renode:
                write_json_atomic(out / "renode_stats.json", renode)
            if invoke_profile:
                write_json_atomic(out / "profile.json", invoke_profile.as_dict())
        entry = stage.entry(fp)
    else:
        context.log.info(f"{target.name}: a device evaluation for these inputs already exists ({fp})")
    summary = json.loads((entry / "summary.json").read_text())
    metrics = summary["metrics"]
    stats = summary["final_stats"]
    baseline, baseline_run = _regression_baseline(context)
    current = {"accuracy": metrics["accuracy"], "instructions": summary["instructions_per_inference_median"]}
    regressions = find_regressions(baseline, current, Tolerances(gates.max_accuracy_drop, gates.max_instruction_growth))
    for problem in regressions:
        context.log.warning(f"{target.name}: {problem}")
    parquet = entry / "results.parquet"
    sha = sha256_file(parquet)
    yield entry_output(
        entry,
        {
            **(_renode_metadata(entry) if "renode" in summary else {}),
            **_profile_metadata(entry),
            **file_metadata(parquet, sha),
            "measurements": dg.MetadataValue.path(str(entry / "measurements.json")),
            "firmware_log": dg.MetadataValue.path(str(entry / "firmware.log")),
            "vmfb_sha256": summary["inputs"]["vmfb"],
            "firmware_sha256": summary["inputs"]["elf"],
            "windows_sha256": summary["inputs"]["windows"],
            "host_predictions_sha256": summary["inputs"]["host"],
            "target": target.name,
            "simulator": f"{summary['simulator'].get('name')} {summary['simulator'].get('version', '')}".strip(),
            # Evaluations from before the protocol choice spoke the legacy protocol.
            "protocol": summary["simulator"].get("protocol", "legacy"),
            "windows": summary["windows"],
            "accuracy": metrics["accuracy"],
            "g_mean": metrics["g_mean"],
            "instructions_per_inference_mean": summary["instructions_per_inference_mean"],
            "instructions_per_inference_median": summary["instructions_per_inference_median"],
            # Each labelled for what it counts (results.instruction_counts).
            **{f"instructions_{k}": v for k, v in summary.get("instruction_counts", {}).items() if v is not None},
            "simulated_ms_per_inference_mean": summary["simulated_ms_mean"],
            "device_wall_seconds": round(summary["wall_seconds"], 1),
            "host_bytes_peak": stats.get("host_bytes_peak", 0),
            "heap_bytes_peak": stats.get("heap_bytes_peak", 0),
            # A later evaluation is compared with the newest one that passed no_regression.
            "regression_baseline": not regressions,
            "per_class": table(metrics["per_class"]),
            "confusion_matrix": dg.MetadataValue.md(
                plots.markdown_image(
                    plots.confusion_matrix_png(np.asarray(metrics["confusion_matrix"]), CLASSES, f"test split ({target.name})"),
                    "confusion",
                )
            ),
        },
        sha,
    )
    yield dg.AssetCheckResult(
        check_name="device_matches_host",
        passed=results.parity(summary, gates.parity_atol),
        metadata={
            "argmax_mismatches": summary["argmax_mismatches_vs_host"],
            "max_abs_diff": summary["max_abs_diff_vs_host"],
            "tolerance": gates.parity_atol,
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_regression",
        passed=not regressions,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "baseline": str(baseline) if baseline else "(first evaluation)",
            "baseline_run": baseline_run or "",
            "current": str(current),
            "regressions": "\n".join(regressions) or "none",
        },
    )


def _profile_metadata(entry: Path) -> dict:
    path = entry / "profile.json"
    if not path.is_file():
        return {}
    p = profile.InvokeProfile(**json.loads(path.read_text()))
    return {
        "profiled_instructions": p.instructions,
        "instructions_per_component": table(p.component_rows()),
        "instructions_per_function": table(p.rows()),
    }


def _regression_baseline(context: dg.AssetExecutionContext) -> tuple[dict | None, str | None]:
    """Accuracy and median instructions of this target's newest evaluation that passed no_regression
    (a regressed run, e.g. a nightly one, never becomes the baseline), from the event log."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=BASELINE_LOOKBACK
    ).records
    for record in records:
        metadata = record.asset_materialization.metadata
        baseline = metadata.get("regression_baseline")
        if baseline is not None and baseline.value and "accuracy" in metadata:
            values = {"accuracy": metadata["accuracy"].value, "instructions": metadata["instructions_per_inference_median"].value}
            return values, record.run_id
    return None, None


def _renode_metadata(entry: Path) -> dict:
    stats = json.loads((entry / "renode_stats.json").read_text())
    summary = results.renode_summary(stats)
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
