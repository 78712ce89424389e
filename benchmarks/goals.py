"""Issue 10's goals table (metric | now | goal | met?) from fresh simulator runs.

    IREE_SOURCE_DIR=... PYRENODE_BUILD_DIR=... .venv/bin/python benchmarks/goals.py [--dagster-home DIR]
        [--windows 0 140] [--no-renode]

``--dagster-home`` holds a materialized pipeline (firmware and compiled model per target, as for
``device_benchmark.py``). For RVV (``rv32imf_zve32f_vlen512``), the same with IREE's inline
execution model (``…_inline``), that with the VM module compiled to C (``…_inline_emitc``) and
scalar (``rv32imf``) and each
window count (0 = the whole test split), it runs the evaluation afresh in QEMU and in Renode (with
the profiler) and prints, each labelled for what it counts: Kenning's definition from Renode's
counters and from the device's STATS, the marginal count per invoke, ``.text``, peak heap and both
simulators' wall time (Renode's includes parsing its profiler dump).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core.handoff import latest_entry
from wand_assets.core.seed import SEED
from wand_assets.core.targets import get_target
from wand_assets.data.windows import WindowSet
from wand_assets.device import renode, simulators
from wand_assets.device.firmware_build import ELF_NAME
from wand_assets.device.protocol import DeviceClient
from wand_assets.device.results import instruction_counts
from wand_assets.device.session import evaluate_on_device
from wand_assets.training.model import as_model_input

RVV, SCALAR = "rv32imf_zve32f_vlen512", "rv32imf"
RVV_INLINE = "rv32imf_zve32f_vlen512_inline"  # the same kernels, IREE's inline execution model
RVV_EMITC = "rv32imf_zve32f_vlen512_inline_emitc"  # the inline module compiled to C, linked in
# (metric, "now" as issue 10 filed it, goal as a predicate on the measured value, goal's text)
KENNING_GOAL = 60_000  # 4× better than the seed's 242,006
MARGINAL_GOAL = {RVV: 40_000, RVV_INLINE: 40_000, RVV_EMITC: 40_000, SCALAR: 200_000}
MARGINAL_NOW = {RVV: "79,302", RVV_INLINE: "79,302 (RVV)", RVV_EMITC: "79,302 (RVV)", SCALAR: "289,173"}
KIND = {RVV: "RVV", RVV_INLINE: "RVV inline", RVV_EMITC: "RVV inline EmitC", SCALAR: "scalar"}
TEXT_GOAL = 200 * 1024
HEAP_GOAL = 100 * 1024
QEMU_WALL_GOAL_S = 30.0
RENODE_WALL_GOAL_S = 60.0
NOW: dict[str, str] = {
    "kenning_renode": "462,818 (RVV) / 659,302 (scalar)",
    "text": "425,564 B",
    "heap": "156,092 B",
    "qemu_wall": "69-88 s",
    "renode_wall": "50-75 s + 40-111 s parsing",
}


def run(backend: str, instance: dg.DagsterInstance, target_name: str, windows: np.ndarray, workdir: Path) -> dict:
    target = get_target(target_name)
    elf = latest_entry(instance, "firmware", target_name) / ELF_NAME
    vmfb = (latest_entry(instance, "compiled_model", target_name) / "model.vmfb").read_bytes()
    started = time.monotonic()
    setup = renode.RenodeSetup() if backend == "renode" else None
    with simulators.open_session(backend, elf, target, workdir, renode_setup=setup) as session:
        device_run = evaluate_on_device(DeviceClient(session.port, timeout_s=120.0), MODEL_IO, vmfb, windows)
    wall = time.monotonic() - started  # Renode's statistics are parsed when the session ends
    counts = instruction_counts(device_run, len(windows), getattr(session, "statistics", None))
    return {**counts, "wall_seconds": wall, "heap_bytes_peak": device_run.final_stats.get("heap_bytes_peak", 0)}


def row(metric: str, now: str, value: float | None, goal: float, unit: str = "") -> str:
    if value is None:
        return f"| {metric} | {now} | ≤ {goal:,.0f}{unit} | (not measured) |"
    shown = f"{value:,.1f}{unit}" if unit == " s" else f"{value:,.0f}{unit}"
    return f"| {metric} | {now} → **{shown}** | ≤ {goal:,.0f}{unit} | {'yes' if value <= goal else 'no'} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dagster-home", default=os.environ.get("DAGSTER_HOME", ".dagster_home"))
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 140], help="0 = the whole test split")
    parser.add_argument("--no-renode", action="store_true", help="QEMU only")
    args = parser.parse_args()
    instance = dg.DagsterInstance.local_temp(tempdir=str(Path(args.dagster_home).absolute()))
    test = WindowSet.load(latest_entry(instance, "gesture_windows") / "windows.npz").select("test")
    backends = ["qemu"] if args.no_renode else ["qemu", "renode"]
    print(f"seed (Kenning, Springbok, RVV, published): {SEED.instructions_per_pass:,} instructions per pass")
    with tempfile.TemporaryDirectory(prefix="wand-goals-") as tmp:
        for n in args.windows:
            windows = as_model_input(test.x[:n] if n else test.x)
            print(f"\n### {len(windows)} windows\n")
            print("| metric | now | goal | met? |")
            print("|---|---|---|---|")
            for name in (RVV, RVV_INLINE, RVV_EMITC, SCALAR):
                m = {b: run(b, instance, name, windows, Path(tmp) / f"{name}-{b}-{n}") for b in backends}
                text = json.loads((latest_entry(instance, "firmware", name) / "build.json").read_text())["text_bytes"]
                kind = KIND[name]
                r = m.get("renode", {})
                print(
                    row(
                        f"{kind}, Kenning's definition (Renode counters)",
                        NOW["kenning_renode"],
                        r.get("kenning_per_pass_renode"),
                        KENNING_GOAL,
                    )
                )
                for b in backends:
                    print(
                        row(
                            f"{kind}, Kenning's definition (device STATS, {b})",
                            "(not reported)",
                            m[b]["kenning_per_pass_stats"],
                            KENNING_GOAL,
                        )
                    )
                print(
                    row(
                        f"{kind}, marginal per invoke (minstret)",
                        MARGINAL_NOW[name],
                        m["qemu"]["marginal_per_invoke_median"],
                        MARGINAL_GOAL[name],
                    )
                )
                print(row(f"{kind}, firmware .text", NOW["text"], text, TEXT_GOAL, " B"))
                print(row(f"{kind}, peak heap", NOW["heap"], m["qemu"]["heap_bytes_peak"], HEAP_GOAL, " B"))
                print(row(f"{kind}, QEMU wall", NOW["qemu_wall"], m["qemu"]["wall_seconds"], QEMU_WALL_GOAL_S, " s"))
                print(
                    row(
                        f"{kind}, Renode wall (with profiler and parsing)",
                        NOW["renode_wall"],
                        r.get("wall_seconds"),
                        RENODE_WALL_GOAL_S,
                        " s",
                    )
                )


if __name__ == "__main__":
    main()
