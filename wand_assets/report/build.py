"""Collects every stage's stored results into the evaluation report (plain Python: reads the artifact store)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wand_assets.core import plots
from wand_assets.core.artifacts import sha256_file
from wand_assets.core.seed import SEED
from wand_assets.core.targets import DEVICE_TARGETS, TARGETS
from wand_assets.data.dataset import CLASSES
from wand_assets.device.firmware_build import ELF_NAME
from wand_assets.device.renode import stats as renode_stats
from wand_assets.report.document import (
    Figure,
    Heading,
    Paragraph,
    Report,
    Table,
)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class ReportInputs:
    """The entries the report reads, as the orchestrator handed them over (per device target where partitioned)."""

    archive: Path
    windows: Path
    model: Path
    host_model: Path
    host: Path
    compiled: dict[str, Path] = field(default_factory=dict)
    firmware: dict[str, Path] = field(default_factory=dict)
    devices: dict[str, Path] = field(default_factory=dict)


CURRENT, STALE, MISSING = "current", "stale", "missing"


def device_status(inputs: ReportInputs) -> list[dict]:
    """Per device target: did its newest evaluation measure the current compiled model and firmware?"""
    rows = []
    for t in DEVICE_TARGETS:
        row = {"target": t, "status": MISSING, "measured_vmfb_sha256": "", "measured_firmware_sha256": ""}
        if (d := inputs.devices.get(t)) is not None:
            measured = _json(d / "summary.json")["inputs"]
            row["measured_vmfb_sha256"], row["measured_firmware_sha256"] = measured["vmfb"], measured["elf"]
            vmfb, elf = inputs.compiled.get(t), inputs.firmware.get(t)
            is_current = (
                vmfb is not None
                and elf is not None
                and measured["vmfb"] == sha256_file(vmfb / "model.vmfb")
                and measured["elf"] == sha256_file(elf / ELF_NAME)
            )
            row["status"] = CURRENT if is_current else STALE
        rows.append(row)
    return rows


def build_report(inputs: ReportInputs) -> tuple[Report, dict]:
    """The report and a flat summary of its headline numbers (for metadata and regression checks).

    Device results that measured an older model or firmware than the current ones are listed as stale
    and kept out of every table of numbers.
    """
    training = _json(inputs.model / "training.json")
    host = _json(inputs.host / "summary.json")
    status = device_status(inputs)
    current = [r["target"] for r in status if r["status"] == CURRENT]
    devices = {t: inputs.devices[t] for t in current}
    device = {t: _json(d / "summary.json") for t, d in devices.items()}
    results = {t: pd.read_parquet(d / "results.parquet") for t, d in devices.items()}
    report = Report("wand — Magic Wand on a simulated RISC-V microcontroller")
    summary: dict = {"host_accuracy": host["metrics"]["accuracy"], "targets": {}, "device_results": status}

    report.add(Heading("Device results"))
    report.add(
        Table(
            ["target", "status", "measured .vmfb sha256", "measured firmware sha256"],
            [[r["target"], r["status"], r["measured_vmfb_sha256"][:16], r["measured_firmware_sha256"][:16]] for r in status],
            "current: measured the current compiled model and firmware; stale: older ones (left out below); "
            "missing: never evaluated",
        )
    )

    # Performance ------------------------------------------------------------------------------
    report.add(Heading("Performance"))
    if results:
        rows = []
        for t, frame in results.items():
            ms = frame["simulated_seconds"].to_numpy() * 1e3
            rows.append([t, ms[0], ms.mean(), float(np.median(ms)), ms.std(), device[t]["simulator"].get("name", "")])
        report.add(
            Table(
                ["target", "first (ms)", "mean (ms)", "median (ms)", "std (ms)", "simulator"],
                rows,
                "Simulated inference time per window (device timer around iree_vm_invoke)",
            )
        )
    else:
        report.add(Paragraph("No current device evaluation: materialize firmware and device_evaluation (needs IREE_SOURCE_DIR)."))
    report.add(Paragraph(f"Host IREE (x86-64, local-sync): {1000 * host['seconds'] / host['windows']:.3f} ms wall per window."))

    # Classification ---------------------------------------------------------------------------
    report.add(Heading("Classification"))
    sources = {
        "Keras": training["test"],
        "host IREE": host["metrics"],
        **{f"device {t}": s["metrics"] for t, s in device.items()},
    }
    report.add(
        Table(
            ["model run", "accuracy", "G-mean", "windows"],
            [[name, m["accuracy"], m["g_mean"], int(np.sum(m["confusion_matrix"]))] for name, m in sources.items()],
            "Test split (persons never seen in training)",
        )
    )
    main_name, main = next(reversed(sources.items()))
    report.add(
        Table(
            ["class", "support", "precision", "recall", "F1"],
            [[r["class"], r["support"], r["precision"], r["recall"], r["f1"]] for r in main["per_class"]],
            f"Per class ({main_name})",
        )
    )
    for name, m in sources.items():
        if name == "Keras" or name.startswith("host") or name == main_name:
            report.add(
                Figure(plots.confusion_matrix_png(np.asarray(m["confusion_matrix"]), CLASSES, name), f"confusion matrix, {name}")
            )

    # Device statistics ------------------------------------------------------------------------
    report.add(Heading("Device statistics"))
    if device:
        rows = []
        for t, s in device.items():
            fw = _json(inputs.firmware[t] / "build.json")
            vmfb = inputs.compiled[t] / "model.vmfb"
            st = s["final_stats"]
            rows.append(
                [
                    t,
                    s["instructions_per_inference_median"],
                    s["instructions_per_inference_mean"],
                    fw["text_bytes"],
                    vmfb.stat().st_size,
                    st.get("heap_bytes_peak", 0),
                    st.get("device_bytes_peak", 0),
                    st.get("stack_bytes_peak", 0),
                ]
            )
            summary["targets"][t] = {
                "accuracy": s["accuracy"],
                "instructions_per_inference_median": s["instructions_per_inference_median"],
                "simulated_ms_mean": s["simulated_ms_mean"],
            }
        report.add(
            Table(
                [
                    "target",
                    "instructions/inference (median)",
                    "(mean)",
                    "firmware .text (B)",
                    ".vmfb (B)",
                    "heap peak (B)",
                    "IREE device peak (B)",
                    "stack peak (B)",
                ],
                rows,
            )
        )
        medians = {t: s["instructions_per_inference_median"] for t, s in device.items()}
        scalar = [t for t in medians if not TARGETS[t].has_vector]
        vector = sorted((t for t in medians if TARGETS[t].has_vector and TARGETS[t].iree_optimise), key=medians.__getitem__)
        if scalar and vector:
            speedup = medians[scalar[0]] / medians[vector[0]]
            summary["vector_speedup"] = speedup
            report.add(
                Paragraph(f"RVV speed-up: {scalar[0]} → {vector[0]} needs {speedup:.2f}× fewer instructions per inference.")
            )
        report.add(
            Figure(
                plots.bar_png(list(medians), list(medians.values()), "instructions per inference", "instructions"),
                "instructions per inference by target",
            )
        )
        _variants_section(report, inputs, device, summary)
        _size_section(report, inputs, list(device))
        _profile_section(report, {t: d / "profile.json" for t, d in devices.items() if (d / "profile.json").is_file()}, summary)
        _seed_section(report, device, results)
        for t, d in devices.items():
            renode = d / "renode_stats.json"
            if renode.is_file():
                _renode_section(report, t, _json(renode))
    else:
        report.add(Paragraph("No device statistics yet."))

    # Lineage ----------------------------------------------------------------------------------
    report.add(Heading("Lineage"))
    manifest = _json(inputs.archive / "manifest.json")
    rows = [
        ["dataset", manifest["dataset_sha256"], f"{len(manifest['files'])} files (SHA-256 over their paths and SHA-256s)"],
        ["windows", sha256_file(inputs.windows / "windows.npz"), "windows.npz"],
        ["model", sha256_file(inputs.model / "model.keras"), f"{training['parameters']} parameters"],
        [
            "vmfb host",
            sha256_file(inputs.host_model / "model.vmfb"),
            f"iree-compile {_json(inputs.host_model / 'compile.json')['iree_compiler']}",
        ],
    ]
    for t, s in device.items():
        fw = _json(inputs.firmware[t] / "build.json")
        info = _json(inputs.compiled[t] / "compile.json")
        rows.append([f"vmfb {t} (as measured)", s["inputs"]["vmfb"], f"iree-compile {info['iree_compiler']}"])
        made_with = (
            f"gcc {fw['gcc_version']}, picolibc {fw['picolibc_version']}, "
            f"IREE {fw['iree_source_version']} {fw['iree_source_commit'] or ''}"
        )
        rows.append([f"firmware {t} (as measured)", s["inputs"]["elf"], made_with.strip()])
        protocol = s["simulator"].get("protocol", "legacy")  # evaluations before the choice spoke legacy
        rows.append(
            [f"simulator {t}", "", f"{s['simulator'].get('name')} — {s['simulator'].get('version')}, {protocol} protocol"]
        )
    report.add(Table(["artifact", "sha256", "made with"], rows))
    return report, summary


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """The names that no other point beats on both axes (lower is better on each)."""
    return {
        name
        for name, (x, y) in points.items()
        if not any(ox <= x and oy <= y and (ox < x or oy < y) for other, (ox, oy) in points.items() if other != name)
    }


def _variants_section(report: Report, inputs: ReportInputs, device: dict[str, dict], summary: dict) -> None:
    """Every evaluated (current) device variant side by side, and which are Pareto-optimal in
    instructions per inference against firmware `.text`."""
    rows, points = [], {}
    for t, s in device.items():
        text = _json(inputs.firmware[t] / "build.json")["text_bytes"]
        marginal = s["instructions_per_inference_median"]
        counts = s.get("instruction_counts") or {}
        kenning = (s.get("renode") or {}).get("instructions_per_inference_pass")
        from_stats = counts.get("kenning_per_pass_stats")
        points[t] = (float(text), float(marginal))
        rows.append(
            [
                t,
                TARGETS[t].execution_model,
                TARGETS[t].module_format,
                marginal,
                f"{from_stats:,.0f}" if from_stats else "(older firmware)",
                f"{kenning:,.0f}" if kenning else "(Renode only)",
                text,
                s["final_stats"].get("heap_bytes_peak", 0),
                s["accuracy"],
                s["simulator"].get("name", ""),
            ]
        )
    front = pareto_front(points)
    for row in rows:
        row.append("yes" if row[0] in front else "")
    seed = f"{SEED.instructions_per_pass:,}"
    rows.append(["seed (Kenning, Springbok, RVV; published)", "", "", "", seed, "", "", "", "Renode", ""])
    summary["pareto_front"] = sorted(front)
    report.add(Heading("Variants", 3))
    report.add(
        Table(
            [
                "target",
                "IREE execution model",
                "VM module (bytecode: the .vmfb interpreted; emitc: compiled to C, linked in)",
                "instructions/inference (marginal, median)",
                "per pass, Kenning's definition (device STATS)",
                "per pass, Kenning's definition (Renode counters)",
                ".text (B)",
                "heap peak (B)",
                "accuracy",
                "simulator",
                "Pareto-optimal",
            ],
            rows,
            "Marginal: the device's minstret around one invoke. Kenning's definition: every instruction of the "
            "session (boot, upload, every request; the firmware sleeps in wfi while it waits) divided by the "
            "windows, from the device's total_instructions in its last STATS reply (any simulator) and from "
            "Renode's own counters (Renode runs). The seed's row is its published figure in Kenning's definition.",
        )
    )
    if len(points) > 1:
        report.add(
            Figure(
                plots.pareto_png(
                    points,
                    front,
                    "firmware .text (bytes)",
                    "instructions per inference",
                    "instructions against code size (lower left is better)",
                ),
                "Pareto plot of the variants",
            )
        )


def _size_section(report: Report, inputs: ReportInputs, targets: list[str]) -> None:
    """Firmware bytes per component (`.text` incl. read-only data, `.data`, `.bss`) from the linker map."""
    breakdowns = {t: b for t in targets if (b := _json(inputs.firmware[t] / "build.json").get("size_breakdown"))}
    if not breakdowns:
        return
    report.add(Heading("Firmware size per component", 3))
    for t, rows in breakdowns.items():
        report.add(
            Table(
                ["component", ".text (B)", ".data (B)", ".bss (B)"],
                [[r["component"], r["text"], r["data"], r["bss"]] for r in rows],
                f"{t}, from the linker map (input sections; merged string constants are counted before merging, "
                "padding not at all). The model's dispatches are not in the firmware: they arrive in the .vmfb.",
            )
        )


def _profile_section(report: Report, profiles: dict[str, Path], summary: dict) -> None:
    """Where one inference's instructions go, per component and the top functions (QEMU trace)."""
    if not profiles:
        return
    report.add(Heading("Where the instructions of one inference go", 3))
    summary["instructions_per_component"] = {}
    for t, path in profiles.items():
        p = _json(path)
        total = max(1, p["instructions"])
        summary["instructions_per_component"][t] = dict(p["per_component"])
        report.add(
            Table(
                ["component", "instructions", "share"],
                [[c, n, f"{100 * n / total:.1f} %"] for c, n in p["per_component"]],
                f"{t}: {p['instructions']:,} instructions from the entry of iree_vm_invoke to its return "
                "(QEMU translation-block trace of the second of two windows)",
            )
        )
        report.add(
            Table(
                ["component", "function", "instructions"],
                [[c, f, n] for c, f, n in p["per_function"][:15]],
                f"{t}: the 15 functions that execute the most instructions",
            )
        )


def _seed_section(report: Report, device: dict[str, dict], results: dict[str, pd.DataFrame]) -> None:
    """Each evaluated target beside the seed's published row, on the seed's terms where measured
    (Kenning's per-pass count and vector share come from Renode sessions only)."""
    rows = []
    for t, s in device.items():
        renode = s.get("renode") or {}
        per_pass = renode.get("instructions_per_inference_pass")
        share = renode.get("vector_opcodes_fraction")
        rows.append(
            [
                t,
                TARGETS[t].device_board.name,
                s["simulator"].get("name", ""),
                f"{per_pass:,.0f}" if per_pass else "(Renode only)",
                f"{100 * share:.1f}" if share is not None else "(Renode only)",
                f"{1e3 * float(results[t]['simulated_seconds'].mean()):.3f}",
                f"{s['instructions_per_inference_median']:,.0f}",
            ]
        )
    rows.append(
        [
            "seed (published)",
            SEED.platform,
            "Renode",
            f"{SEED.instructions_per_pass:,}",
            f"{100 * SEED.vector_share:.1f}",
            f"{SEED.inference_ms_mean:.3f}",
            "(not published)",
        ]
    )
    report.add(Heading("Against the seed", 3))
    report.add(
        Table(
            [
                "target",
                "board",
                "simulator",
                "instructions per pass (Kenning's definition)",
                "vector share (%)",
                "inference (ms, simulated)",
                "instructions/inference (marginal, median)",
            ],
            rows,
            f"The seed: {SEED.source}. Per pass: every instruction of the Renode session over the windows; "
            "inference time: the device timer around the invoke (ours) or Kenning's host measurement (the seed's)",
        )
    )


def _renode_section(report: Report, target: str, stats: dict) -> None:
    """Renode-only statistics (Kenning's renode_stats), when the evaluation ran in Renode."""
    report.add(Heading(f"Renode statistics — {target}", 3))
    report.add(
        Paragraph(
            f"Whole evaluation loop (Kenning's definition): {stats['instructions_per_inference_pass']:,.0f} instructions "
            f"per inference pass, vector share {100 * stats['vector_opcodes_fraction']:.2f} %."
        )
    )
    if process := stats.get("inference"):
        report.add(
            Paragraph(
                f"Within PROCESS requests only: {process['instructions_per_inference_pass']:,.0f} instructions per pass, "
                f"vector share {100 * process['vector_opcodes_fraction']:.2f} %."
            )
        )
    top = sorted(stats["top_10_opcodes_per_inference_pass"].items(), key=lambda kv: -kv[1])
    report.add(Table(["opcode", "per inference pass"], [[k, float(v)] for k, v in top], "Top 10 opcodes"))
    for name, png in renode_stats.renode_plots(stats).items():
        report.add(Figure(png, f"{name} ({target})"))
