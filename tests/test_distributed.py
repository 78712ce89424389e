"""Beyond one process: the Dagster instance in PostgreSQL, and device variants swept over Celery workers.

The servers are Debian's, started here on loopback for this module and torn down after it: a private
PostgreSQL cluster (the README's dagster.yaml, docs/dagster-postgres.yaml, points the instance at it)
and redis-server as the Celery broker. Device stages run on a copy of the suite's materialized
artifacts (the `device_pipeline` fixture, evaluated in-process), so firmware and .vmfb are reused and
each device result here can be compared window by window with the in-process one.

`pytest -k "postgres or celery"` selects these tests.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import DEVICE_WINDOWS, REPO, TESTED_TARGETS

from wand_assets import automation
from wand_assets.core import servers
from wand_assets.data.dataset import CLASSES
from wand_assets.definitions import defs

pytestmark = pytest.mark.slow

POSTGRES_YAML = REPO / "docs" / "dagster-postgres.yaml"
CELERY_YAML = REPO / "docs" / "dagster-celery.yaml"
FEW_WINDOWS = 6
CONCURRENT_TARGETS = ["rv32imf", "rv32imf_zve32f_vlen512"]
SWEEP_VARIANTS = TESTED_TARGETS  # the variants the suite's in-process materialization evaluated
CLI_TIMEOUT_S = 300


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed: pip install -e '.[{extra}]' (WAND_WITH_SERVERS=1 bash scripts/setup.sh)")


def _require_postgres_server() -> None:
    try:
        servers.postgres_bin_dir()
    except servers.ServerError as e:
        pytest.skip(str(e))


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip(f"redis-server is not on PATH: {servers.INSTALL_HINT}")


@pytest.fixture(scope="module")
def postgres():
    _require("dagster_postgres", "postgres")
    _require_postgres_server()
    with servers.local_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def shared_instance(postgres, tmp_path_factory):
    """$DAGSTER_HOME with the README's dagster.yaml (verbatim) and its variables set, and the instance it gives."""
    home = tmp_path_factory.mktemp("dagster-home")
    shutil.copyfile(POSTGRES_YAML, home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**postgres.env(), "DAGSTER_HOME": str(home)}.items():
            mp.setenv(key, value)
        with dg.DagsterInstance.get() as instance:
            yield instance


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    _require("dagster_celery", "celery")
    _require_redis_server()
    with servers.local_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_postgres_and_redis_servers_are_gone_after_an_error_inside_their_blocks(tmp_path):
    """Teardown on failure: the servers stop, their ports close and the cluster's folder goes."""
    _require_postgres_server()
    _require_redis_server()
    seen: dict[str, Any] = {}

    def fail_inside_both_blocks() -> None:
        with servers.local_postgres() as pg, servers.local_redis(tmp_path / "redis") as url:
            seen.update(pg=pg, redis_port=int(url.rsplit(":", 1)[1].split("/")[0]))
            assert listening(pg.port) and listening(seen["redis_port"])
            raise ZeroDivisionError("inside both blocks")

    with pytest.raises(ZeroDivisionError):
        fail_inside_both_blocks()
    assert not listening(seen["pg"].port) and not listening(seen["redis_port"])
    assert not seen["pg"].data_dir.parent.exists()


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((servers.LOOPBACK, port)) == 0


def test_celery_config_names_one_broker_for_the_runs_and_the_workers(monkeypatch):
    """docs/dagster-celery.yaml is both the sweep's execution config and the workers' `-y` file."""
    _require("dagster_celery", "celery")
    from dagster_celery.cli import get_validated_config
    from dagster_celery.executor import celery_executor

    monkeypatch.setenv("WAND_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("WAND_CELERY_BACKEND", "redis://127.0.0.1:1/1")
    worker = get_validated_config(str(CELERY_YAML))
    assert (worker["broker"], worker["backend"]) == ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1")
    assert worker["config_source"] == {"task_acks_late": True, "worker_prefetch_multiplier": 1}
    run = yaml.safe_load(CELERY_YAML.read_text())["execution"]["config"]
    validated = dg.validate_run_config(defs.resolve_job_def("device_sweep"), {"execution": {"config": run}})
    assert validated["execution"]["celery"]["broker"] == "redis://127.0.0.1:1/0"
    assert defs.resolve_job_def("device_sweep").executor_def is celery_executor


def copy_artifacts(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("build", "scratch"))
    return dest


def seed_upstream(instance: dg.DagsterInstance, device_pipeline, root: Path, targets) -> None:
    """Record in the shared instance what the device stages read (windows, host reference, each
    target's .vmfb), as entries of the copied root: the materializations the IO manager hands over."""
    wanted = [("gesture_windows", None), ("host_evaluation", None), *(("compiled_model", t) for t in targets)]
    for asset, partition in wanted:
        entry = device_pipeline.entry(asset, partition)
        copied = root / entry.relative_to(device_pipeline.root)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset, partition=partition, metadata={"entry": dg.MetadataValue.path(str(copied))})
        )


def device_resources(root: Path, build: Path) -> dict:
    return {"artifact_store": {"config": {"root": str(root)}}, "toolchain": {"config": {"build_root": str(build)}}}


def in_process_results(device_pipeline, target: str) -> pd.DataFrame:
    """The device results of `target` from the suite's in-process materialization (its metadata's path)."""
    (mat,) = [
        e.event_specific_data.materialization
        for r in device_pipeline.results
        for e in r.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "device_evaluation" and e.partition == target
    ]
    return pd.read_parquet(mat.metadata["path"].value)


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition: str):
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return record


DEVICE_COLUMNS = ["device_class", "inference_instructions", *(f"device_{c}" for c in CLASSES)]


def assert_same_device_results(got: pd.DataFrame, expected: pd.DataFrame, windows: int) -> None:
    assert len(got) == windows
    for column in DEVICE_COLUMNS:
        assert np.array_equal(got[column].to_numpy(), expected[column].to_numpy()[:windows]), column


def test_postgres_instance_holds_two_concurrent_device_materializations(shared_instance, device_pipeline, tmp_path):
    """Two `dagster job execute` processes, one per device target, at once on the Postgres instance."""
    instance = shared_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    root = copy_artifacts(device_pipeline.root, tmp_path / "artifacts")
    seed_upstream(instance, device_pipeline, root, CONCURRENT_TARGETS)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ops": {"device_evaluation": {"config": {"windows": FEW_WINDOWS}}},
                "resources": device_resources(root, tmp_path / "build"),
            }
        )
    )
    test_id = uuid.uuid4().hex
    dagster_cli = str(Path(sys.executable).with_name("dagster"))
    procs, logs = {}, {}
    try:
        for target in CONCURRENT_TARGETS:
            logs[target] = tmp_path / f"{target}.log"
            with logs[target].open("wb") as out:
                procs[target] = subprocess.Popen(
                    [
                        dagster_cli,
                        "job",
                        "execute",
                        "-m",
                        "wand_assets.definitions",
                        "-j",
                        "evaluate_on_device",
                        "-c",
                        str(config),
                        "--tags",
                        json.dumps({"dagster/partition": target, "wand/test": test_id}),
                    ],
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for proc in procs.values():
            proc.wait(timeout=CLI_TIMEOUT_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    for target, proc in procs.items():
        assert proc.returncode == 0, f"{target}:\n" + "\n".join(logs[target].read_text(errors="replace").splitlines()[-40:])

    records = {
        t: instance.get_run_records(dg.RunsFilter(tags={"wand/test": test_id, "dagster/partition": t}))
        for t in CONCURRENT_TARGETS
    }
    assert all(len(r) == 1 for r in records.values()), records
    (a, b) = (records[t][0] for t in CONCURRENT_TARGETS)
    assert a.dagster_run.status == b.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert a.start_time < b.end_time and b.start_time < a.end_time, "the two runs did not overlap"

    storage_ids = []
    for target, (record,) in records.items():
        run_id = record.dagster_run.run_id
        events = instance.get_records_for_run(run_id, limit=100_000).records
        storage_ids += [e.storage_id for e in events]
        # Every event of this run is about this run and, where it names a partition, this partition.
        assert {e.event_log_entry.run_id for e in events} == {run_id}
        partitions = {p for e in events if e.event_log_entry.dagster_event and (p := e.event_log_entry.dagster_event.partition)}
        assert partitions == {target}
        materialized = sorted(
            e.event_log_entry.dagster_event.asset_key.to_user_string()
            for e in events
            if e.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        assert materialized == ["device_evaluation", "firmware"]
        latest = latest_materialization(instance, "device_evaluation", target)
        assert latest.run_id == run_id
        metadata = latest.asset_materialization.metadata
        assert metadata["windows"].value == FEW_WINDOWS
        assert_same_device_results(
            pd.read_parquet(metadata["path"].value), in_process_results(device_pipeline, target), FEW_WINDOWS
        )
    assert len(storage_ids) == len(set(storage_ids)) > 20


def celery_workers_by_step(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key → the Celery worker (node name) that ran it, from dagster-celery's engine events."""
    where: dict[str, str] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        assert event is not None  # of_type=ENGINE_EVENT: every entry is a Dagster event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if "Celery worker" in metadata:
            assert entry.step_key is not None  # dagster-celery reports the worker per step
            where[entry.step_key] = metadata["Celery worker"].value
    return where


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    pids: dict[str, int] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START):
        event = entry.dagster_event
        assert entry.step_key is not None and event is not None and event.pid is not None  # a step's own process started
        pids[entry.step_key] = event.pid
    return pids


def test_celery_sweep_spreads_device_variants_over_two_workers(
    shared_instance, redis_url, device_pipeline, tmp_path, monkeypatch
):
    """The device_sweep job for two device variants on two Celery workers: every step runs on a worker,
    both workers take device evaluations, and each variant's predictions and instruction counts equal
    the in-process executor's window by window."""
    instance = shared_instance
    root = copy_artifacts(device_pipeline.root, tmp_path / "artifacts")
    seed_upstream(instance, device_pipeline, root, SWEEP_VARIANTS)
    monkeypatch.setenv("WAND_CELERY_BROKER", redis_url)
    monkeypatch.setenv("WAND_CELERY_BACKEND", redis_url.rsplit("/", 1)[0] + "/1")
    executor = yaml.safe_load(CELERY_YAML.read_text())
    run_config = {
        **executor,
        "ops": {"device_evaluation": {"config": {"force": True, "windows": DEVICE_WINDOWS}}},
        "resources": device_resources(root, tmp_path / "build"),
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with servers.celery_workers(
        ["wand-a", "wand-b"], config_yaml=CELERY_YAML, workdir=tmp_path / "workers", env=env, cwd=REPO
    ) as workers:
        results = automation.run_sweep(SWEEP_VARIANTS, instance=instance, run_config=run_config, timeout_s=600)
        worker_pids = {w.name: w.process.pid for w in workers}
    for variant, result in results.items():
        assert result.success, f"{variant}: " + "\n".join(w.log_path.read_text(errors="replace")[-3000:] for w in workers)

    ran_on, pids = {}, set()
    for variant, result in results.items():
        run = instance.get_run_by_id(result.run_id)
        assert run.tags["dagster/partition"] == variant and run.job_name == "device_sweep"
        where = celery_workers_by_step(instance, result.run_id)
        assert set(where) == set(automation.SWEEP_ASSETS), where  # every step went to a worker
        assert set(where.values()) <= set(worker_pids)
        ran_on[variant] = where["device_evaluation"]
        started = step_pids(instance, result.run_id)
        assert os.getpid() not in started.values()
        pids |= set(started.values())
    assert set(ran_on.values()) == set(worker_pids), f"device evaluations by worker: {ran_on}"
    assert len(pids) >= 2

    for variant in SWEEP_VARIANTS:
        latest = latest_materialization(instance, "device_evaluation", variant)
        assert latest.run_id == results[variant].run_id
        metadata = latest.asset_materialization.metadata
        expected = in_process_results(device_pipeline, variant)
        assert_same_device_results(pd.read_parquet(metadata["path"].value), expected, DEVICE_WINDOWS)
        assert metadata["instructions_per_inference_median"].value == float(np.median(expected["inference_instructions"]))
        median = metadata["instructions_per_inference_median"].value
        print(f"\n{variant}: device evaluation on {ran_on[variant]}, {median:,.0f} instructions per inference")
