"""The whole pipeline including firmware builds and the device evaluation in QEMU, for both rv32 targets.

Needs the IREE v3.11.0 runtime source (IREE_SOURCE_DIR); CI has none, so this skips there.
"""

import json
import os

import dagster as dg
import pytest

from wand_assets.artifacts import ArtifactStore
from wand_assets.defs.pipeline import materialize_all
from wand_assets.defs.resources import ArtifactStoreResource, DatasetSource, FirmwareToolchain, QualityGates
from wand_assets.targets import DEVICE_TARGETS

from tests.test_pipeline import QUICK

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("IREE_SOURCE_DIR"), reason="set IREE_SOURCE_DIR to an IREE v3.11.0 source tree"),
]


@pytest.fixture(scope="module")
def device_run(tmp_path_factory, dataset_dir):
    root = tmp_path_factory.mktemp("artifacts")
    resources = {
        "artifact_store": ArtifactStoreResource(root=str(root)),
        "source": DatasetSource(location=str(dataset_dir)),
        "gates": QualityGates(min_test_accuracy=0.5),
        "toolchain": FirmwareToolchain(build_root=str(root / "build")),
    }
    results = materialize_all(instance=dg.DagsterInstance.ephemeral(), op_config=QUICK, resources=resources, log=lambda _: None)
    return ArtifactStore(root), results


def summary(store, target):
    return json.loads((store.stage("device_evaluation", target).current() / "summary.json").read_text())


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_device_reproduces_the_host_on_every_test_window(device_run, target):
    store, results = device_run
    s = summary(store, target)
    host = json.loads((store.stage("host_evaluation").current() / "summary.json").read_text())
    assert s["windows"] == host["windows"]
    assert s["argmax_mismatches_vs_host"] == 0
    assert s["max_abs_diff_vs_host"] <= 1e-5
    assert s["accuracy"] == pytest.approx(host["metrics"]["accuracy"])
    checks = {c.check_name: c.passed for r in results for c in r.get_asset_check_evaluations() if c.check_name == "device_matches_host"}
    assert checks == {"device_matches_host": True}


def test_vector_target_needs_fewer_instructions_than_scalar(device_run):
    store, _ = device_run
    scalar, vector = (summary(store, t)["instructions_per_inference_median"] for t in DEVICE_TARGETS)
    assert 0 < vector < scalar


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_measurements_use_kennings_vocabulary(device_run, target):
    store, _ = device_run
    m = json.loads((store.stage("device_evaluation", target).current() / "measurements.json").read_text())
    assert m["total"] == len(m["protocol_inference_step"]) == len(m["inference_instructions"])
    assert sum(map(sum, m["eval_confusion_matrix"])) == m["total"]
    assert set(m["allocation_stats"]) == {
        "host_bytes_peak", "host_bytes_allocated", "host_bytes_freed",
        "device_bytes_peak", "device_bytes_allocated", "device_bytes_freed",
    }
    assert m["compiled_model_size"] > 0
    assert m["build_cfg"]["simulator"]["name"] == "qemu"


def test_all_targets_evaluate_in_parallel_without_collisions(device_run, monkeypatch, tmp_path):
    """Both device partitions as concurrent runs, each on the multiprocess executor, sharing one artifact root."""
    import threading

    store, _ = device_run
    monkeypatch.setenv("WAND_ARTIFACT_ROOT", str(store.root))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("")
    instance = dg.DagsterInstance.get()
    config = {"ops": {"device_evaluation": {"config": {"force": True}}}}
    results = {}

    def run(target):
        results[target] = dg.execute_job(
            dg.build_reconstructable_job("wand_assets.definitions", "job", reconstructable_args=("evaluate_on_device",)),
            instance,
            run_config=config,
            tags={"dagster/partition": target},
        )

    threads = [threading.Thread(target=run, args=(t,)) for t in DEVICE_TARGETS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1200)
    assert all(results[t].success for t in DEVICE_TARGETS)

    def span(result):
        entries = instance.all_logs(result.run_id)
        times = {
            e.dagster_event.event_type_value: e.timestamp
            for e in entries
            if e.dagster_event is not None and e.dagster_event.step_key == "device_evaluation"
        }
        return times["STEP_START"], times["STEP_SUCCESS"]

    (start_a, end_a), (start_b, end_b) = (span(results[t]) for t in DEVICE_TARGETS)
    assert start_a < end_b and start_b < end_a, "the two device evaluations did not overlap"
    simulators = [summary(store, t)["simulator"] for t in DEVICE_TARGETS]
    ports = {s["uart"] for s in simulators}
    logs = {s["command"][s["command"].index("-chardev") + 1] for s in simulators}
    assert len(ports) == len(logs) == len(DEVICE_TARGETS)
    for t in DEVICE_TARGETS:
        assert summary(store, t)["argmax_mismatches_vs_host"] == 0
