"""The wand code location: assembles assets, checks, resources, jobs and automation. Stages live in ``wand_assets.defs``."""

import dagster as dg

from wand_assets.defs import automation, compilation, data, device, report, training
from wand_assets.defs.resources import (
    ArtifactStoreResource,
    DatasetSource,
    FirmwareToolchain,
    QualityGates,
    SimulatorResource,
)

defs = dg.Definitions(
    assets=[
        data.magic_wand_archive,
        data.gesture_windows,
        training.trained_model,
        compilation.model_mlir,
        compilation.compiled_model,
        compilation.host_evaluation,
        device.firmware,
        device.device_evaluation,
        report.evaluation_report,
    ],
    asset_checks=[data.split_is_sound, training.accuracy_above_floor, compilation.host_matches_keras],
    jobs=[automation.train_and_import_job, automation.compile_job, automation.device_job, automation.report_job],
    schedules=[automation.nightly_device_evaluation],
    sensors=[automation.dataset_source_changed],
    resources={
        "artifact_store": ArtifactStoreResource(),
        "source": DatasetSource(),
        "gates": QualityGates(),
        "toolchain": FirmwareToolchain(),
        "simulator": SimulatorResource(),
    },
)


def job(name: str) -> dg.JobDefinition:
    """A job by name; lets Python code execute it on process-based executors:
    ``dg.build_reconstructable_job("wand_assets.definitions", "job", reconstructable_args=(name,))``."""
    return defs.resolve_job_def(name)
