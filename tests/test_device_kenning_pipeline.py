"""A device evaluation through Dagster over KenningProtocol (``protocol: kenning`` on the simulator
resource): the real IREE firmware in QEMU, the blocking parity gate, and the same device scores and
instruction counts as the legacy protocol's evaluation of the same firmware."""

import dagster as dg
import pandas as pd
import pytest
from conftest import TESTED_TARGETS, pipeline_resources, quick_config

from wand_assets.core.handoff import latest_entry
from wand_assets.definitions import ASSET_CHECKS, ASSETS, RESOURCES
from wand_assets.device.resources import SimulatorResource

pytestmark = pytest.mark.slow


def test_device_evaluation_over_kenning_protocol_matches_the_legacy_one(device_pipeline_copy, dataset_dir):
    target = TESTED_TARGETS[0]
    instance = device_pipeline_copy.instance
    legacy_entry = latest_entry(instance, "device_evaluation", target)
    result = dg.materialize(
        [*ASSETS, *ASSET_CHECKS],
        selection=["device_evaluation"],
        partition_key=target,
        instance=instance,
        resources={
            **RESOURCES,
            **pipeline_resources(device_pipeline_copy.root, dataset_dir),
            "simulator": SimulatorResource(protocol="kenning"),
        },
        run_config=dg.RunConfig(ops={"device_evaluation": quick_config()["device_evaluation"]}),
    )
    assert result.success
    gates = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert gates["device_matches_host"], gates
    metadata = result.asset_materializations_for_node("device_evaluation")[0].metadata
    assert metadata["protocol"].value == "kenning"
    kenning_entry = latest_entry(instance, "device_evaluation", target)
    assert kenning_entry != legacy_entry, "the protocol is part of the evaluation's fingerprint"
    legacy = pd.read_parquet(legacy_entry / "results.parquet")
    kenning = pd.read_parquet(kenning_entry / "results.parquet")
    scores = [c for c in legacy.columns if c.startswith("device_")]
    pd.testing.assert_frame_equal(kenning[scores], legacy[scores])  # bit for bit: the same firmware and inputs
    assert (kenning["inference_instructions"] > 0).all()
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("KenningProtocol framing from here on" in m for m in logs), "the firmware saw KenningProtocol"
