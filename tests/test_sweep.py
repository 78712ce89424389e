"""The device_sweep job's definition and helpers (no servers: the Celery path itself is in test_distributed.py)."""

import sys

import dagster as dg
import pytest

from wand_assets import automation
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.definitions import defs


def test_sweep_job_runs_firmware_and_device_evaluation_for_any_device_variant():
    job = defs.resolve_job_def("device_sweep")
    assert job.executor_def.name == "celery"
    assert job.partitions_def is not None
    assert job.partitions_def.get_partition_keys() == DEVICE_TARGETS
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == set(automation.SWEEP_ASSETS)


@pytest.mark.parametrize(
    "variants",
    [[], ["rv32imf", "rv32imf"], ["rv32imf", "host"], ["rv32imf_zve32f_vlen2048"]],
    ids=["none", "twice", "host", "unknown"],
)
def test_a_sweep_takes_distinct_device_variants_only(variants):
    with pytest.raises(ValueError, match="known: rv32imf, rv32imf_zve32f_vlen128"):
        automation.check_variants(variants)


def test_sweep_run_requests_are_one_per_variant_under_one_sweep_tag():
    config = {"ops": {"device_evaluation": {"config": {"windows": 8}}}}
    variants = ["rv32imf_zve32f_vlen128", "rv32imf_zve32f_vlen1024"]
    requests = automation.sweep_run_requests(variants, config, sweep_id="s1")
    assert [r.partition_key for r in requests] == variants
    assert {r.tags[automation.SWEEP_TAG] for r in requests} == {"s1"}
    assert len({r.run_key for r in requests}) == 2
    assert all(r.run_config == config for r in requests)


def test_without_the_celery_extra_the_sweep_job_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # import fails as if not installed
    stand_in = automation._celery_executor()
    assert stand_in.name == "celery"
    with pytest.raises(dg.DagsterInvariantViolationError, match=r"pip install -e '\.\[celery\]'"):
        stand_in.executor_creation_fn(None)  # type: ignore[misc,arg-type]  # set by the stand-in, which raises before it reads the context
