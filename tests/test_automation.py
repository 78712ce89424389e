import datetime
import os

import dagster as dg

from wand_assets.automation import dataset_source_changed, nightly_device_evaluation
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.data.resources import DatasetSource
from wand_assets.definitions import defs


def evaluate_sensor(cursor, folder):
    context = dg.build_sensor_context(cursor=cursor, resources={"source": DatasetSource(location=str(folder))})
    return dataset_source_changed(context), context.cursor


def test_sensor_requests_the_chain_only_when_the_source_changes(writable_dataset):
    first, cursor = evaluate_sensor(None, writable_dataset)
    assert isinstance(first, dg.SkipReason) and "watching" in first.skip_message
    unchanged, cursor2 = evaluate_sensor(cursor, writable_dataset)
    assert isinstance(unchanged, dg.SkipReason) and cursor2 == cursor
    recording = writable_dataset / "wing" / "output_wing_hyw.txt"
    recording.write_bytes(recording.read_bytes() + b"1.0,2.0,3.0\r\n")
    os.utime(recording, ns=(1, 1))
    request, cursor3 = evaluate_sensor(cursor, writable_dataset)
    assert isinstance(request, dg.RunRequest) and cursor3 != cursor
    assert request.tags["wand/trigger"] == "dataset-changed"


def test_nightly_schedule_forces_a_fresh_device_evaluation_per_target():
    context = dg.build_schedule_context(scheduled_execution_time=datetime.datetime(2026, 11, 25, 2, tzinfo=datetime.timezone.utc))
    requests = list(nightly_device_evaluation(context))
    assert [r.partition_key for r in requests] == DEVICE_TARGETS
    assert all(r.run_config["ops"]["device_evaluation"]["config"]["force"] for r in requests)
    assert len({r.run_key for r in requests}) == len(requests)


def test_every_stage_below_the_head_follows_its_inputs_automatically():
    graph = defs.resolve_asset_graph()
    eager = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None}
    assert eager == {"compiled_model", "host_evaluation", "firmware", "device_evaluation", "evaluation_report"}


def test_jobs_cover_every_asset():
    covered = set()
    for name in ("train_and_import", "compile_for_target", "evaluate_on_device", "host_reference_and_report"):
        covered |= {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.selected_asset_keys}
    assert covered == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
