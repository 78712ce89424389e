"""The whole graph materialized with Dagster into a temporary artifact root, on the real dataset."""

import json
import threading

import dagster as dg
import pytest
from conftest import persistent_instance, pipeline_resources, quick_config
from dagster._core.errors import (
    DagsterAssetCheckFailedError,  # not re-exported at the top level in 1.13
)

from wand_assets.compilation.iospec import unpack
from wand_assets.core.artifacts import ArtifactStore
from wand_assets.core.handoff import latest_entry
from wand_assets.core.resources import QualityGates
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.data.dataset import DatasetError
from wand_assets.pipeline import materialize_all
from wand_assets.training.assets import TrainingConfig

pytestmark = pytest.mark.slow

QUICK = quick_config()


def resources_for(root, dataset_dir, min_test_accuracy=0.5):
    return pipeline_resources(root, dataset_dir, gates=QualityGates(min_test_accuracy=min_test_accuracy))


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, dataset_dir):
    root = tmp_path_factory.mktemp("artifacts")
    instance = dg.DagsterInstance.ephemeral()
    results = materialize_all(
        instance=instance, op_config=QUICK, resources=resources_for(root, dataset_dir), log=lambda _: None, device_stages=False
    )
    return root, instance, results


def materializations(results):
    return {
        (e.asset_key.to_user_string(), e.partition): e
        for r in results
        for e in r.get_asset_materialization_events()
        for e in [e.event_specific_data.materialization]
    }


def test_every_asset_and_partition_is_materialized_with_path_and_sha256(materialized):
    _, _, results = materialized
    seen = materializations(results)
    expected: set[tuple[str, str | None]] = {
        ("magic_wand_archive", None),
        ("gesture_windows", None),
        ("trained_model", None),
        ("model_mlir", None),
        ("host_model", None),
        ("host_evaluation", None),
        ("evaluation_report", None),
    }
    expected |= {("compiled_model", t) for t in DEVICE_TARGETS}
    assert set(seen) == expected
    for key, mat in seen.items():
        assert {"path", "entry"} <= set(mat.metadata) and ("sha256" in mat.metadata or "dataset_sha256" in mat.metadata), key
        assert mat.tags.get("dagster/data_version"), f"{key} has no data version"


def test_every_target_has_a_vmfb_and_the_seeds_iospec(materialized):
    _, instance, _ = materialized
    for asset, target in [("host_model", None), *(("compiled_model", t) for t in DEVICE_TARGETS)]:
        entry = latest_entry(instance, asset, target)
        assert (entry / "model.vmfb").read_bytes()[8:12] == b"IREE"  # size-prefixed FlatBuffer
        assert unpack((entry / "model.iospec.bin").read_bytes())["input_length"][0] == 384
        assert json.loads((entry / "model.vmfb.json").read_text())["output"][0]["shape"] == [1, 4]


def test_host_iree_reproduces_keras_on_every_test_window(materialized):
    _, instance, results = materialized
    summary = json.loads((latest_entry(instance, "host_evaluation") / "summary.json").read_text())
    assert summary["argmax_mismatches"] == 0
    assert summary["max_abs_diff"] <= 1e-5
    checks = [c for r in results for c in r.get_asset_check_evaluations()]
    assert {c.check_name for c in checks} >= {"split_is_sound", "accuracy_above_floor", "fits_uart_payload", "host_matches_keras"}
    assert all(c.passed for c in checks)


def test_second_run_with_nothing_changed_trains_and_compiles_nothing(materialized, dataset_dir):
    root, instance, _ = materialized
    store = ArtifactStore(root)
    before = {s: sorted(p.name for p in store.stage(s).path.iterdir()) for s in ("trained_model", "model_mlir")}
    model_mtime = (latest_entry(instance, "trained_model") / "model.keras").stat().st_mtime
    messages: list[str] = []
    materialize_all(
        instance=instance, op_config=QUICK, resources=resources_for(root, dataset_dir), log=messages.append, device_stages=False
    )
    after = {s: sorted(p.name for p in store.stage(s).path.iterdir()) for s in ("trained_model", "model_mlir")}
    assert after == before
    assert (latest_entry(instance, "trained_model") / "model.keras").stat().st_mtime == model_mtime
    second_runs = instance.get_runs(limit=len(DEVICE_TARGETS) + 3)  # head, host reference, one per target, report
    logs = [e.user_message for run in second_runs for e in instance.all_logs(run.run_id)]
    assert any("not retraining" in m for m in logs)
    assert sum("already exists" in m for m in logs) >= len(DEVICE_TARGETS) + 4  # windows, mlir, host vmfb, host, each vmfb


def test_blocking_accuracy_gate_stops_everything_downstream(tmp_path, dataset_dir):
    resources = resources_for(tmp_path, dataset_dir, min_test_accuracy=1.01)
    with pytest.raises(DagsterAssetCheckFailedError, match="accuracy_above_floor"):
        materialize_all(instance=dg.DagsterInstance.ephemeral(), op_config=QUICK, resources=resources, log=lambda _: None)
    assert not (tmp_path / "model_mlir").exists()


def test_bad_dataset_source_fails_clearly_and_leaves_nothing(tmp_path):
    resources = resources_for(tmp_path / "art", tmp_path / "missing")
    with pytest.raises(DatasetError, match="WAND_DATASET"):
        materialize_all(instance=dg.DagsterInstance.ephemeral(), op_config=QUICK, resources=resources, log=lambda _: None)
    stage_dir = tmp_path / "art" / "magic_wand_archive"
    assert not stage_dir.exists() or list(stage_dir.iterdir()) == []


def test_report_is_written_as_markdown_and_self_contained_html(materialized):
    _, instance, results = materialized
    entry = latest_entry(instance, "evaluation_report")
    markdown = (entry / "report.md").read_text()
    page = (entry / "report.html").read_text()
    for section in ("Performance", "Classification", "Device statistics", "Lineage"):
        assert f"## {section}" in markdown and f"<h2>{section}</h2>" in page
    assert "data:image/png;base64," in page
    assert 'src="http' not in page and "<link" not in page  # nothing fetched when the file is opened
    assert "No current device evaluation" in markdown  # this run had no device stages
    (report,) = [e for r in results for e in r.asset_materializations_for_node("evaluation_report")]
    status = {row.data["target"]: row.data["status"] for row in report.metadata["device_results"].value.records}
    assert status == dict.fromkeys(DEVICE_TARGETS, "missing")


def test_concurrent_runs_with_different_training_read_their_own_upstream(tmp_path, dataset_dir):
    """Two materializations on one artifact root and one instance at once, trained differently: every step
    read the entry its own run's upstream wrote (the hashes each stage recorded), never the other run's
    newer one."""
    root = tmp_path / "shared-root"
    instance = persistent_instance(tmp_path / "shared-home")
    configs = {
        "a": {**QUICK, "trained_model": TrainingConfig(epochs=2, seed=1)},
        "b": {**QUICK, "trained_model": TrainingConfig(epochs=3, seed=2)},
    }
    outcomes: dict[str, list] = {}

    def run(name: str) -> None:
        outcomes[name] = materialize_all(
            instance=instance,
            op_config=configs[name],
            resources=resources_for(root, dataset_dir),
            log=lambda _: None,
            device_stages=False,
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    assert set(outcomes) == set(configs)
    seen = {name: materializations(results) for name, results in outcomes.items()}

    def sha(name, asset, partition=None):
        return seen[name][(asset, partition)].metadata["sha256"].value

    assert sha("a", "trained_model") != sha("b", "trained_model")
    for name in configs:
        m = seen[name]
        assert m[("model_mlir", None)].metadata["keras_sha256"].value == sha(name, "trained_model")
        assert m[("host_model", None)].metadata["mlir_sha256"].value == sha(name, "model_mlir")
        for target in DEVICE_TARGETS:
            assert m[("compiled_model", target)].metadata["mlir_sha256"].value == sha(name, "model_mlir")
        host = m[("host_evaluation", None)].metadata
        assert host["keras_sha256"].value == sha(name, "trained_model")
        assert host["vmfb_sha256"].value == sha(name, "host_model")
