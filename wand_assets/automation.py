"""Jobs, the nightly device re-run, and the sensor that notices a changed dataset source.

A Dagster run covers one partition key, and the pipeline mixes unpartitioned stages with target
partitions, so "the whole pipeline" is a chain: `train_and_import` runs the unpartitioned head, and
every stage below it carries an eager automation condition, so the daemon (`dagster dev` runs one)
materializes each target partition as soon as its inputs changed. `python -m wand_assets materialize`
walks the same chain synchronously.
"""

import dagster as dg

from wand_assets.core.metadata import device_partitions
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.data.resources import DatasetSource
from wand_assets.data.source_watch import source_fingerprint

# The pipeline's stages in order, as groups of assets that run together: the jobs below and the
# command line's chain (wand_assets.pipeline) are both made of these.
HEAD = ["magic_wand_archive", "gesture_windows", "trained_model", "model_mlir"]
HOST_REFERENCE = ["host_model", "host_evaluation"]
COMPILE = ["compiled_model"]  # per device target
DEVICE = ["firmware", "device_evaluation"]  # per device target
REPORT = ["evaluation_report"]

train_and_import_job = dg.define_asset_job(
    "train_and_import",
    selection=HEAD,
    description="Dataset → windows → trained model → StableHLO. Stages below follow by automation.",
)
compile_job = dg.define_asset_job(
    "compile_for_target",
    selection=COMPILE,
    partitions_def=device_partitions,
    description="The .vmfb for one device target.",
)
device_job = dg.define_asset_job(
    "evaluate_on_device",
    selection=DEVICE,
    partitions_def=device_partitions,
    description="Firmware build and the device evaluation for one target.",
)
report_job = dg.define_asset_job(
    "host_reference_and_report",
    selection=HOST_REFERENCE + REPORT,
    description="Host .vmfb, host parity reference and the evaluation report over every target.",
)

# Dagster creates its default automation sensor STOPPED; this one runs from the start, so the eager
# conditions below the head do what the README promises as soon as a daemon runs (`bash scripts/ui.sh`).
automation_sensor = dg.AutomationConditionSensorDefinition(
    "wand_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)


@dg.schedule(job=device_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
def nightly_device_evaluation(context: dg.ScheduleEvaluationContext):
    """Every night, re-run the device evaluation of every target from scratch (the report follows)."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for target in DEVICE_TARGETS:
        yield dg.RunRequest(
            run_key=f"{day}-{target}",
            partition_key=target,
            run_config=dg.RunConfig(ops={"device_evaluation": {"config": {"force": True}}}),
            tags={"wand/trigger": "nightly"},
        )


@dg.sensor(job=train_and_import_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def dataset_source_changed(context: dg.SensorEvaluationContext, source: DatasetSource):
    """Notices a changed dataset source (files added, removed or touched) and re-runs the chain below it."""
    location = source.resolved()
    fp = source_fingerprint(location)
    if context.cursor == fp:
        return dg.SkipReason(f"dataset source {location} unchanged")
    first = context.cursor is None
    context.update_cursor(fp)
    if first:
        return dg.SkipReason(f"watching {location}")
    return dg.RunRequest(run_key=fp, tags={"wand/trigger": "dataset-changed"})
