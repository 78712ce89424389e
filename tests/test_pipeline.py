"""The whole graph materialized with Dagster into a temporary artifact root, on the real dataset."""

import json

import dagster as dg
import pytest
from conftest import pipeline_resources, quick_config

from wand_assets.compilation.iospec import unpack
from wand_assets.core.artifacts import ArtifactStore
from wand_assets.core.resources import QualityGates
from wand_assets.core.targets import TARGETS
from wand_assets.pipeline import materialize_all

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
    expected = {
        ("magic_wand_archive", None), ("gesture_windows", None), ("trained_model", None), ("model_mlir", None),
        ("host_evaluation", None), ("evaluation_report", None),
    }
    expected |= {("compiled_model", t) for t in TARGETS}
    assert set(seen) == expected
    for key, mat in seen.items():
        assert "path" in mat.metadata and "sha256" in mat.metadata, key


def test_every_target_has_a_vmfb_and_the_seeds_iospec(materialized):
    root, _, _ = materialized
    store = ArtifactStore(root)
    for target in TARGETS:
        entry = store.stage("compiled_model", target).current()
        assert (entry / "model.vmfb").read_bytes()[8:12] == b"IREE"  # size-prefixed FlatBuffer
        assert unpack((entry / "model.iospec.bin").read_bytes())["input_length"][0] == 384
        assert json.loads((entry / "model.vmfb.json").read_text())["output"][0]["shape"] == [1, 4]


def test_host_iree_reproduces_keras_on_every_test_window(materialized):
    root, _, results = materialized
    summary = json.loads((ArtifactStore(root).stage("host_evaluation").current() / "summary.json").read_text())
    assert summary["argmax_mismatches"] == 0
    assert summary["max_abs_diff"] <= 1e-5
    checks = [c for r in results for c in r.get_asset_check_evaluations()]
    assert {c.check_name for c in checks} >= {"split_is_sound", "accuracy_above_floor", "fits_uart_payload", "host_matches_keras"}
    assert all(c.passed for c in checks)


def test_second_run_with_nothing_changed_trains_and_compiles_nothing(materialized, dataset_dir):
    root, instance, _ = materialized
    store = ArtifactStore(root)
    before = {s: sorted(p.name for p in store.stage(s).path.iterdir()) for s in ("trained_model", "model_mlir")}
    model_mtime = (store.stage("trained_model").current() / "model.keras").stat().st_mtime
    messages = []
    materialize_all(
        instance=instance, op_config=QUICK, resources=resources_for(root, dataset_dir), log=messages.append, device_stages=False
    )
    after = {s: sorted(p.name for p in store.stage(s).path.iterdir()) for s in ("trained_model", "model_mlir")}
    assert after == before
    assert (store.stage("trained_model").current() / "model.keras").stat().st_mtime == model_mtime
    second_runs = instance.get_runs(limit=len(TARGETS) + 3)  # head, one per target, host reference, report
    logs = [e.user_message for run in second_runs for e in instance.all_logs(run.run_id)]
    assert any("not retraining" in m for m in logs)
    assert sum("already exists" in m for m in logs) >= len(TARGETS) + 3  # windows, mlir, each vmfb, host


def test_blocking_accuracy_gate_stops_everything_downstream(tmp_path, dataset_dir):
    resources = resources_for(tmp_path, dataset_dir, min_test_accuracy=1.01)
    with pytest.raises(Exception):
        materialize_all(instance=dg.DagsterInstance.ephemeral(), op_config=QUICK, resources=resources, log=lambda _: None)
    assert not (tmp_path / "model_mlir").exists()


def test_bad_dataset_source_fails_clearly_and_leaves_nothing(tmp_path):
    resources = resources_for(tmp_path / "art", tmp_path / "missing")
    with pytest.raises(Exception, match="WAND_DATASET"):
        materialize_all(instance=dg.DagsterInstance.ephemeral(), op_config=QUICK, resources=resources, log=lambda _: None)
    stage_dir = tmp_path / "art" / "magic_wand_archive"
    assert not stage_dir.exists() or list(stage_dir.iterdir()) == []


def test_report_is_written_as_markdown_and_self_contained_html(materialized):
    root, _, _ = materialized
    entry = ArtifactStore(root).stage("evaluation_report").current()
    markdown = (entry / "report.md").read_text()
    page = (entry / "report.html").read_text()
    for section in ("Performance", "Classification", "Device statistics", "Lineage"):
        assert f"## {section}" in markdown and f"<h2>{section}</h2>" in page
    assert "data:image/png;base64," in page
    assert 'src="http' not in page and "<link" not in page  # nothing fetched when the file is opened
    assert "No device evaluation yet" in markdown  # this run had no device stages
