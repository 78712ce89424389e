"""Compilation stage: StableHLO import, per-target .vmfb with Kenning's I/O spec, host parity reference."""

import json
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from wand_assets.compilation import emitc, host_runtime, iree_tools
from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core import plots
from wand_assets.core.artifacts import (
    fingerprint,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from wand_assets.core.metadata import (
    device_partitions,
    entry_output,
    file_metadata,
    table,
)
from wand_assets.core.metrics import classification_metrics
from wand_assets.core.resources import ArtifactStoreResource, QualityGates
from wand_assets.core.targets import HOST_TARGET, get_target
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.training.model import INPUT_SHAPE, load_model, predict

MLIR_CODE_VERSION = "1"
COMPILE_CODE_VERSION = "2"  # 2: "commands" (an inline target compiles in stages)
HOST_EVAL_CODE_VERSION = "1"
# The legacy UART protocol caps a message at 1,310,720 bytes, of which 2 are the type field.
MAX_VMFB_BYTES = 1_310_718


@dg.asset(
    kinds={"tensorflow", "mlir"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="compilation",
    code_version=MLIR_CODE_VERSION,
)
def model_mlir(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, trained_model: Path) -> dg.Output[Path]:
    """The model as StableHLO MLIR: SavedModel with a fixed [1,128,3,1] float32 signature → `iree-import-tf`."""
    store = artifact_store.store()
    keras_path = trained_model / "model.keras"
    keras_sha = sha256_file(keras_path)
    stage = store.stage("model_mlir")
    fp = fingerprint(keras_sha, iree_tools.compiler_version(), MLIR_CODE_VERSION)
    if (entry := stage.cached(fp)) is None:
        with stage.produce(fp) as out, tempfile.TemporaryDirectory(prefix="wand-savedmodel-") as tmp:
            saved = Path(tmp) / "saved_model"
            iree_tools.export_saved_model(keras_path, saved)
            iree_tools.import_to_stablehlo(saved, out / "model.mlir", log=context.log.info)
        entry = stage.entry(fp)
    else:
        context.log.info(f"StableHLO for this model already exists ({fp})")
    mlir = entry / "model.mlir"
    sha = sha256_file(mlir)
    return entry_output(
        entry, {**file_metadata(mlir, sha), "keras_sha256": keras_sha, "signature": "main(f32[1,128,3,1]) -> f32[1,4]"}, sha
    )


def _compile(context: dg.AssetExecutionContext, store, target, model_mlir: Path) -> tuple[Path, int, dict]:
    """The .vmfb of ``model_mlir`` for ``target`` (cached by fingerprint) and its metadata."""
    mlir = model_mlir / "model.mlir"
    mlir_sha = sha256_file(mlir)
    flags = iree_tools.compile_flags(target)
    stage = store.stage("compiled_model", target.name)
    fp = fingerprint(mlir_sha, target.identity(), flags, iree_tools.compiler_version(), COMPILE_CODE_VERSION)
    if (entry := stage.cached(fp)) is None:
        with stage.produce(fp) as out:
            started = time.monotonic()
            commands = iree_tools.compile_vmfb(mlir, target, out / "model.vmfb", log=context.log.info)
            seconds = time.monotonic() - started
            write_json_atomic(
                out / "model.vmfb.json", MODEL_IO.to_kenning_json(raw_input_shapes=[[1, 128, 3], list(INPUT_SHAPE)])
            )
            write_bytes_atomic(out / "model.iospec.bin", MODEL_IO.pack())
            write_json_atomic(
                out / "compile.json",
                {
                    "commands": [command[1:] for command in commands],
                    "seconds": seconds,
                    "iree_compiler": iree_tools.compiler_version(),
                    "mlir_sha256": mlir_sha,
                },
            )
        entry = stage.entry(fp)
    else:
        context.log.info(f"{target.name}: a .vmfb for this model and target already exists ({fp})")
    vmfb = entry / "model.vmfb"
    info = json.loads((entry / "compile.json").read_text())
    metadata = {
        **file_metadata(vmfb),
        "mlir_sha256": mlir_sha,
        "target": target.name,
        "target_description": target.description,
        "llvm_cpu_features": target.llvm_cpu_features or "(host default)",
        "iree_compiler": info["iree_compiler"],
        "compile_seconds": round(info["seconds"], 2),
        "iospec_json": dg.MetadataValue.path(str(entry / "model.vmfb.json")),
        "execution_model": target.execution_model,
        "module_format": target.module_format,
        **({"c_module": dg.MetadataValue.path(str(entry / emitc.C_MODULE_NAME))} if target.is_emitc else {}),
        "iree_compile_flags": dg.MetadataValue.md("\n\n".join("```\n" + "\n".join(c) + "\n```" for c in info["commands"])),
    }
    return entry, vmfb.stat().st_size, metadata


@dg.asset(
    partitions_def=device_partitions,
    kinds={"iree"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="compilation",
    code_version=COMPILE_CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "fits_uart_payload", asset="compiled_model", description="The .vmfb fits in one MODEL message (≤ 1,310,718 bytes)."
        )
    ],
)
def compiled_model(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, model_mlir: Path):
    """The `.vmfb` for one device target from the pinned `iree-compile`, plus Kenning's I/O spec (JSON and 160-byte IOSPEC);
    for an EmitC target also the same module as C (`model_emitc.h`), which its firmware links in."""
    entry, size, metadata = _compile(context, artifact_store.store(), get_target(context.partition_key), model_mlir)
    yield entry_output(entry, metadata, metadata["sha256"])
    yield dg.AssetCheckResult(
        check_name="fits_uart_payload",
        passed=size <= MAX_VMFB_BYTES,
        metadata={"size_bytes": size, "limit_bytes": MAX_VMFB_BYTES},
    )


@dg.asset(
    kinds={"iree"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="compilation",
    code_version=COMPILE_CODE_VERSION,
)
def host_model(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, model_mlir: Path) -> dg.Output[Path]:
    """The `.vmfb` for the x86-64 host (IREE local-sync): what the host reference runs."""
    entry, _, metadata = _compile(context, artifact_store.store(), get_target(HOST_TARGET), model_mlir)
    return entry_output(entry, metadata, metadata["sha256"])


@dg.asset(
    kinds={"iree", "python"},
    automation_condition=dg.AutomationCondition.eager(),
    group_name="compilation",
    code_version=HOST_EVAL_CODE_VERSION,
)
def host_evaluation(
    context: dg.AssetExecutionContext,
    host_model: Path,
    trained_model: Path,
    gesture_windows: Path,
    artifact_store: ArtifactStoreResource,
) -> dg.Output[Path]:
    """The whole test split through the host `.vmfb` with `iree.runtime`, window by window, compared with Keras.

    This is the reference the simulated device must reproduce.
    """
    store = artifact_store.store()
    vmfb = host_model / "model.vmfb"
    keras_path = trained_model / "model.keras"
    windows_path = gesture_windows / "windows.npz"
    shas = [sha256_file(p) for p in (vmfb, keras_path, windows_path)]
    stage = store.stage("host_evaluation")
    fp = fingerprint(*shas, HOST_EVAL_CODE_VERSION)
    if (entry := stage.cached(fp)) is None:
        test = WindowSet.load(windows_path).select("test")
        keras_scores = predict(load_model(keras_path), test.x)
        iree_scores, seconds = host_runtime.run_vmfb(vmfb, test.x, log=context.log.info)
        frame = pd.DataFrame(
            {
                "window": np.arange(len(test)),
                "recording": test.recording,
                "true_class": test.y,
                "keras_class": keras_scores.argmax(axis=1),
                "iree_class": iree_scores.argmax(axis=1),
                "max_abs_diff": np.abs(iree_scores - keras_scores).max(axis=1),
                **{f"iree_{c}": iree_scores[:, i] for i, c in enumerate(CLASSES)},
                **{f"keras_{c}": keras_scores[:, i] for i, c in enumerate(CLASSES)},
            }
        )
        metrics = classification_metrics(test.y, frame["iree_class"].to_numpy(), CLASSES)
        with stage.produce(fp) as out:
            frame.to_parquet(out / "predictions.parquet", index=False)
            write_json_atomic(
                out / "summary.json",
                {
                    "windows": len(test),
                    "seconds": seconds,
                    "argmax_mismatches": int((frame["keras_class"] != frame["iree_class"]).sum()),
                    "max_abs_diff": float(frame["max_abs_diff"].max()),
                    "metrics": metrics.as_dict(),
                    "inputs": {"vmfb": shas[0], "keras": shas[1], "windows": shas[2]},
                },
            )
        entry = stage.entry(fp)
    else:
        context.log.info(f"host evaluation for these inputs already exists ({fp})")
    summary = json.loads((entry / "summary.json").read_text())
    parquet = entry / "predictions.parquet"
    metrics = summary["metrics"]
    sha = sha256_file(parquet)
    return entry_output(
        entry,
        {
            **file_metadata(parquet, sha),
            **{f"{name}_sha256": value for name, value in summary["inputs"].items()},
            "windows": summary["windows"],
            "accuracy": metrics["accuracy"],
            "g_mean": metrics["g_mean"],
            "argmax_mismatches_vs_keras": summary["argmax_mismatches"],
            "max_abs_diff_vs_keras": summary["max_abs_diff"],
            "host_ms_per_window": round(1000 * summary["seconds"] / max(1, summary["windows"]), 3),
            "per_class": table(metrics["per_class"]),
            "confusion_matrix": dg.MetadataValue.md(
                plots.markdown_image(
                    plots.confusion_matrix_png(np.asarray(metrics["confusion_matrix"]), CLASSES, "test split (host IREE)"),
                    "confusion",
                )
            ),
        },
        sha,
    )


@dg.asset_check(
    asset=host_evaluation,
    blocking=True,
    description="Host IREE and Keras agree: identical argmax on every test window, max |IREE − Keras| within tolerance.",
)
def host_matches_keras(host_evaluation: Path, gates: QualityGates) -> dg.AssetCheckResult:
    summary = json.loads((host_evaluation / "summary.json").read_text())
    passed = summary["argmax_mismatches"] == 0 and summary["max_abs_diff"] <= gates.parity_atol
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "argmax_mismatches": summary["argmax_mismatches"],
            "max_abs_diff": summary["max_abs_diff"],
            "tolerance": gates.parity_atol,
        },
    )
