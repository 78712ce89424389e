"""Wall time of a cold materialization of the whole pipeline with the default configuration, then of a
second one with nothing changed (which should train and compile nothing).

    .venv/bin/python benchmarks/materialize_wall_time.py [--keep DIR]

Prints a Markdown table for the README.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import dagster as dg

from wand_assets.artifacts import ArtifactStore
from wand_assets.defs.pipeline import materialize_all
from wand_assets.defs.resources import ArtifactStoreResource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="artifact root to use (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="wand-bench-"))
    resources = {"artifact_store": ArtifactStoreResource(root=str(root))}
    instance = dg.DagsterInstance.ephemeral()
    timings = {}
    for label in ("cold", "warm (nothing changed)"):
        started = time.monotonic()
        materialize_all(instance=instance, resources=resources, log=lambda m: print(f"  {m}", flush=True))
        timings[label] = time.monotonic() - started
        print(f"{label}: {timings[label]:.1f} s", flush=True)
    store = ArtifactStore(root)
    training = json.loads((store.stage("trained_model").current() / "training.json").read_text())
    host = json.loads((store.stage("host_evaluation").current() / "summary.json").read_text())
    print()
    print("| materialization | wall time |")
    print("|---|---|")
    for label, seconds in timings.items():
        print(f"| {label} | {seconds:.1f} s |")
    print()
    print(
        f"training: {training['seconds']:.0f} s for {len(training['history']['loss'])} epochs; "
        f"test accuracy {training['test']['accuracy']:.4f} (Keras), {host['metrics']['accuracy']:.4f} (host IREE); "
        f"max |IREE - Keras| {host['max_abs_diff']:.2e}"
    )


if __name__ == "__main__":
    main()
