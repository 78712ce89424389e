"""What one device evaluation measured, assembled for the artifact entry: the per-window table, the
summary the gates and the report read, and the measurements in Kenning's vocabulary.

Plain Python: everything here is reachable from a unit test without a simulator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from wand_assets.core.metrics import classification_metrics
from wand_assets.core.seed import SEED
from wand_assets.core.targets import Target
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.device.protocol import (
    LEGACY_STATS_FIELDS,  # the seed's six fields, Kenning's allocation_stats
    SESSION_INSTRUCTIONS_FIELD,
)
from wand_assets.device.session import DeviceRun

RENODE_MEASUREMENT_KEYS = (
    "opcode_counters",
    "profiler_timestamps",
    "executed_instructions",
    "memory_accesses",
    "peripheral_accesses",
    "exceptions",
)


@dataclass(frozen=True)
class EvaluationInputs:
    """The exact inputs an evaluation measured (SHA-256 of each file)."""

    vmfb: str
    elf: str
    windows: str
    host: str


@dataclass
class EvaluationResults:
    frame: pd.DataFrame  # one row per evaluated window
    summary: dict
    measurements: dict


def assemble(
    target: Target,
    test: WindowSet,
    host_predictions: pd.DataFrame,
    run: DeviceRun,
    *,
    inputs: EvaluationInputs,
    simulator: dict,
    vmfb_bytes: int,
    wall_seconds: float,
    renode: dict | None = None,
) -> EvaluationResults:
    """Compare the device's scores with the host reference window by window and summarise."""
    host = host_predictions.iloc[: len(test)]
    if len(host) != len(test) or not np.array_equal(host["window"].to_numpy(), np.arange(len(test))):
        raise ValueError(f"the host reference has {len(host_predictions)} windows; the device evaluated {len(test)}")
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
    summary = {
        "target": target.name,
        "simulator": simulator,
        "windows": len(test),
        "accuracy": metrics.accuracy,
        "metrics": metrics.as_dict(),
        "argmax_mismatches_vs_host": int((frame["device_class"] != frame["host_class"]).sum()),
        "max_abs_diff_vs_host": float(frame["max_abs_diff_vs_host"].max()),
        "instructions_per_inference_mean": float(run.inference_instructions.mean()),
        "instructions_per_inference_median": float(np.median(run.inference_instructions)),
        "simulated_ms_mean": float(np.nanmean(run.inference_seconds) * 1e3),
        "setup_seconds": run.setup_seconds,
        "wall_seconds": wall_seconds,
        "final_stats": run.final_stats,
        "instruction_counts": instruction_counts(run, len(test), renode),
        "inputs": asdict(inputs),
    }
    measurements = {
        "build_cfg": {
            "target": asdict(target),
            "simulator": simulator,
            "vmfb_sha256": inputs.vmfb,
            "firmware_sha256": inputs.elf,
        },
        "protocol_inference_step": run.inference_seconds.tolist(),
        "inference_instructions": run.inference_instructions.tolist(),
        "eval_confusion_matrix": metrics.confusion.tolist(),
        "total": len(test),
        "class_names": list(CLASSES),
        "allocation_stats": {k: run.final_stats.get(k) for k in LEGACY_STATS_FIELDS},
        "compiled_model_size": vmfb_bytes,
    }
    if renode:
        summary["renode"] = renode_summary(renode)
        measurements.update({k: renode[k] for k in RENODE_MEASUREMENT_KEYS if k in renode})
    return EvaluationResults(frame, summary, measurements)


def instruction_counts(run: DeviceRun, windows: int, renode: dict | None) -> dict:
    """The instruction counts side by side, each named for what it counts.

    ``kenning_per_pass_stats``: Kenning's definition (every instruction of the session / windows) from
    the device's own ``total_instructions`` in the last STATS reply (any simulator);
    ``kenning_per_pass_renode``: the same definition from Renode's counters (Renode runs only);
    ``marginal_per_invoke_median``: ``minstret`` around one invoke; ``seed_kenning_per_pass``: the
    seed's published figure in Kenning's definition.
    """
    total = run.final_stats.get(SESSION_INSTRUCTIONS_FIELD)
    return {
        "kenning_per_pass_stats": total / windows if total is not None and windows else None,
        "session_instructions_stats": total,
        "kenning_per_pass_renode": (renode or {}).get("instructions_per_inference_pass"),
        "marginal_per_invoke_median": float(np.median(run.inference_instructions)) if windows else None,
        "seed_kenning_per_pass": SEED.instructions_per_pass,
    }


def renode_summary(stats: dict) -> dict:
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


def parity(summary: dict, atol: float) -> bool:
    """The device matches the host: the same class on every window and every score within ``atol``."""
    return summary["argmax_mismatches_vs_host"] == 0 and summary["max_abs_diff_vs_host"] <= atol
