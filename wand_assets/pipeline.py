"""Materialize the whole pipeline in dependency order, one target partition at a time.

The web UI does the same with "Materialize all" (a backfill); this is the command-line path the
README's main command and the end-to-end test use.
"""

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from wand_assets.automation import COMPILE, DEVICE, HEAD, HOST_REFERENCE, REPORT
from wand_assets.core.artifacts import remove_stale_temps
from wand_assets.core.handoff import CHAIN_TAG
from wand_assets.core.targets import DEVICE_TARGETS, unrunnable_targets
from wand_assets.definitions import ASSET_CHECKS, ASSETS, RESOURCES

_INTERRUPTS = (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)


@dataclass
class Materialized:
    asset: str
    partition: str | None
    metadata: dict  # the materialization's metadata, e.g. "path"


@dataclass
class Stage:
    """One ``dg.materialize`` of the chain, and what became of it."""

    assets: list[str]
    partition: str | None = None
    status: str = "pending"  # pending | running | materialized | failed | interrupted | skipped
    error: str = ""  # what failed: the exception's message on one line
    step: str | None = None  # the step that was running when it failed or was interrupted
    materialized: list[Materialized] = field(default_factory=list)
    failed_checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, asset, its metadata)

    @property
    def label(self) -> str:
        return ", ".join(self.assets) + (f" [{self.partition}]" if self.partition else "")

    @property
    def where(self) -> str:
        """What failed or was interrupted: a failed check, else the running step (an asset), else the stage."""
        suffix = f" [{self.partition}]" if self.partition else ""
        if self.failed_checks:
            return "; ".join(f"check {check} on {asset}" for check, asset, _ in self.failed_checks) + suffix
        if self.step:
            return self.step + suffix
        return self.label


def plan_stages(targets: Sequence[str] | None = None, *, device_stages: bool = True, backend: str = "qemu") -> list[Stage]:
    """The chain of runs: the head, the host reference, per device target its .vmfb (and, unless
    ``device_stages`` is off, its firmware and device evaluation, else marked skipped), the report.

    With the device stages on, the default chain leaves out the targets the simulator ``backend``
    cannot run (Springbok on QEMU: :func:`unrunnable_targets`); asked for by name, such a target is
    kept and its evaluation fails saying why.
    """
    asked = set(targets or ())
    targets = [t for t in (targets or DEVICE_TARGETS) if t != "host"]  # "host": the host reference, always run
    unknown = [t for t in targets if t not in DEVICE_TARGETS]
    if unknown:
        raise ValueError(f"unknown device targets {unknown}; known: {', '.join(DEVICE_TARGETS)}")
    if device_stages:
        targets = [t for t in targets if t in asked or t not in unrunnable_targets(backend)]
    stages = [Stage(HEAD), Stage(HOST_REFERENCE)]
    stages.extend(Stage(COMPILE + DEVICE if device_stages else COMPILE, t) for t in targets)
    if not device_stages:
        stages += [Stage(DEVICE, t, status="skipped") for t in targets]
    stages.append(Stage(REPORT))
    return stages


def _all_assets() -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    return [*ASSETS, *ASSET_CHECKS]


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _record_run(stage: Stage, instance: dg.DagsterInstance, tag: str) -> None:
    """Fill in what the stage's run materialized and which step ran last, from the run's event log."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"wand/stage_run": tag}), limit=1)
    if not runs:
        return  # interrupted before Dagster created the run
    kinds = {
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    }
    for entry in instance.all_logs(runs[0].run_id, of_type=kinds):
        event = entry.dagster_event
        if event is None:  # a plain log message; of_type= selects only Dagster events
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            stage.step = event.step_key
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.materialization
            stage.materialized.append(Materialized(mat.asset_key.to_user_string(), mat.partition, dict(mat.metadata)))
        elif not (check := event.asset_check_evaluation_data).passed:
            values = ", ".join(f"{k} {_short(getattr(v, 'value', v))}" for k, v in check.metadata.items())
            stage.failed_checks.append((check.check_name, check.asset_key.to_user_string(), values))


def materialize_all(
    *,
    targets: Sequence[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    op_config: Mapping[str, dg.Config | dict] | None = None,
    resources: dict | None = None,
    log: Callable[[str], None] = print,
    device_stages: bool = True,
    progress: list[Stage] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Run every stage; raises on the first failed step or failed blocking check.

    ``op_config`` maps asset names to their run configuration (e.g. a short training for tests).
    ``device_stages=False`` stops after the host reference (no firmware build, no simulator).
    ``progress``, if given, receives the planned stages at once and follows each one's status, so a
    caller still knows what ran, what failed and where after an exception or an interrupt.

    First removes the temporaries that killed runs left under the artifact root (never a live run's).
    """
    merged_resources = {**RESOURCES, **(resources or {})}
    backend = merged_resources["simulator"].backend
    stages = plan_stages(targets, device_stages=device_stages, backend=backend)
    if device_stages and not targets and (left_out := unrunnable_targets(backend)):
        log(f"left out {', '.join(left_out)}: the {backend} backend cannot run their boards (use backend renode)")
    if progress is not None:
        progress.extend(stages)
    root = merged_resources["artifact_store"].store().root
    if removed := remove_stale_temps(root):
        log(f"removed {len(removed)} temporary file(s) left by killed runs under {root}")
    instance = instance or dg.DagsterInstance.ephemeral()  # one instance for the chain: one history
    chain = uuid.uuid4().hex  # each run reads what the chain's earlier runs wrote (core/handoff.py)
    results = []
    for stage in stages:
        if stage.status == "skipped":
            continue
        log(f"materializing {stage.label}")
        stage.status = "running"
        tag = uuid.uuid4().hex
        try:
            results.append(
                dg.materialize(
                    _all_assets(),
                    selection=stage.assets,
                    partition_key=stage.partition,
                    instance=instance,
                    run_config=dg.RunConfig(ops={k: v for k, v in (op_config or {}).items() if k in stage.assets}),
                    resources=merged_resources,
                    tags={"wand/stage": stage.label, "wand/stage_run": tag, CHAIN_TAG: chain},
                )
            )
        except BaseException as exc:
            stage.status = "interrupted" if isinstance(exc, _INTERRUPTS) else "failed"
            stage.error = " ".join(str(exc).split())[:240] or type(exc).__name__
            with contextlib.suppress(Exception):  # never hide the exception behind a bookkeeping error
                _record_run(stage, instance, tag)
            raise
        stage.status = "materialized"
        _record_run(stage, instance, tag)
    return results


def load_run_config(path: str | Path, resources: dict | None = None) -> tuple[dict[str, dict], dict]:
    """A run-config YAML, as in the launchpad, for every run of the chain: ``(op_config, resources)``.

    ``ops: {<asset>: {config: {...}}}`` configures assets; ``resources: {<name>: {config: {...}}}``
    overrides fields of the code location's resources (or of ``resources``), keeping the others.
    """
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"ops", "resources"}:
        raise ValueError(f"{path}: expected only 'ops:' and 'resources:' sections")

    def sections(kind: str, known) -> dict[str, dict]:
        entries = doc.get(kind) or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: '{kind}:' must map names to {{config: {{...}}}}")
        if unknown := sorted(set(entries) - set(known)):
            raise ValueError(f"{path}: unknown {kind} {unknown}; known: {', '.join(sorted(known))}")
        configs = {}
        for name, body in entries.items():
            config = (body or {}).get("config") if isinstance(body, dict) else None
            if not isinstance(config if config is not None else {}, dict):
                raise ValueError(f"{path}: {kind}.{name} must be {{config: {{field: value, ...}}}}")
            configs[name] = config or {}
        return configs

    op_config = {
        name: {"config": config}
        for name, config in sections("ops", {key.to_user_string() for a in ASSETS for key in a.keys}).items()
    }
    base = {**RESOURCES, **(resources or {})}
    built = {
        name: type(base[name])(**{**base[name].model_dump(), **config})  # fields not given keep their values
        for name, config in sections("resources", base).items()
    }
    return op_config, built
