"""The wand code location: assembles assets, checks, resources and jobs. Stages live in ``wand_assets.defs``."""

import dagster as dg

from wand_assets.defs import compilation, data, device, training
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
    ],
    asset_checks=[data.split_is_sound, training.accuracy_above_floor, compilation.host_matches_keras],
    resources={
        "artifact_store": ArtifactStoreResource(),
        "source": DatasetSource(),
        "gates": QualityGates(),
        "toolchain": FirmwareToolchain(),
        "simulator": SimulatorResource(),
    },
)
