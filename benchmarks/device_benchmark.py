"""Device numbers per target, and what the IREE compile flags are worth on the simulated device.

    IREE_SOURCE_DIR=... .venv/bin/python benchmarks/device_benchmark.py [--dagster-home DIR] [--windows 20]

``--dagster-home`` is the DAGSTER_HOME whose run history has the whole pipeline materialized (default:
``$DAGSTER_HOME``, else ``./.dagster_home`` as ``scripts/materialize.sh`` uses it; or
``benchmarks/materialize_wall_time.py --keep DIR``). Part 1 reads the latest device evaluations there.
Part 2 recompiles the model with IREE 3.11's defaults (without ``iree_tools.OPTIMISATION_FLAGS``) and
runs ``--windows`` test windows of each on the same firmware in QEMU, to show where the instruction
count comes from. Prints Markdown for the README.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from wand_assets.compilation import iree_tools
from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core.handoff import latest_entry
from wand_assets.core.targets import DEVICE_TARGETS, get_target
from wand_assets.data.windows import WindowSet
from wand_assets.device import simulators
from wand_assets.device.firmware_build import ELF_NAME
from wand_assets.device.protocol import DeviceClient
from wand_assets.device.results import SEED_INSTRUCTIONS_PER_PASS
from wand_assets.device.session import evaluate_on_device
from wand_assets.training.model import as_model_input


def device_table(instance: dg.DagsterInstance) -> None:
    print(
        "| target | instructions / inference (median) | simulated time / inference "
        "| device evaluation wall time (test split) | firmware .text | peak heap | peak stack |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in DEVICE_TARGETS:
        s = json.loads((latest_entry(instance, "device_evaluation", name) / "summary.json").read_text())
        b = json.loads((latest_entry(instance, "firmware", name) / "build.json").read_text())
        stats = s["final_stats"]
        print(
            f"| {name} | {s['instructions_per_inference_median']:,.0f} | {s['simulated_ms_mean']:.3f} ms | "
            f"{s['wall_seconds']:.0f} s ({s['windows']} windows) | {b['text_bytes']:,} B | "
            f"{stats.get('heap_bytes_peak', 0):,} B | {stats.get('stack_bytes_peak', 0):,} B |"
        )
    print(f"| seed (Kenning, Springbok, RVV) | {SEED_INSTRUCTIONS_PER_PASS:,} | | | | | |")


def median_instructions(instance: dg.DagsterInstance, target_name: str, vmfb: Path, windows: np.ndarray, workdir: Path) -> float:
    target = get_target(target_name)
    elf = latest_entry(instance, "firmware", target_name) / ELF_NAME
    with simulators.open_session("qemu", elf, target, workdir) as session:
        run = evaluate_on_device(DeviceClient(session.port), MODEL_IO, vmfb.read_bytes(), windows)
    return float(np.median(run.inference_instructions))


def flags_table(instance: dg.DagsterInstance, n_windows: int) -> None:
    mlir = latest_entry(instance, "model_mlir") / "model.mlir"
    test = WindowSet.load(latest_entry(instance, "gesture_windows") / "windows.npz").select("test")
    windows = as_model_input(test.x[:n_windows])
    print()
    print(f"| target | IREE 3.11 defaults | + {' '.join(iree_tools.OPTIMISATION_FLAGS)} |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="wand-flags-") as tmp:
        for name in (t for t in DEVICE_TARGETS if get_target(t).iree_optimise):  # the defaults variant is the baseline itself
            plain = Path(tmp) / f"{name}-defaults.vmfb"
            iree_tools.compile_vmfb(mlir, get_target(name), plain, optimise=False, log=lambda _m: None)
            tuned = latest_entry(instance, "compiled_model", name) / "model.vmfb"
            before = median_instructions(instance, name, plain, windows, Path(tmp) / f"{name}-a")
            after = median_instructions(instance, name, tuned, windows, Path(tmp) / f"{name}-b")
            print(f"| {name} | {before:,.0f} | {after:,.0f} ({before / after:.1f}× fewer) |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--dagster-home",
        default=os.environ.get("DAGSTER_HOME", ".dagster_home"),
        help="DAGSTER_HOME of a fully materialized pipeline",
    )
    parser.add_argument("--windows", type=int, default=20, help="test windows per variant in the flags comparison")
    args = parser.parse_args()
    instance = dg.DagsterInstance.local_temp(tempdir=str(Path(args.dagster_home).absolute()))
    device_table(instance)
    flags_table(instance, args.windows)


if __name__ == "__main__":
    main()
