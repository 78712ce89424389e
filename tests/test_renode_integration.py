"""The Renode backend with Renode itself: the device evaluation of both targets through Dagster with
the parity gate and Kenning's renode_stats, predictions equal to QEMU's, the report's Renode sections,
teardown and errors.

Needs Renode + pyrenode3 (``PYRENODE_BUILD_DIR`` + ``PYRENODE_RUNTIME``, or ``PYRENODE_PKG``); the
firmware, models and windows come from the suite's own materialization (``device_pipeline``).
"""

import json
import os

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import DEVICE_WINDOWS, SPRINGBOK_TARGET, SPRINGBOK_TWIN, TESTED_TARGETS, pipeline_resources, quick_config

from wand_assets.core.handoff import latest_entry
from wand_assets.core.targets import get_target
from wand_assets.definitions import ASSET_CHECKS, ASSETS, RESOURCES
from wand_assets.device import firmware_build, renode, simulators
from wand_assets.device.resources import SimulatorResource

pytestmark = pytest.mark.slow

try:
    renode.check_renode_available()
    RENODE_MISSING = ""
except renode.RenodeUnavailable as exc:
    RENODE_MISSING = f"Renode not available: set PYRENODE_BUILD_DIR+PYRENODE_RUNTIME or PYRENODE_PKG ({exc})"

needs_renode = pytest.mark.skipif(bool(RENODE_MISSING), reason=RENODE_MISSING or "Renode available")


@pytest.fixture(scope="module")
def renode_run(device_pipeline_copy, dataset_dir):
    """Both device targets evaluated in Renode through Dagster, then the report, on a copy of the suite's artifacts."""
    if RENODE_MISSING:
        pytest.skip(RENODE_MISSING)
    resources = {
        **RESOURCES,
        **pipeline_resources(device_pipeline_copy.root, dataset_dir),
        "simulator": SimulatorResource(backend="renode"),
    }
    everything = [*ASSETS, *ASSET_CHECKS]
    config = dg.RunConfig(ops={"device_evaluation": quick_config()["device_evaluation"]})
    results = {
        target: dg.materialize(
            everything,
            selection=["device_evaluation"],
            partition_key=target,
            instance=device_pipeline_copy.instance,
            resources=resources,
            run_config=config,
        )
        for target in TESTED_TARGETS
    }
    results["report"] = dg.materialize(
        everything, selection=["evaluation_report"], instance=device_pipeline_copy.instance, resources=resources
    )
    return device_pipeline_copy.instance, results


def device_entry(instance, target):
    return latest_entry(instance, "device_evaluation", target)


@needs_renode
@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_renode_predictions_equal_qemus(renode_run, device_pipeline, target):
    instance, results = renode_run
    (gate,) = [c for c in results[target].get_asset_check_evaluations() if c.check_name == "device_matches_host"]
    assert gate.passed
    entry = device_entry(instance, target)
    summary = json.loads((entry / "summary.json").read_text())
    assert summary["simulator"]["name"] == "renode" and summary["simulator"]["version"].startswith("Renode ")
    on_renode = pd.read_parquet(entry / "results.parquet")
    on_qemu = pd.read_parquet(device_entry(device_pipeline.instance, target) / "results.parquet")
    assert len(on_renode) == len(on_qemu) == DEVICE_WINDOWS
    scores = [c for c in on_qemu.columns if c.startswith("device_") and c != "device_class"]
    assert np.array_equal(on_renode["device_class"], on_qemu["device_class"])
    assert np.abs(on_renode[scores].to_numpy() - on_qemu[scores].to_numpy()).max() <= 1e-6
    # The same ELF and model: the device's own instruction count agrees across simulators.
    assert on_renode["inference_instructions"].median() == pytest.approx(on_qemu["inference_instructions"].median(), rel=0.01)


@needs_renode
@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_renode_stats_follow_kennings_definitions(renode_run, target):
    instance, results = renode_run
    entry = device_entry(instance, target)
    stats = json.loads((entry / "renode_stats.json").read_text())
    measurements = json.loads((entry / "measurements.json").read_text())
    instructions = pd.read_parquet(entry / "results.parquet")["inference_instructions"]
    assert {"opcode_counters", "executed_instructions", "memory_accesses", "peripheral_accesses"} <= set(measurements)
    assert len(stats["request_window_instructions"]) == DEVICE_WINDOWS
    assert min(stats["request_window_instructions"]) >= instructions.median()
    assert stats["instructions_per_inference_pass"] > instructions.median()
    if get_target(target).has_vector:
        assert stats["vector_opcodes_fraction"] > 0.01
        assert stats["inference"]["vector_opcodes_fraction"] > stats["vector_opcodes_fraction"]
        assert any(op.startswith("vf") for op in stats["sorted_vector_opcode_counters"])
    else:
        assert stats["vector_opcodes_fraction"] == 0.0
    assert sum(stats["memory_accesses"]["read"]) > 0 and sum(stats["peripheral_accesses"]["uart0"]["write"]) > 0
    assert sum(stats["executed_instructions"]["cpu"]) > 0
    metadata = results[target].asset_materializations_for_node("device_evaluation")[0].metadata
    assert metadata["renode_instructions_per_inference_pass"].value == pytest.approx(stats["instructions_per_inference_pass"])
    print(
        f"\n{target}: {DEVICE_WINDOWS} windows; Renode {stats['instructions_per_inference_pass']:,.0f} instructions per pass, "
        f"vector share {100 * stats['vector_opcodes_fraction']:.2f} % (within PROCESS: "
        f"{stats['inference']['instructions_per_inference_pass']:,.0f} per pass, "
        f"{100 * stats['inference']['vector_opcodes_fraction']:.2f} %), device {instructions.median():,.0f} "
        f"per inference; session {stats['session_wall_seconds']:.1f} s, worker peak RSS "
        f"{stats['worker_peak_rss_kib'] / 1024:.0f} MiB"
    )


@needs_renode
@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_the_device_counts_the_whole_session_in_both_simulators(renode_run, device_pipeline, target):
    instance, _ = renode_run
    for simulator, entry in (
        ("renode", device_entry(instance, target)),
        ("qemu", device_entry(device_pipeline.instance, target)),
    ):
        summary = json.loads((entry / "summary.json").read_text())
        counts = summary["instruction_counts"]
        per_invoke = pd.read_parquet(entry / "results.parquet")["inference_instructions"]
        assert counts["session_instructions_stats"] == summary["final_stats"]["total_instructions"]
        assert counts["session_instructions_stats"] > per_invoke.sum(), simulator
        assert counts["kenning_per_pass_stats"] == pytest.approx(counts["session_instructions_stats"] / DEVICE_WINDOWS)
        assert counts["marginal_per_invoke_median"] == per_invoke.median()
        print(
            f"\n{target} {simulator}: Kenning's definition from STATS {counts['kenning_per_pass_stats']:,.0f}, "
            f"from Renode {counts['kenning_per_pass_renode'] or 0:,.0f}, marginal {per_invoke.median():,.0f}"
        )
    renode_counts = json.loads((device_entry(instance, target) / "summary.json").read_text())["instruction_counts"]
    # Renode's figure counts the evaluation loop only; the device's counts from reset (boot, IOSPEC and
    # MODEL upload too) up to its last STATS, which the loop's end follows closely.
    assert renode_counts["kenning_per_pass_stats"] >= 0.95 * renode_counts["kenning_per_pass_renode"]


@needs_renode
def test_report_shows_renode_statistics_per_target(renode_run):
    instance, results = renode_run
    assert results["report"].success
    entry = latest_entry(instance, "evaluation_report")
    markdown = (entry / "report.md").read_text()
    for target in TESTED_TARGETS:
        assert f"Renode statistics — {target}" in markdown
    variants = markdown.split("### Variants", 1)[1].split("\n### ", 1)[0]
    for target in TESTED_TARGETS:
        per_pass = json.loads((device_entry(instance, target) / "renode_stats.json").read_text())[
            "instructions_per_inference_pass"
        ]
        assert f"{per_pass:,.0f}" in variants  # Kenning's definition, from the Renode session
    assert "data:image/png;base64," in (entry / "report.html").read_text()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def firmware_elf(device_pipeline, target: str):
    return latest_entry(device_pipeline.instance, "firmware", target) / firmware_build.ELF_NAME


@needs_renode
def test_worker_is_gone_after_an_error_in_the_session(device_pipeline, tmp_path):
    elf = firmware_elf(device_pipeline, "rv32imf")
    with (  # noqa: PT012 - the error is raised inside the session on purpose
        pytest.raises(simulators.DeviceSessionError, match="boom"),
        simulators.open_session("renode", elf, get_target("rv32imf"), tmp_path) as session,
    ):
        assert isinstance(session, renode.RenodeSession)  # what the "renode" backend opens
        pid = session.worker.process.pid
        raise RuntimeError("boom")
    assert isinstance(session, renode.RenodeSession)  # again for mypy: narrowing does not outlast a `with` that may swallow
    assert session.statistics is None
    assert not _group_alive(pid)


@needs_renode
def test_monitor_errors_are_reported_with_the_command(device_pipeline, tmp_path):
    elf = firmware_elf(device_pipeline, "rv32imf")
    setup = renode.RenodeSetup(uart="sysbus.no_such_uart")
    with (
        pytest.raises(renode.SimulatorError, match=r"sysbus\.no_such_uart"),
        renode.start_renode(elf, get_target("rv32imf"), tmp_path, setup=setup),
    ):
        pass


@pytest.fixture(scope="module")
def springbok_run(device_pipeline_copy, dataset_dir, springbok_dir):
    """The Springbok target built and evaluated through Dagster on the seed's own Renode files, then the report."""
    if RENODE_MISSING:
        pytest.skip(RENODE_MISSING)
    resources = {
        **RESOURCES,
        **pipeline_resources(device_pipeline_copy.root, dataset_dir),
        "simulator": SimulatorResource(backend="renode", renode_platform_dir=str(springbok_dir)),
    }
    everything = [*ASSETS, *ASSET_CHECKS]
    config = dg.RunConfig(ops={"device_evaluation": quick_config()["device_evaluation"]})
    result = dg.materialize(
        everything,
        selection=["compiled_model", "firmware", "device_evaluation"],
        partition_key=SPRINGBOK_TARGET,
        instance=device_pipeline_copy.instance,
        resources=resources,
        run_config=config,
    )
    instance = device_pipeline_copy.instance
    report = dg.materialize(everything, selection=["evaluation_report"], instance=instance, resources=resources)
    return instance, result, report


@needs_renode
def test_springbok_evaluates_on_the_seeds_platform_files(springbok_run, device_pipeline, springbok_dir):
    instance, result, _ = springbok_run
    (gate,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "device_matches_host"]
    assert gate.passed
    entry = device_entry(instance, SPRINGBOK_TARGET)
    summary = json.loads((entry / "summary.json").read_text())
    assert summary["simulator"]["script"].endswith("springbok.resc")
    assert summary["simulator"]["post_start_commands"] == ["sysbus.vec_controlblock WriteDoubleWord 0xc 0"]
    assert str(springbok_dir / "springbok.repl") in summary["simulator"]["variables"].values()
    # The log came through simprint into Renode's log.
    assert "Runtime started" in (entry / "firmware.log").read_text()
    # The same kernels as the vlen512 target on QEMU's virt board: the same predictions and invoke count.
    on_springbok = pd.read_parquet(entry / "results.parquet")
    twin = pd.read_parquet(device_entry(device_pipeline.instance, SPRINGBOK_TWIN) / "results.parquet")
    scores = [c for c in twin.columns if c.startswith("device_") and c != "device_class"]
    assert len(on_springbok) == DEVICE_WINDOWS
    assert np.array_equal(on_springbok["device_class"], twin["device_class"])
    assert np.abs(on_springbok[scores].to_numpy() - twin[scores].to_numpy()).max() <= 1e-6
    assert on_springbok["inference_instructions"].median() == pytest.approx(twin["inference_instructions"].median(), rel=0.01)
    stats = json.loads((entry / "renode_stats.json").read_text())
    assert stats["vector_opcodes_fraction"] > 0.01
    assert stats["instructions_per_inference_pass"] > twin["inference_instructions"].median()
    assert len(stats["request_window_instructions"]) == DEVICE_WINDOWS
    metadata = result.asset_materializations_for_node("device_evaluation")[0].metadata
    assert metadata["renode_instructions_per_inference_pass"].value == pytest.approx(stats["instructions_per_inference_pass"])
    device = on_springbok["inference_instructions"].median()
    print(
        f"\n{SPRINGBOK_TARGET}: {DEVICE_WINDOWS} windows; Renode {stats['instructions_per_inference_pass']:,.0f} "
        f"instructions per pass, vector share {100 * stats['vector_opcodes_fraction']:.2f} %; device {device:,.0f} "
        f"per inference, {1e3 * on_springbok['simulated_seconds'].mean():.4f} ms simulated; "
        f"session {stats['session_wall_seconds']:.1f} s"
    )


@needs_renode
def test_report_shows_springbok_beside_the_wand_board_and_the_seed(springbok_run):
    from wand_assets.core.seed import SEED

    instance, _, report = springbok_run
    assert report.success
    markdown = (latest_entry(instance, "evaluation_report") / "report.md").read_text()
    section = markdown.split("### Against the seed", 1)[1].split("\n### ", 1)[0]
    assert SPRINGBOK_TARGET in section and f"{SEED.instructions_per_pass:,}" in section
    assert f"{SEED.inference_ms_mean:.3f}" in section and f"{100 * SEED.vector_share:.1f}" in section
    per_pass = json.loads((device_entry(instance, SPRINGBOK_TARGET) / "renode_stats.json").read_text())
    assert f"{per_pass['instructions_per_inference_pass']:,.0f}" in section
