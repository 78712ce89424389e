"""Wall time of the README's main command: a cold materialization, then the same again with nothing
changed (which should train and compile nothing). One fresh process per run, exactly as a person runs it.

    .venv/bin/python benchmarks/materialize_wall_time.py [--keep DIR] [--direct] [--config FILE]

Cold means a fresh DAGSTER_HOME and artifact root (``$DAGSTER_HOME/wand-artifacts``); warm reuses both.
The command is ``bash scripts/materialize.sh`` (setup's checks included; setup itself runs once first,
untimed, so a first-time installation is not counted); ``--direct`` times the
``python -m wand_assets materialize`` it execs instead. Whether the device stages run is the main
command's own decision: with ``IREE_SOURCE_DIR`` the whole pipeline, without it the host half (exit code
2). Each run's output goes to ``<DAGSTER_HOME>/run-<n>.log``; the script prints a Markdown table for the
README with the date, the machine and the command.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402 - after sys.path, so the checkout's package is the one measured

from wand_assets.core.handoff import latest_entry  # noqa: E402

ACCEPTED = {0: "every stage", 2: "host stages only (device stages skipped)"}


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def summary_rows(log: str) -> list[tuple[str, str]]:
    """(state, asset [partition]) from the summary the main command ends on."""
    tail = log[log.rfind("wand: summary") :]
    return re.findall(r"^  (materialized|skipped|FAILED|not run)\s+(\S+(?: \[[^\]]+\])?)", tail, re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="DAGSTER_HOME to use (must not exist yet; default: a temporary folder)")
    parser.add_argument("--direct", action="store_true", help="time `python -m wand_assets materialize`, not the script")
    parser.add_argument("--config", help="run-config YAML passed to the command (default: the default configuration)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    args = parser.parse_args()

    if args.keep:
        home = Path(args.keep).absolute()
        if home.exists() and any(home.iterdir()):
            parser.error(f"{home} is not empty: a cold run needs a fresh DAGSTER_HOME")
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="wand-bench-"))
    root = home / "wand-artifacts"
    env = {**os.environ, "DAGSTER_HOME": str(home), "WAND_ARTIFACT_ROOT": str(root)}
    python = REPO / ".venv" / "bin" / "python"
    command = (
        [str(python if python.exists() else sys.executable), "-m", "wand_assets", "materialize"]
        if args.direct
        else ["bash", "scripts/materialize.sh"]
    )
    if args.config:
        command += ["--config", str(Path(args.config).absolute())]
    shown_env = " ".join(f"{k}={env[k]}" for k in ("WAND_DATASET", "IREE_SOURCE_DIR") if env.get(k))
    shown = f"{shown_env} DAGSTER_HOME=<fresh folder> {shlex.join(command)}".strip()

    if not args.direct:
        print("setup (untimed): bash scripts/setup.sh", flush=True)
        subprocess.run(["bash", "scripts/setup.sh"], cwd=REPO, env=env, check=True)
    started_at = datetime.datetime.now().astimezone()
    load_before = load_average()
    runs = []
    for n, label in enumerate(("cold (fresh DAGSTER_HOME and artifact root)", "warm (the same again, nothing changed)"), 1):
        log_path = home / f"run-{n}.log"
        print(f"{label}: {shown}  (output in {log_path})", flush=True)
        started = time.monotonic()
        with open(log_path, "w") as log:
            code = subprocess.run(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout, check=False
            ).returncode
        seconds = time.monotonic() - started
        text = log_path.read_text(errors="replace")
        if code not in ACCEPTED:
            tail = "\n".join(text.splitlines()[-40:])
            sys.exit(f"{label} run exited with status {code} after {seconds:.1f} s; the end of {log_path}:\n{tail}")
        rows = summary_rows(text)
        device = sorted(
            {a.split(" [")[1][:-1] for state, a in rows if state == "materialized" and a.startswith("device_evaluation [")}
        )
        runs.append((label, seconds, code, device))
        print(f"  {seconds:.1f} s, exit code {code}: {ACCEPTED[code]}", flush=True)

    instance = dg.DagsterInstance.local_temp(tempdir=str(home))  # the runs' own history
    training = json.loads((latest_entry(instance, "trained_model") / "training.json").read_text())
    host = json.loads((latest_entry(instance, "host_evaluation") / "summary.json").read_text())
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print()
    print("| materialization, one process each | device stages | wall time |")
    print("|---|---|---|")
    for label, seconds, code, device in runs:
        ran = f"ran ({', '.join(device)})" if device else "skipped (IREE_SOURCE_DIR not set)" if code == 2 else "none selected"
        print(f"| {label} | {ran} | {seconds:.1f} s |")
    print()
    print(
        f"Measured {started_at:%Y-%m-%d} on a {nproc}-core machine (`nproc` = {nproc}; load average (1/5/15 min) {load_before} "
        f"before, {load_average()} after: other jobs share this machine) with `{shown}`."
    )
    print(
        f"Training: {training['seconds']:.0f} s for {len(training['history']['loss'])} epochs; "
        f"test accuracy {training['test']['accuracy']:.4f} (Keras), {host['metrics']['accuracy']:.4f} (host IREE); "
        f"max |IREE - Keras| {host['max_abs_diff']:.2e}."
    )


if __name__ == "__main__":
    main()
