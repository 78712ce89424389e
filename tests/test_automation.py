import datetime
import os

import dagster as dg
from conftest import scheduled_run_requests

from wand_assets.automation import dataset_source_changed, nightly_device_evaluation
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.data.resources import DatasetSource
from wand_assets.definitions import defs
from wand_assets.device.resources import SimulatorResource


def evaluate_sensor(cursor, folder):
    context = dg.build_sensor_context(cursor=cursor, resources={"source": DatasetSource(location=str(folder))})
    return dataset_source_changed(context), context.cursor


def test_sensor_requests_the_chain_only_when_the_source_changes(writable_dataset):
    first, cursor = evaluate_sensor(None, writable_dataset)
    assert isinstance(first, dg.SkipReason) and "watching" in (first.skip_message or "")
    unchanged, cursor2 = evaluate_sensor(cursor, writable_dataset)
    assert isinstance(unchanged, dg.SkipReason) and cursor2 == cursor
    recording = writable_dataset / "wing" / "output_wing_hyw.txt"
    recording.write_bytes(recording.read_bytes() + b"1.0,2.0,3.0\r\n")
    os.utime(recording, ns=(1, 1))
    request, cursor3 = evaluate_sensor(cursor, writable_dataset)
    assert isinstance(request, dg.RunRequest) and cursor3 != cursor
    assert request.tags["wand/trigger"] == "dataset-changed"


def nightly_requests(backend: str) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime.datetime(2026, 11, 25, 2, tzinfo=datetime.UTC),
        resources={"simulator": SimulatorResource(backend=backend)},
    )
    return scheduled_run_requests(nightly_device_evaluation, context)


def test_nightly_schedule_forces_a_fresh_device_evaluation_per_target():
    requests = nightly_requests("renode")
    assert [r.partition_key for r in requests] == DEVICE_TARGETS
    assert all(r.run_config["ops"]["device_evaluation"]["config"]["force"] for r in requests)
    assert len({r.run_key for r in requests}) == len(requests)


def test_nightly_schedule_leaves_out_the_boards_qemu_cannot_run():
    on_qemu = [r.partition_key for r in nightly_requests("qemu")]
    springbok = [t for t in DEVICE_TARGETS if "springbok" in t]
    assert springbok and not set(springbok) & set(on_qemu)
    assert on_qemu == [t for t in DEVICE_TARGETS if t not in springbok]


def materialize_in_the_log(instance, asset: str, partitions) -> None:
    """What a run of the sensor's requests would leave in the event log (the tests run no steps)."""
    for partition in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


def everything_once(instance, skip=()) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if key.to_user_string() not in skip:
            materialize_in_the_log(instance, key.to_user_string(), DEVICE_TARGETS if graph.get(key).partitions_def else [None])


def follow_ticks(instance, cursor, ticks: int = 8) -> set[tuple[str, str | None]]:
    """Evaluate the automation conditions tick by tick, 'running' what each tick requests."""
    requested: set[tuple[str, str | None]] = set()
    for _ in range(ticks):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        new = {
            (key.to_user_string(), partition)
            for key in defs.resolve_asset_graph().get_all_asset_keys()
            for partition in result.get_requested_partitions(key)
        }
        if not new:
            break
        requested |= new
        for asset, partition in new:
            materialize_in_the_log(instance, asset, [partition])
    return requested


def test_automation_sensor_runs_from_the_start():
    sensor = defs.resolve_sensor_def("wand_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_new_trained_model_requests_everything_below_it():
    instance = dg.DagsterInstance.ephemeral()
    everything_once(instance)
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert settled.total_requested == 0
    materialize_in_the_log(instance, "trained_model", [None])
    requested = follow_ticks(instance, settled.cursor)
    # firmware too: an EmitC target's firmware is built from its compiled model (for the others the
    # compiled model is no input of the build, and the firmware's fingerprint finds the existing ELF).
    below = {
        "model_mlir",
        "host_model",
        "host_evaluation",
        "compiled_model",
        "firmware",
        "device_evaluation",
        "evaluation_report",
    }
    assert {asset for asset, _ in requested} == below
    for partitioned in ("compiled_model", "firmware", "device_evaluation"):
        assert {p for asset, p in requested if asset == partitioned} == set(DEVICE_TARGETS)


def test_without_any_device_evaluation_the_host_only_report_still_follows():
    instance = dg.DagsterInstance.ephemeral()
    everything_once(instance, skip={"firmware", "device_evaluation"})
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    materialize_in_the_log(instance, "host_evaluation", [None])
    requested = follow_ticks(instance, settled.cursor)
    assert ("evaluation_report", None) in requested


def test_jobs_cover_every_asset():
    covered = set()
    for name in ("train_and_import", "compile_for_target", "evaluate_on_device", "host_reference_and_report"):
        covered |= {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.selected_asset_keys}
    assert covered == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
