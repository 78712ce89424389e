"""Jobs, the nightly device re-run, the sweep over device variants on Celery workers, and the sensor
that notices a changed dataset source.

A Dagster run covers one partition key, and the pipeline mixes unpartitioned stages with target
partitions, so "the whole pipeline" is a chain: `train_and_import` runs the unpartitioned head, and
every stage below it carries an eager automation condition, so the daemon (`dagster dev` runs one)
materializes each target partition as soon as its inputs changed. `python -m wand_assets materialize`
walks the same chain synchronously.
"""

import threading
import uuid
from collections.abc import Mapping, Sequence

import dagster as dg

from wand_assets.core.metadata import device_partitions
from wand_assets.core.targets import DEVICE_TARGETS, unrunnable_targets
from wand_assets.data.resources import DatasetSource
from wand_assets.data.source_watch import source_fingerprint
from wand_assets.device.resources import SimulatorResource

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


def _celery_executor() -> dg.ExecutorDefinition:
    """dagster-celery's executor, or (without the optional ``celery`` extra) a stand-in of the same name
    that refuses to run and says what to install, so the code location still loads."""
    try:
        from dagster_celery import celery_executor
    except ImportError:

        @dg.executor(name="celery", config_schema=dg.Permissive())
        def celery_not_installed(_init_context):
            raise dg.DagsterInvariantViolationError(
                "the device_sweep job runs its steps on Celery workers, and dagster-celery is not installed: "
                "pip install -e '.[celery]' (or WAND_WITH_SERVERS=1 bash scripts/setup.sh)"
            )

        return celery_not_installed
    return celery_executor


SWEEP_ASSETS = ["firmware", "device_evaluation"]
SWEEP_TAG = "wand/sweep"

device_sweep_job = dg.define_asset_job(
    "device_sweep",
    selection=SWEEP_ASSETS,
    partitions_def=device_partitions,
    executor_def=_celery_executor(),
    description=(
        "Firmware and device evaluation of one device variant, each step on whichever Celery worker is free. "
        "A sweep is one run per chosen variant at once: a backfill over the chosen partitions in the UI, "
        "or run_sweep() from Python (benchmarks/sweep.py). Execution config: docs/dagster-celery.yaml."
    ),
)


def check_variants(variants: Sequence[str]) -> list[str]:
    """``variants`` as a list, each a device target once; ValueError naming the known ones otherwise."""
    chosen = list(variants)
    unknown = [v for v in chosen if v not in DEVICE_TARGETS]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"a sweep takes distinct device variants, not {chosen}; known: {', '.join(DEVICE_TARGETS)}")
    return chosen


def sweep_run_requests(variants: Sequence[str], run_config: Mapping, sweep_id: str | None = None) -> list[dg.RunRequest]:
    """One device_sweep run request per variant, all tagged with the sweep's id (for a sensor or schedule)."""
    sweep_id = sweep_id or uuid.uuid4().hex[:12]
    return [
        dg.RunRequest(run_key=f"sweep-{sweep_id}-{v}", partition_key=v, run_config=dict(run_config), tags={SWEEP_TAG: sweep_id})
        for v in check_variants(variants)
    ]


def run_sweep(
    variants: Sequence[str],
    *,
    instance: dg.DagsterInstance,
    run_config: Mapping,
    sweep_id: str | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, dg.JobExecutionResult]:
    """Execute one device_sweep run per variant, all at once, on ``instance`` (a persistent, shared one:
    the workers write to it). This process only orchestrates; the steps run on the Celery workers that
    ``run_config``'s execution block names. Returns each variant's result (failed runs included)."""
    chosen = check_variants(variants)
    sweep_id = sweep_id or uuid.uuid4().hex[:12]
    job = dg.build_reconstructable_job("wand_assets.definitions", "job", reconstructable_args=(device_sweep_job.name,))
    results: dict[str, dg.JobExecutionResult] = {}
    errors: dict[str, BaseException] = {}

    def run(variant: str) -> None:
        try:
            results[variant] = dg.execute_job(
                job,
                instance,
                run_config=dict(run_config),
                tags={"dagster/partition": variant, SWEEP_TAG: sweep_id},
                raise_on_error=False,
            )
        except BaseException as e:  # noqa: BLE001 - a thread cannot raise to its caller: re-raised there below
            errors[variant] = e

    threads = [threading.Thread(target=run, args=(v,), name=f"sweep-{v}", daemon=True) for v in chosen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    if late := [t.name for t in threads if t.is_alive()]:
        raise TimeoutError(f"sweep {sweep_id}: {', '.join(late)} still running after {timeout_s:.0f} s")
    if errors:
        variant, error = next(iter(errors.items()))
        raise RuntimeError(f"sweep {sweep_id}: the run for {variant} could not be executed: {error}") from error
    return {v: results[v] for v in chosen}


@dg.schedule(job=device_job, cron_schedule="0 2 * * *", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
def nightly_device_evaluation(context: dg.ScheduleEvaluationContext, simulator: SimulatorResource):
    """Every night, re-run the device evaluation of every target the configured simulator can run
    from scratch (the report follows)."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    if left_out := unrunnable_targets(simulator.backend):
        context.log.info(f"nightly: leaving out {', '.join(left_out)}: the {simulator.backend} backend cannot run their board")
    for target in (t for t in DEVICE_TARGETS if t not in left_out):
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
