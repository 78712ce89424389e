"""The wand code location: assembles assets, checks, resources, jobs and automation.

Each stage lives in its folder (``wand_assets/<stage>/assets.py``).
"""

from typing import Any

import dagster as dg

from wand_assets import automation
from wand_assets.compilation import assets as compilation
from wand_assets.core.handoff import ArtifactHandoff
from wand_assets.core.resources import ArtifactStoreResource, QualityGates
from wand_assets.data import assets as data
from wand_assets.data.resources import DatasetSource
from wand_assets.device import assets as device
from wand_assets.device.resources import FirmwareToolchain, SimulatorResource
from wand_assets.report import assets as report
from wand_assets.training import assets as training

# The code location's parts, also as typed lists (``Definitions`` keeps them as optional iterables)
# for the code that materializes them itself (pipeline.py, the tests).
ASSETS: list[dg.AssetsDefinition] = [
    data.magic_wand_archive,
    data.gesture_windows,
    training.trained_model,
    compilation.model_mlir,
    compilation.compiled_model,
    compilation.host_model,
    compilation.host_evaluation,
    device.firmware,
    device.device_evaluation,
    report.evaluation_report,
]
ASSET_CHECKS: list[dg.AssetChecksDefinition] = [
    data.split_is_sound,
    training.accuracy_above_floor,
    compilation.host_matches_keras,
]
# Any: callers use each resource's own methods (``RESOURCES["artifact_store"].store()``).
RESOURCES: dict[str, Any] = {
    "io_manager": ArtifactHandoff(),
    "artifact_store": ArtifactStoreResource(),
    "source": DatasetSource(),
    "gates": QualityGates(),
    "toolchain": FirmwareToolchain(),
    "simulator": SimulatorResource(),
}

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[
        automation.train_and_import_job,
        automation.compile_job,
        automation.device_job,
        automation.report_job,
        automation.device_sweep_job,
    ],
    schedules=[automation.nightly_device_evaluation],
    sensors=[automation.dataset_source_changed, automation.automation_sensor],
    resources=RESOURCES,
)


def job(name: str) -> dg.JobDefinition:
    """A job by name; lets Python code execute it on process-based executors:
    ``dg.build_reconstructable_job("wand_assets.definitions", "job", reconstructable_args=(name,))``."""
    return defs.resolve_job_def(name)
