"""How a stage gets its upstream: the artifact entry that upstream's materialization recorded.

Every asset returns the immutable entry folder it wrote (or found) and names it in its materialization
metadata (``entry``). The IO manager below hands a downstream step exactly that folder: the
materialization of the same run when the upstream ran in it; else that of the newest run of the same
chain (the runs ``wand_assets.pipeline`` launches for one command share a ``wand/chain`` tag), so two
chains at once each read their own; otherwise the upstream's latest materialization for the partition,
the one Dagster also records as the input's data version. So what the lineage shows is what was read,
even with several runs on one artifact root and one instance.
"""

from pathlib import Path
from typing import Any

import dagster as dg

ENTRY = "entry"  # the metadata key every asset sets to the entry folder it materialized
CHAIN_TAG = "wand/chain"  # shared by the runs of one command-line materialization


class MissingUpstream(dg.Failure):
    pass


def _entry_of(record) -> Path:
    metadata = record.asset_materialization.metadata
    if ENTRY not in metadata:
        raise MissingUpstream(
            f"{record.asset_key.to_user_string()}'s materialization in run {record.run_id} names no artifact entry "
            "(it predates this version of wand): materialize it again"
        )
    return Path(metadata[ENTRY].value)


def _run_and_chain_materializations(instance: dg.DagsterInstance, run_id: str) -> dict[tuple[dg.AssetKey, str | None], Any]:
    """What ``run_id`` and the other runs of its chain materialized, by (asset, partition): the run's
    own newest first, then the chain's runs newest first; the first one found for a key stands."""
    runs = [run_id]
    run = instance.get_run_by_id(run_id)
    if run is not None and (chain := run.tags.get(CHAIN_TAG)):
        runs += [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={CHAIN_TAG: chain})) if r.run_id != run_id]
    found: dict[tuple[dg.AssetKey, str | None], Any] = {}
    for rid in runs:
        for event in reversed(instance.all_logs(rid, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)):
            if (materialization := event.asset_materialization) is not None:
                found.setdefault(
                    (materialization.asset_key, materialization.partition), dg.EventLogRecord(storage_id=0, event_log_entry=event)
                )
    return found


def upstream_records(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey, partitions: list[str | None]) -> dict:
    """The materialization of ``key`` per partition that a step of ``run_id`` reads: its own run's, else
    its chain's newest, else the latest; partitions never materialized are left out."""
    in_chain = _run_and_chain_materializations(instance, run_id)
    chosen = {}
    for partition in partitions:
        record = in_chain.get((key, partition))
        if record is None:
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
            ).records
            record = latest[0] if latest else None
        if record is not None:
            chosen[partition] = record
    return chosen


def latest_entry(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> Path:
    """The entry of ``asset``'s latest materialization (for benchmarks, tests and tools outside a run)."""
    key = dg.AssetKey(asset)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        raise MissingUpstream(f"{asset}" + (f" [{partition}]" if partition else "") + " was never materialized in this instance")
    return _entry_of(records[0])


class ArtifactHandoff(dg.ConfigurableIOManager):
    """Stores nothing itself (the assets write immutable entries); loads the upstream's entry folder.

    A partitioned upstream read by one partition gives a ``Path``; read over several partitions (the
    report over every target) a ``dict`` partition → ``Path`` holding only the partitions that exist.
    """

    def handle_output(self, context: dg.OutputContext, obj: Path) -> None:
        if not isinstance(obj, Path) or not obj.is_dir():
            raise TypeError(f"{context.asset_key.to_user_string()} must return its artifact entry folder, not {obj!r}")

    def load_input(self, context: dg.InputContext):
        key = context.asset_key
        run_id = context.step_context.run_id
        if not context.has_asset_partitions:
            return self._one(context, key, run_id, None)
        if context.step_context.has_partition_key:  # one target's step reads that target's upstream
            (partition,) = context.asset_partition_keys
            return self._one(context, key, run_id, partition)
        found = upstream_records(context.instance, run_id, key, list(context.asset_partition_keys))
        entries = {p: _entry_of(r) for p, r in found.items()}
        # (Dagster keeps input metadata per partition only; a many-partition read goes to the log.)
        context.log.info(
            f"{key.to_user_string()}: "
            + ("; ".join(f"{p}: {e} (run {found[p].run_id})" for p, e in entries.items()) or "none yet")
        )
        return entries

    @staticmethod
    def _one(context: dg.InputContext, key: dg.AssetKey, run_id: str, partition: str | None) -> Path:
        record = upstream_records(context.instance, run_id, key, [partition]).get(partition)
        label = key.to_user_string() + (f" [{partition}]" if partition else "")
        if record is None:
            raise MissingUpstream(f"{label} was never materialized: materialize it first")
        entry = _entry_of(record)
        context.add_input_metadata({"read": f"{entry} (run {record.run_id})"})
        return entry
