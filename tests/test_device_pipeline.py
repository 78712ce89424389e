"""The device half through Dagster: firmware built with the real IREE runtime for both rv32 targets,
the device evaluation in QEMU with its blocking parity gate, the regression check on a second
materialization, the nightly forced re-run, two targets in parallel, and the report's device sections.
"""

import datetime
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import DEVICE_WINDOWS, REPO, TESTED_TARGETS, pipeline_resources, quick_config, scheduled_run_requests

from wand_assets.automation import nightly_device_evaluation
from wand_assets.core.handoff import latest_entry
from wand_assets.core.resources import QualityGates
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.definitions import ASSET_CHECKS, ASSETS, RESOURCES
from wand_assets.device import firmware_build
from wand_assets.device.resources import SimulatorResource

pytestmark = pytest.mark.slow

RISCV_MACHINE = 0xF3


def summary(instance, target):
    return json.loads((latest_entry(instance, "device_evaluation", target) / "summary.json").read_text())


def materializations(results, asset):
    return {
        e.partition: e.event_specific_data.materialization
        for r in results
        for e in r.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    }


def check_evaluations(results, name, partition=None):
    return [
        c
        for r in results
        if partition is None or r.dagster_run.tags.get("dagster/partition") == partition
        for c in r.get_asset_check_evaluations()
        if c.check_name == name
    ]


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_firmware_is_built_with_the_real_iree_runtime(device_pipeline, target):
    metadata = materializations(device_pipeline.results, "firmware")[target].metadata
    elf = latest_entry(device_pipeline.instance, "firmware", target) / firmware_build.ELF_NAME
    head = elf.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[4] == 1 and int.from_bytes(head[18:20], "little") == RISCV_MACHINE
    assert metadata["iree_source_version"].value.startswith(firmware_build.IREE_SOURCE_VERSION)
    assert metadata["text_bytes"].value > 200_000  # the IREE VM, HAL and loader are in
    assert metadata["sha256"].value == firmware_build.sha256_file(elf)


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_compiler_output_goes_to_the_build_log_not_the_event_log(device_pipeline, target):
    metadata = materializations(device_pipeline.results, "firmware")[target].metadata
    build_log = metadata["build_log"].value
    with open(build_log, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert sum("Building C object" in line for line in lines) > 100
    (run,) = [r for r in device_pipeline.results if target in materializations([r], "firmware")]
    messages = [
        e.user_message
        for e in device_pipeline.instance.all_logs(run.run_id)
        if e.step_key == "firmware" and e.dagster_event is None
    ]
    assert 0 < len(messages) < 50
    assert not any("Building C object" in m for m in messages)
    assert any(firmware_build.BUILD_LOG_NAME in m for m in messages)
    # The build tree: under the artifact root, one per target and fingerprint (never shared by two runs).
    entry = latest_entry(device_pipeline.instance, "firmware", target)
    assert (device_pipeline.root / "build" / "firmware" / target / entry.name / firmware_build.BUILD_LOG_NAME).is_file()


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_device_reproduces_the_host_on_every_evaluated_window(device_pipeline, target):
    s = summary(device_pipeline.instance, target)
    host = pd.read_parquet(latest_entry(device_pipeline.instance, "host_evaluation") / "predictions.parquet")
    assert s["windows"] == DEVICE_WINDOWS
    assert s["argmax_mismatches_vs_host"] == 0
    assert s["max_abs_diff_vs_host"] <= 1e-5
    results = pd.read_parquet(latest_entry(device_pipeline.instance, "device_evaluation", target) / "results.parquet")
    assert np.array_equal(results["device_class"].to_numpy(), host["iree_class"].to_numpy()[:DEVICE_WINDOWS])
    (gate,) = check_evaluations(device_pipeline.results, "device_matches_host", partition=target)
    assert gate.passed and gate.metadata["argmax_mismatches"].value == 0


def test_vector_target_needs_fewer_instructions_than_scalar(device_pipeline):
    scalar, vector = (summary(device_pipeline.instance, t)["instructions_per_inference_median"] for t in TESTED_TARGETS)
    assert 0 < vector < scalar


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_measurements_use_kennings_vocabulary(device_pipeline, target):
    entry = latest_entry(device_pipeline.instance, "device_evaluation", target)
    m = json.loads((entry / "measurements.json").read_text())
    assert m["total"] == len(m["protocol_inference_step"]) == len(m["inference_instructions"]) == DEVICE_WINDOWS
    assert sum(map(sum, m["eval_confusion_matrix"])) == m["total"]
    assert set(m["allocation_stats"]) == {
        "host_bytes_peak",
        "host_bytes_allocated",
        "host_bytes_freed",
        "device_bytes_peak",
        "device_bytes_allocated",
        "device_bytes_freed",
    }
    assert m["compiled_model_size"] > 0
    assert m["build_cfg"]["simulator"]["name"] == "qemu"


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_firmware_size_per_component_adds_up_to_the_elf(device_pipeline, target):
    metadata = materializations(device_pipeline.results, "firmware")[target].metadata
    build = json.loads((latest_entry(device_pipeline.instance, "firmware", target) / "build.json").read_text())
    rows = {r["component"]: r for r in build["size_breakdown"]}
    assert {"IREE VM", "IREE HAL", "libc + libgcc"} <= set(rows) and rows["IREE VM"]["text"] > 0
    # Merged string constants are counted before merging: within 1 % of `size`'s text, the rest exact.
    assert abs(rows["total"]["text"] - build["text_bytes"]) <= 0.01 * build["text_bytes"]
    assert (rows["total"]["data"], rows["total"]["bss"]) == (build["data_bytes"], build["bss_bytes"])
    assert len(metadata["size_breakdown"].value.records) == len(rows)


@pytest.mark.parametrize("target", TESTED_TARGETS)
def test_instruction_profile_accounts_for_one_invoke(device_pipeline, target):
    entry = latest_entry(device_pipeline.instance, "device_evaluation", target)
    profile = json.loads((entry / "profile.json").read_text())
    # The trace is of the evaluation's first two windows; the profile is the second's invoke. The
    # device's minstret brackets the same call (plus a few instructions of counter reads); QEMU's log
    # of blocks interrupted under -icount leaves the trace within 0.1 % of it.
    second = pd.read_parquet(entry / "results.parquet")["inference_instructions"].iloc[1]
    assert abs(second - profile["instructions"]) <= 0.001 * second
    components = dict(profile["per_component"])
    assert sum(components.values()) == profile["instructions"] == sum(n for _, _, n in profile["per_function"])
    assert components["model dispatches"] > 0.2 * profile["instructions"]
    assert components["IREE VM"] > 0 and components["IREE HAL"] > 0


def test_report_has_a_current_device_row_per_target(device_pipeline):
    entry = latest_entry(device_pipeline.instance, "evaluation_report")
    markdown = (entry / "report.md").read_text()
    assert "No current device evaluation" not in markdown
    section = markdown.split("## Device statistics", 1)[1].split("\n## ", 1)[0]
    for target in TESTED_TARGETS:
        instructions = summary(device_pipeline.instance, target)["instructions_per_inference_median"]
        assert target in section and f"{instructions:,.0f}" in section
    (report,) = [m for r in device_pipeline.results for m in r.asset_materializations_for_node("evaluation_report")]
    rows = [row.data for row in report.metadata["device_results"].value.records]
    variants = markdown.split("### Variants", 1)[1].split("\n## ", 1)[0]
    assert all(t in variants for t in TESTED_TARGETS) and "Pareto plot of the variants" in variants
    expected = {t: "current" if t in TESTED_TARGETS else "missing" for t in DEVICE_TARGETS}
    assert {r["target"]: r["status"] for r in rows} == expected
    for row in rows:
        if row["target"] in TESTED_TARGETS:
            assert row["measured_vmfb_sha256"] == summary(device_pipeline.instance, row["target"])["inputs"]["vmfb"]
        else:
            assert row["measured_vmfb_sha256"] == ""


def test_report_shows_size_per_component_and_where_the_instructions_go(device_pipeline):
    markdown = (latest_entry(device_pipeline.instance, "evaluation_report") / "report.md").read_text()
    sizes = markdown.split("### Firmware size per component", 1)[1].split("\n### ", 1)[0]
    where = markdown.split("### Where the instructions of one inference go", 1)[1].split("\n## ", 1)[0]
    for target in TESTED_TARGETS:
        build = json.loads((latest_entry(device_pipeline.instance, "firmware", target) / "build.json").read_text())
        vm = next(r for r in build["size_breakdown"] if r["component"] == "IREE VM")
        assert target in sizes and f"{vm['text']:,}" in sizes
        profile = json.loads((latest_entry(device_pipeline.instance, "device_evaluation", target) / "profile.json").read_text())
        assert f"{target}: {profile['instructions']:,} instructions" in where
        assert f"{dict(profile['per_component'])['model dispatches']:,}" in where


def test_failing_parity_gate_blocks_the_report(device_pipeline_copy, dataset_dir):
    """A device result outside the tolerance stops everything downstream of the device evaluation."""
    root = device_pipeline_copy.root
    report_before = sorted(p.name for p in (root / "evaluation_report").iterdir())
    resources = {
        **RESOURCES,
        **pipeline_resources(root, dataset_dir, gates=QualityGates(min_test_accuracy=0.5, parity_atol=-1.0)),
    }
    result = dg.materialize(
        [*ASSETS, *ASSET_CHECKS],
        selection=["device_evaluation", "evaluation_report"],
        partition_key=TESTED_TARGETS[0],
        instance=device_pipeline_copy.instance,
        resources=resources,
        run_config=dg.RunConfig(ops={"device_evaluation": quick_config()["device_evaluation"]}),
        raise_on_error=False,
    )
    (gate,) = check_evaluations([result], "device_matches_host")
    assert not gate.passed and not result.success
    assert "evaluation_report" not in {
        e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }
    assert sorted(p.name for p in (root / "evaluation_report").iterdir()) == report_before


def test_forced_reruns_compare_against_the_last_evaluation_that_passed(device_pipeline_copy, dataset_dir):
    """The nightly schedule's forced re-run evaluates again into a new entry; no_regression compares it with
    the newest evaluation that passed, so a regressed run never becomes the baseline."""
    target = TESTED_TARGETS[-1]
    instance = device_pipeline_copy.instance
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime.datetime.now(datetime.UTC),
        resources={"simulator": SimulatorResource()},
    )
    (request,) = [r for r in scheduled_run_requests(nightly_device_evaluation, context) if r.partition_key == target]
    ops = {
        "device_evaluation": {"config": {**request.run_config["ops"]["device_evaluation"]["config"], "windows": DEVICE_WINDOWS}}
    }
    original = instance.fetch_materializations(dg.AssetKey("device_evaluation"), limit=10).records
    (first_run,) = {r.run_id for r in original if r.partition_key == target}

    def nightly(max_instruction_growth: float):
        gates = QualityGates(min_test_accuracy=0.5, max_instruction_growth=max_instruction_growth)
        result = dg.materialize(
            [*ASSETS, *ASSET_CHECKS],
            selection=["device_evaluation"],
            partition_key=target,
            instance=instance,
            resources={**RESOURCES, **pipeline_resources(device_pipeline_copy.root, dataset_dir, gates=gates)},
            run_config={"ops": ops},
            tags=request.tags,
        )
        (check,) = check_evaluations([result], "no_regression")
        return result, check

    regressed, regressed_check = nightly(max_instruction_growth=-1.0)  # any count "grew": a regression
    again, again_check = nightly(max_instruction_growth=0.05)
    later, later_check = nightly(max_instruction_growth=0.05)
    assert not regressed_check.passed and regressed_check.metadata["baseline_run"].value == first_run
    assert again_check.passed and again_check.metadata["baseline_run"].value == first_run  # not the regressed run
    assert later_check.passed and later_check.metadata["baseline_run"].value == again.run_id
    entries = [
        r.asset_materializations_for_node("device_evaluation")[0].metadata["entry"].value for r in (regressed, again, later)
    ]
    assert len(set(entries)) == 3, "every forced run writes an entry of its own"
    messages = [e.user_message for r in (regressed, again, later) for e in instance.all_logs(r.run_id)]
    assert not any("already exists" in m for m in messages), "a forced run must evaluate again"
    assert sum("model loaded on the device" in m for m in messages) == 3


def test_all_targets_evaluate_in_parallel_without_collisions(device_pipeline_copy, monkeypatch):
    """Both device partitions as concurrent runs, each on the multiprocess executor, sharing one artifact root."""
    monkeypatch.setenv("WAND_ARTIFACT_ROOT", str(device_pipeline_copy.root))
    monkeypatch.setenv("DAGSTER_HOME", str(device_pipeline_copy.home))
    instance = dg.DagsterInstance.get()
    config = {"ops": {"device_evaluation": {"config": {"force": True, "windows": DEVICE_WINDOWS}}}}
    results = {}

    def run(target):
        results[target] = dg.execute_job(
            dg.build_reconstructable_job("wand_assets.definitions", "job", reconstructable_args=("evaluate_on_device",)),
            instance,
            run_config=config,
            tags={"dagster/partition": target},
        )

    threads = [threading.Thread(target=run, args=(t,)) for t in TESTED_TARGETS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1200)
    assert all(results[t].success for t in TESTED_TARGETS)

    def span(result):
        entries = instance.all_logs(result.run_id)
        times = {
            e.dagster_event.event_type_value: e.timestamp
            for e in entries
            if e.dagster_event is not None and e.dagster_event.step_key == "device_evaluation"
        }
        return times["STEP_START"], times["STEP_SUCCESS"]

    (start_a, end_a), (start_b, end_b) = (span(results[t]) for t in TESTED_TARGETS)
    assert start_a < end_b and start_b < end_a, "the two device evaluations did not overlap"
    simulators = [summary(instance, t)["simulator"] for t in TESTED_TARGETS]
    ports = {s["uart"] for s in simulators}
    logs = {s["command"][s["command"].index("-chardev") + 1] for s in simulators}
    assert len(ports) == len(logs) == len(TESTED_TARGETS)
    for t in TESTED_TARGETS:
        assert summary(instance, t)["argmax_mismatches_vs_host"] == 0


def test_one_dagster_command_materializes_a_targets_device_stages(device_pipeline_copy, tmp_path):
    """The user's one command: compiled model, firmware and device evaluation of one target share a
    partition set, so Dagster's own CLI takes them together."""
    target = "rv32imf_zve32f_vlen512"
    config = tmp_path / "run.yaml"
    config.write_text(f"ops:\n  device_evaluation:\n    config:\n      windows: {DEVICE_WINDOWS}\n")
    env = {**os.environ, "DAGSTER_HOME": str(device_pipeline_copy.home), "WAND_ARTIFACT_ROOT": str(device_pipeline_copy.root)}
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "wand_assets.definitions",
        "--select",
        "compiled_model,firmware,device_evaluation",
        "--partition",
        target,
        "-c",
        str(config),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    instance = dg.DagsterInstance.from_ref(device_pipeline_copy.instance.get_ref())
    (run,) = instance.get_runs(limit=1)
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    mats = [m for e in events if (m := e.asset_materialization) is not None]  # all of them, by of_type
    materialized = {(m.asset_key.to_user_string(), m.partition) for m in mats}
    assert materialized == {(a, target) for a in ("compiled_model", "firmware", "device_evaluation")}
