"""Every device variant through the Celery path, as one Markdown table.

    IREE_SOURCE_DIR=... .venv/bin/python benchmarks/sweep.py [--root DIR] [--windows N] [--workers 2]
        [--variants a,b,...] [--force] [--quick]

For the length of the run it starts, on loopback only: a private PostgreSQL cluster as the
instance's storage ($DAGSTER_HOME/dagster.yaml is docs/dagster-postgres.yaml), redis-server as the
broker and ``--workers`` Celery workers (docs/dagster-celery.yaml). It then materializes the host
stages of the pipeline in this process (cached if ``--root`` already holds them; ``--quick`` uses the
test suite's short training), runs the ``device_sweep`` job for every chosen variant at once, each
step on whichever worker is free, and prints one row per variant from the materializations'
metadata: instructions per inference, firmware .text bytes, heap peak, accuracy, and the worker that
ran the device evaluation. Needs ``WAND_WITH_SERVERS=1 bash scripts/setup.sh``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[1]
POSTGRES_YAML = REPO / "docs" / "dagster-postgres.yaml"
CELERY_YAML = REPO / "docs" / "dagster-celery.yaml"


def quick_op_config() -> dict:
    """The test suite's short configuration (tests/conftest.py quick_config), for a smoke run."""
    from wand_assets.data.assets import WindowsConfig
    from wand_assets.training.assets import TrainingConfig

    return {
        "gesture_windows": WindowsConfig(shift_copies=1, noise_copies=1, time_warp_copies=2, amplitude_copies=2),
        "trained_model": TrainingConfig(epochs=3),
    }


def metadata_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    """asset name → the metadata values of its materialization in run ``run_id``."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.asset_materialization
        assert mat is not None  # of_type=ASSET_MATERIALIZATION
        found[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return found


def worker_of(instance: dg.DagsterInstance, run_id: str, step: str) -> str:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        assert event is not None  # of_type=ENGINE_EVENT: every entry is a Dagster event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if entry.step_key == step and "Celery worker" in metadata:
            return metadata["Celery worker"].value
    return "?"


def table(instance: dg.DagsterInstance, results: dict) -> list[str]:
    from wand_assets.core.targets import get_target

    lines = [
        "| variant | VLEN | execution model | IREE flags | instructions / inference (marginal, median) "
        "| instructions per pass (Kenning's definition, device STATS) | firmware .text (B) | heap peak (B) "
        "| accuracy | windows | device wall (s) | worker |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, result in results.items():
        target = get_target(variant)
        if not result.success:
            lines.append(f"| {variant} | {target.vlen or '-'} | | | run {result.run_id} failed | | | | | | | |")
            continue
        found = metadata_of(instance, result.run_id)
        fw, ev = found["firmware"], found["device_evaluation"]
        per_pass = ev.get("instructions_kenning_per_pass_stats")
        lines.append(
            f"| {variant} | {target.vlen or 'scalar'} | {target.execution_model} | "
            f"{'project' if target.iree_optimise else 'IREE defaults'} | "
            f"{ev['instructions_per_inference_median']:,.0f} | {f'{per_pass:,.0f}' if per_pass else '-'} | "
            f"{fw['text_bytes']:,} | {ev['heap_bytes_peak']:,} | {ev['accuracy']:.4f} | {ev['windows']} | "
            f"{ev['device_wall_seconds']} | {worker_of(instance, result.run_id, 'device_evaluation')} |"
        )
    return lines


def main() -> int:
    from wand_assets import automation
    from wand_assets.core import servers
    from wand_assets.core.resources import ArtifactStoreResource, QualityGates
    from wand_assets.core.targets import DEVICE_TARGETS, unrunnable_targets
    from wand_assets.device.resources import FirmwareToolchain
    from wand_assets.pipeline import materialize_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="artifact root (default: a fresh temporary one, removed afterwards)")
    on_qemu = [t for t in DEVICE_TARGETS if t not in unrunnable_targets("qemu")]
    parser.add_argument(
        "--variants", default=",".join(on_qemu), help="comma-separated device variants (default: every one QEMU can run)"
    )
    parser.add_argument("--windows", type=int, default=0, help="test windows per variant (0: the whole test split)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (one task slot each)")
    parser.add_argument("--force", action="store_true", help="evaluate again even where a result for these inputs exists")
    parser.add_argument(
        "--quick", action="store_true", help="the test suite's short training (a smoke run, not the real accuracy)"
    )
    args = parser.parse_args()
    variants = automation.check_variants([v for v in args.variants.split(",") if v])

    with tempfile.TemporaryDirectory(prefix="wand-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        root = Path(args.root).resolve() if args.root else tmp / "artifacts"
        home = tmp / "dagster-home"
        home.mkdir()
        shutil.copyfile(POSTGRES_YAML, home / "dagster.yaml")
        with servers.local_postgres() as pg, servers.local_redis(tmp / "redis") as broker:
            os.environ.update(
                {
                    **pg.env(),
                    "DAGSTER_HOME": str(home),
                    "WAND_CELERY_BROKER": broker,
                    "WAND_CELERY_BACKEND": broker.rsplit("/", 1)[0] + "/1",
                }
            )
            toolchain = FirmwareToolchain(build_root=str(root.parent / f"{root.name}-build"))
            resources = {
                "artifact_store": ArtifactStoreResource(root=str(root)),
                "toolchain": toolchain,
                **({"gates": QualityGates(min_test_accuracy=0.5)} if args.quick else {}),
            }
            with dg.DagsterInstance.get() as instance:
                started = time.monotonic()
                print(f"sweep: host stages into {root} …", file=sys.stderr)
                materialize_all(
                    instance=instance,
                    resources=resources,
                    op_config=quick_op_config() if args.quick else None,
                    device_stages=False,
                    log=lambda m: print(f"  {m}", file=sys.stderr),
                )
                head_s = time.monotonic() - started
                run_config = {
                    **yaml.safe_load(CELERY_YAML.read_text()),
                    "ops": {"device_evaluation": {"config": {"windows": args.windows, "force": args.force}}},
                    "resources": {
                        "artifact_store": {"config": {"root": str(root)}},
                        "toolchain": {"config": {"build_root": toolchain.build_root}},
                    },
                }
                names = [f"wand-{i + 1}" for i in range(args.workers)]
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
                with servers.celery_workers(names, config_yaml=CELERY_YAML, workdir=tmp / "workers", env=env, cwd=REPO):
                    print(f"sweep: {len(variants)} variants on {args.workers} Celery workers …", file=sys.stderr)
                    started = time.monotonic()
                    results = automation.run_sweep(variants, instance=instance, run_config=run_config, timeout_s=4 * 3600)
                    sweep_s = time.monotonic() - started
                print("\n".join(table(instance, results)))
                print(
                    f"\nHost stages {head_s:.0f} s; sweep {sweep_s:.0f} s wall on {args.workers} workers "
                    f"({os.cpu_count()} cores), IREE flags 'project' = compilation/iree_tools.OPTIMISATION_FLAGS."
                )
                return 0 if all(r.success for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
