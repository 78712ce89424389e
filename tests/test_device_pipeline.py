"""The device half through Dagster: firmware built with the real IREE runtime for both rv32 targets,
the device evaluation in QEMU with its blocking parity gate, the regression check on a second
materialization, the nightly forced re-run, two targets in parallel, and the report's device sections.
"""

import datetime
import json
import threading

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import DEVICE_WINDOWS, pipeline_resources, quick_config

from wand_assets.automation import nightly_device_evaluation
from wand_assets.core.artifacts import ArtifactStore
from wand_assets.core.resources import QualityGates
from wand_assets.core.targets import DEVICE_TARGETS, get_target
from wand_assets.definitions import defs
from wand_assets.device import firmware_build

pytestmark = pytest.mark.slow

RISCV_MACHINE = 0xF3


def summary(root, target):
    return json.loads((ArtifactStore(root).stage("device_evaluation", target).current() / "summary.json").read_text())


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


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_firmware_is_built_with_the_real_iree_runtime(device_pipeline, target):
    metadata = materializations(device_pipeline.results, "firmware")[target].metadata
    elf = ArtifactStore(device_pipeline.root).stage("firmware", target).current() / firmware_build.ELF_NAME
    head = elf.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[4] == 1 and int.from_bytes(head[18:20], "little") == RISCV_MACHINE
    assert metadata["iree_source_version"].value.startswith(firmware_build.IREE_SOURCE_VERSION)
    assert metadata["text_bytes"].value > 200_000  # the IREE VM, HAL and loader are in
    assert metadata["sha256"].value == firmware_build.sha256_file(elf)


@pytest.mark.parametrize("target", DEVICE_TARGETS)
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


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_device_reproduces_the_host_on_every_evaluated_window(device_pipeline, target):
    s = summary(device_pipeline.root, target)
    host = pd.read_parquet(ArtifactStore(device_pipeline.root).stage("host_evaluation").current() / "predictions.parquet")
    assert s["windows"] == DEVICE_WINDOWS
    assert s["argmax_mismatches_vs_host"] == 0
    assert s["max_abs_diff_vs_host"] <= 1e-5
    results = pd.read_parquet(ArtifactStore(device_pipeline.root).stage("device_evaluation", target).current() / "results.parquet")
    assert np.array_equal(results["device_class"].to_numpy(), host["iree_class"].to_numpy()[:DEVICE_WINDOWS])
    (gate,) = check_evaluations(device_pipeline.results, "device_matches_host", partition=target)
    assert gate.passed and gate.metadata["argmax_mismatches"].value == 0


# Each vector target compiled with the project's flags (IREE's defaults cost more than the scalar target with them).
@pytest.mark.parametrize("target", [t for t in DEVICE_TARGETS if get_target(t).has_vector and get_target(t).iree_optimise])
def test_vector_target_needs_fewer_instructions_than_scalar(device_pipeline, target):
    scalar, vector = (summary(device_pipeline.root, t)["instructions_per_inference_median"] for t in ("rv32imf", target))
    assert 0 < vector < scalar


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_measurements_use_kennings_vocabulary(device_pipeline, target):
    entry = ArtifactStore(device_pipeline.root).stage("device_evaluation", target).current()
    m = json.loads((entry / "measurements.json").read_text())
    assert m["total"] == len(m["protocol_inference_step"]) == len(m["inference_instructions"]) == DEVICE_WINDOWS
    assert sum(map(sum, m["eval_confusion_matrix"])) == m["total"]
    assert set(m["allocation_stats"]) == {
        "host_bytes_peak", "host_bytes_allocated", "host_bytes_freed",
        "device_bytes_peak", "device_bytes_allocated", "device_bytes_freed",
    }
    assert m["compiled_model_size"] > 0
    assert m["build_cfg"]["simulator"]["name"] == "qemu"


def test_report_has_a_device_row_per_target(device_pipeline):
    entry = ArtifactStore(device_pipeline.root).stage("evaluation_report").current()
    markdown = (entry / "report.md").read_text()
    assert "No device evaluation yet" not in markdown
    section = markdown.split("## Device statistics", 1)[1].split("\n## ", 1)[0]
    for target in DEVICE_TARGETS:
        instructions = summary(device_pipeline.root, target)["instructions_per_inference_median"]
        assert target in section and f"{instructions:,.0f}" in section


def test_failing_parity_gate_blocks_the_report(device_pipeline_copy, dataset_dir):
    """A device result outside the tolerance stops everything downstream of the device evaluation."""
    root = device_pipeline_copy.root
    report_before = sorted(p.name for p in (root / "evaluation_report").iterdir())
    resources = {**defs.resources, **pipeline_resources(root, dataset_dir, gates=QualityGates(min_test_accuracy=0.5, parity_atol=-1.0))}
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=["device_evaluation", "evaluation_report"],
        partition_key=DEVICE_TARGETS[0],
        instance=device_pipeline_copy.instance,
        resources=resources,
        run_config=dg.RunConfig(ops={"device_evaluation": quick_config()["device_evaluation"]}),
        raise_on_error=False,
    )
    (gate,) = check_evaluations([result], "device_matches_host")
    assert not gate.passed and not result.success
    assert "evaluation_report" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert sorted(p.name for p in (root / "evaluation_report").iterdir()) == report_before


def test_second_materialization_compares_against_the_first(device_pipeline_copy, dataset_dir):
    """The nightly schedule's forced re-run evaluates again, and no_regression compares it with the last one."""
    target = DEVICE_TARGETS[-1]
    instance = device_pipeline_copy.instance
    resources = {**defs.resources, **pipeline_resources(device_pipeline_copy.root, dataset_dir)}
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.datetime.now(datetime.timezone.utc))
    (request,) = [r for r in nightly_device_evaluation(context) if r.partition_key == target]
    ops = {"device_evaluation": {"config": {**request.run_config["ops"]["device_evaluation"]["config"], "windows": DEVICE_WINDOWS}}}
    runs = []
    for _ in range(2):
        runs.append(
            dg.materialize(
                [*defs.assets, *defs.asset_checks],
                selection=["device_evaluation"],
                partition_key=target,
                instance=instance,
                resources=resources,
                run_config={"ops": ops},
                tags=request.tags,
            )
        )
    first, second = (check_evaluations([r], "no_regression")[0] for r in runs)
    assert first.metadata["previous"].value == "(first evaluation)"
    assert second.metadata["previous"].value != "(first evaluation)" and second.passed
    messages = [e.user_message for r in runs for e in instance.all_logs(r.run_id)]
    assert not any("already exists" in m for m in messages), "a forced run must evaluate again"
    assert sum("model loaded on the device" in m for m in messages) == 2


PARALLEL_TARGETS = ["rv32imf", "rv32imf_zve32f_vlen512"]


def test_two_targets_evaluate_in_parallel_without_collisions(device_pipeline_copy, monkeypatch, tmp_path):
    """Two device partitions as concurrent runs, each on the multiprocess executor, sharing one artifact root."""
    root = device_pipeline_copy.root
    monkeypatch.setenv("WAND_ARTIFACT_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("")
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

    threads = [threading.Thread(target=run, args=(t,)) for t in PARALLEL_TARGETS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1200)
    assert all(results[t].success for t in PARALLEL_TARGETS)

    def span(result):
        entries = instance.all_logs(result.run_id)
        times = {
            e.dagster_event.event_type_value: e.timestamp
            for e in entries
            if e.dagster_event is not None and e.dagster_event.step_key == "device_evaluation"
        }
        return times["STEP_START"], times["STEP_SUCCESS"]

    (start_a, end_a), (start_b, end_b) = (span(results[t]) for t in PARALLEL_TARGETS)
    assert start_a < end_b and start_b < end_a, "the two device evaluations did not overlap"
    simulators = [summary(root, t)["simulator"] for t in PARALLEL_TARGETS]
    ports = {s["uart"] for s in simulators}
    logs = {s["command"][s["command"].index("-chardev") + 1] for s in simulators}
    assert len(ports) == len(logs) == len(PARALLEL_TARGETS)
    for t in PARALLEL_TARGETS:
        assert summary(root, t)["argmax_mismatches_vs_host"] == 0
