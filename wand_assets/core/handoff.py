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


def _in_run(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey, partition: str | None):
    for event in reversed(instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)):
        materialization = event.asset_materialization
        if materialization and materialization.asset_key == key and materialization.partition == partition:
            return dg.EventLogRecord(storage_id=0, event_log_entry=event)
    return None


def upstream_record(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey, partition: str | None):
    """The materialization of ``key`` [``partition``] a step of ``run_id`` reads: its own run's, else its
    chain's newest, else the latest; None if there is none."""
    if (record := _in_run(instance, run_id, key, partition)) is not None:
        return record
    run = instance.get_run_by_id(run_id)
    if run is not None and (chain := run.tags.get(CHAIN_TAG)):
        for other in instance.get_runs(filters=dg.RunsFilter(tags={CHAIN_TAG: chain})):  # newest first
            if other.run_id != run_id and (record := _in_run(instance, other.run_id, key, partition)) is not None:
                return record
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0] if records else None


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
        found = {p: r for p in context.asset_partition_keys if (r := upstream_record(context.instance, run_id, key, p))}
        entries = {p: _entry_of(r) for p, r in found.items()}
        # (Dagster keeps input metadata per partition only; a many-partition read goes to the log.)
        context.log.info(
            f"{key.to_user_string()}: "
            + ("; ".join(f"{p}: {e} (run {found[p].run_id})" for p, e in entries.items()) or "none yet")
        )
        return entries

    @staticmethod
    def _one(context: dg.InputContext, key: dg.AssetKey, run_id: str, partition: str | None) -> Path:
        record = upstream_record(context.instance, run_id, key, partition)
        label = key.to_user_string() + (f" [{partition}]" if partition else "")
        if record is None:
            raise MissingUpstream(f"{label} was never materialized: materialize it first")
        entry = _entry_of(record)
        context.add_input_metadata({"read": f"{entry} (run {record.run_id})"})
        return entry
