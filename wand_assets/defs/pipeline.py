"""Materialize the whole pipeline in dependency order, one target partition at a time.

The web UI does the same with "Materialize all" (a backfill); this is the command-line path the
README's main command and the end-to-end test use.
"""

from collections.abc import Callable, Sequence

import dagster as dg

from wand_assets.definitions import defs
from wand_assets.targets import DEVICE_TARGETS, TARGETS

# Stages in order; partitioned stages run once per selected target.
UNPARTITIONED_HEAD = ["magic_wand_archive", "gesture_windows", "trained_model", "model_mlir"]
PER_TARGET = ["compiled_model"]
HOST_REFERENCE = ["host_evaluation"]
PER_DEVICE_TARGET = ["firmware", "device_evaluation"]
REPORT = ["evaluation_report"]


def _all_assets() -> list:
    return [*defs.assets, *defs.asset_checks]


def materialize_all(
    *,
    targets: Sequence[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    op_config: dict[str, dg.Config] | None = None,
    resources: dict | None = None,
    log: Callable[[str], None] = print,
    device_stages: bool = True,
) -> list[dg.ExecuteInProcessResult]:
    """Run every stage; raises on the first failed step or failed blocking check.

    ``op_config`` maps asset names to their run configuration (e.g. a short training for tests).
    ``device_stages=False`` stops after the host reference (no firmware build, no simulator).
    """
    targets = list(targets or TARGETS)
    if "host" not in targets:
        targets.insert(0, "host")  # host_evaluation needs the host reference
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    merged_resources = {**defs.resources, **(resources or {})}
    results = []

    def run(selection: list[str], partition_key: str | None = None) -> None:
        label = ", ".join(selection) + (f" [{partition_key}]" if partition_key else "")
        log(f"materializing {label}")
        results.append(
            dg.materialize(
                _all_assets(),
                selection=selection,
                partition_key=partition_key,
                instance=instance,
                run_config=dg.RunConfig(ops={k: v for k, v in (op_config or {}).items() if k in selection}),
                resources=merged_resources,
                tags={"wand/stage": label},
            )
        )

    run(UNPARTITIONED_HEAD)
    for target in targets:
        run(PER_TARGET, partition_key=target)
    run(HOST_REFERENCE)
    if device_stages:
        for target in (t for t in targets if t in DEVICE_TARGETS):
            run(PER_DEVICE_TARGET, partition_key=target)
    run(REPORT)
    return results
