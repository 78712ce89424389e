"""The inline execution model as a target variant, through Dagster: rv32imf_zve32f_vlen512_inline
compiled in stages, its firmware built with the hal_inline + hal_loader runtime (and the leak fix),
evaluated in QEMU behind the same blocking parity gate; and the heap over many invokes.

The variant is materialized into a copy of the suite's pipeline (the head and the host reference are
reused from there), so the suite's own targets stay as they are.
"""

import json
import subprocess

import numpy as np
import pytest
from conftest import DEVICE_WINDOWS, Materialized, with_variant
from test_device_pipeline import check_evaluations, summary

from wand_assets.core.handoff import latest_entry
from wand_assets.core.targets import INLINE_DYNAMIC, get_target
from wand_assets.device import firmware_build, qemu
from wand_assets.device.protocol import DeviceClient

pytestmark = pytest.mark.slow

INLINE = "rv32imf_zve32f_vlen512_inline"
FULL_HAL = "rv32imf_zve32f_vlen512"  # the same kernels with the full HAL, in the suite's pipeline


@pytest.fixture(scope="module")
def inline_pipeline(device_pipeline_copy, dataset_dir) -> Materialized:
    return with_variant(device_pipeline_copy, dataset_dir, INLINE)


def test_inline_variant_reproduces_the_host_behind_the_parity_gate(inline_pipeline):
    s = summary(inline_pipeline.instance, INLINE)
    assert s["windows"] == DEVICE_WINDOWS
    (gate,) = check_evaluations(inline_pipeline.results, "device_matches_host", partition=INLINE)
    assert gate.passed, gate.metadata


def test_inline_variant_was_compiled_in_stages_and_links_the_inline_runtime(inline_pipeline):
    compiled = latest_entry(inline_pipeline.instance, "compiled_model", INLINE)
    commands = json.loads((compiled / "compile.json").read_text())["commands"]
    assert len(commands) == 3 and all(f"--iree-execution-model={INLINE_DYNAMIC}" in c for c in commands)
    elf = latest_entry(inline_pipeline.instance, "firmware", INLINE) / firmware_build.ELF_NAME
    symbols = subprocess.run(
        [f"{firmware_build.TOOLCHAIN_PREFIX}nm", str(elf)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "iree_hal_inline_module_create" in symbols and "iree_hal_loader_module_create" in symbols
    assert "iree_hal_sync_device_create" not in symbols  # no HAL device
    build_log = (
        inline_pipeline.root / "build" / "firmware" / INLINE / elf.parent.name / firmware_build.BUILD_LOG_NAME
    ).read_text()
    assert "vm/buffer.c compiled from a fixed copy" in build_log


def test_inline_variant_runs_fewer_instructions_in_less_text_than_the_full_hal(inline_pipeline):
    inline, full = (summary(inline_pipeline.instance, t) for t in (INLINE, FULL_HAL))
    assert 0 < inline["instructions_per_inference_median"] < full["instructions_per_inference_median"]
    text = {
        t: json.loads((latest_entry(inline_pipeline.instance, "firmware", t) / "build.json").read_text())["text_bytes"]
        for t in (INLINE, FULL_HAL)
    }
    assert text[INLINE] < text[FULL_HAL]
    assert 0 < inline["final_stats"]["heap_bytes_peak"] < full["final_stats"]["heap_bytes_peak"]


@pytest.mark.parametrize("target", [INLINE, FULL_HAL])
def test_heap_does_not_grow_across_many_invokes(inline_pipeline, target, tmp_path):
    """IREE 3.11's inline HAL leaked every buffer of an invoke (~17.9 KB each) until the fix in
    firmware/cmake/iree_inline_fixes.cmake; the full HAL is the control."""
    compiled = latest_entry(inline_pipeline.instance, "compiled_model", target)
    elf = latest_entry(inline_pipeline.instance, "firmware", target) / firmware_build.ELF_NAME
    window = np.random.default_rng(3).normal(size=384).astype(np.float32).tobytes()
    with qemu.start_qemu(elf, get_target(target), tmp_path) as session:
        client = DeviceClient(session.port)
        client.load_iospec((compiled / "model.iospec.bin").read_bytes())
        client.load_model((compiled / "model.vmfb").read_bytes())
        client.send_input(window)
        readings = []
        for count in (5, 60):
            while client.read_stats()["inference_count"] < count:
                client.run_inference()
            readings.append(client.read_stats())
        outputs = client.read_output()
    early, late = readings
    assert late["inference_count"] == 60 and len(outputs) == 16
    assert late["heap_bytes_peak"] == early["heap_bytes_peak"], (early, late)
    # The allocator's statistics (IREE_STATISTICS_ENABLE): the inline HAL's buffers are host memory,
    # the firmware's input buffer device memory; what is live after 5 invokes is live after 60.
    live = [r[f"{k}_bytes_allocated"] - r[f"{k}_bytes_freed"] for r in readings for k in ("host", "device")]
    assert live[:2] == live[2:], live
    assert late["host_bytes_allocated"] + late["device_bytes_allocated"] > 0  # statistics are compiled in


def test_report_variants_table_names_the_execution_model(inline_pipeline):
    markdown = (latest_entry(inline_pipeline.instance, "evaluation_report") / "report.md").read_text()
    variants = markdown.split("### Variants", 1)[1].split("\n#", 1)[0]  # up to the next heading
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in variants.splitlines() if line.startswith("|")]
    column = lines[0].index("IREE execution model")
    models = {cells[0]: cells[column] for cells in lines[2:]}
    assert models[INLINE] == INLINE_DYNAMIC and models[FULL_HAL] == "async-internal"
