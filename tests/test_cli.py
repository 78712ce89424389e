"""The main command as a newcomer runs it: ``python -m wand_assets materialize`` in its own process.

What it ends on (the summary, with the report and the web UI command, and nothing after it), Ctrl-C
(one line, nothing half-written) and the leftovers of a SIGKILLed run (removed at the next start,
while a live writer's work in progress is kept).
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import quick_config

from wand_assets.core.targets import DEVICE_TARGETS

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "wand_assets", "materialize"]


def write_config(path: Path, **trained_model) -> Path:
    """The suite's quick configuration as a run-config YAML for ``--config``."""
    ops = {name: {"config": config.model_dump()} for name, config in quick_config().items()}
    ops["trained_model"]["config"].update(trained_model)
    path.write_text(yaml.safe_dump({"ops": ops, "resources": {"gates": {"config": {"min_test_accuracy": 0.5}}}}))
    return path


def cli_env(home: Path, dataset) -> dict[str, str]:
    """As scripts/materialize.sh sets it up, without the IREE source (so the device stages are skipped)."""
    env = {k: v for k, v in os.environ.items() if k not in ("IREE_SOURCE_DIR", "WAND_ARTIFACT_ROOT")}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "DAGSTER_HOME": str(home), "WAND_DATASET": str(dataset)}


def temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tmp")) if root.exists() else []


@pytest.mark.slow
def test_the_run_ends_on_a_summary_with_the_report_and_the_ui_command(tmp_path, dataset_dir):
    home = tmp_path / "home"
    proc = subprocess.run(
        [*CLI, "--config", str(write_config(tmp_path / "quick.yaml"))],
        cwd=REPO,
        env=cli_env(home, dataset_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2, "\n".join(lines[-40:])
    assert "wand: summary" in lines, "\n".join(lines[-40:])
    summary = lines[lines.index("wand: summary") :]
    # The summary is the end of everything the process printed: no exit-time warnings after it.
    assert summary[-1] == "wand: host stages materialized, device stages skipped (exit code 2)"
    assert "nanobind" not in proc.stdout and "leaked" not in proc.stdout

    rows = {
        m[2]: (m[1], m[3])
        for line in summary
        if (m := re.match(r"  (materialized|skipped|FAILED|not run)\s+(\S+(?: \[\S+\])?)\s*(.*)$", line))
    }
    expected = [
        "magic_wand_archive",
        "gesture_windows",
        "trained_model",
        "model_mlir",
        "host_model",
        "host_evaluation",
        "evaluation_report",
    ]
    expected += [f"compiled_model [{t}]" for t in DEVICE_TARGETS]
    for name in expected:
        assert rows.get(name, ("missing",))[0] == "materialized", name
    for target in DEVICE_TARGETS:
        for asset in ("firmware", "device_evaluation"):
            assert rows[f"{asset} [{target}]"] == ("skipped", "IREE_SOURCE_DIR is not set")

    report = Path(next(line for line in summary if line.startswith("  report ")).split(None, 1)[1])
    assert report.name == "report.html" and report.is_file()
    assert report.is_relative_to(home / "wand-artifacts" / "evaluation_report")
    assert "<h2>Performance</h2>" in report.read_text()

    ui = next(line for line in summary if line.startswith("  web UI "))
    command = re.search(r"DAGSTER_HOME=(\S+) .*?(\S+/dagster) dev -w workspace\.yaml -h 127\.0\.0\.1 -p 3000", ui)
    assert command, ui
    assert Path(command[1]) == home
    assert (REPO / command[2]).is_file()  # .venv/bin/dagster of this installation, relative to the repository
    assert temporaries(home / "wand-artifacts") == []


@pytest.mark.slow
def test_ctrl_c_prints_one_line_naming_the_stage_and_keeps_nothing_half_written(tmp_path, dataset_dir):
    home = tmp_path / "home"
    config = write_config(tmp_path / "long.yaml", epochs=500, early_stopping_patience=0)  # still training at Ctrl-C
    proc = subprocess.Popen(
        [*CLI, "--config", str(config)],
        cwd=REPO,
        env=cli_env(home, dataset_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    lines: list[str] = []
    training = threading.Event()

    assert proc.stdout is not None  # stdout=PIPE
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.append(line.rstrip("\n"))
            if re.search(r'STEP_START - Started execution of step "trained_model"', line):
                training.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert training.wait(timeout=600), "\n".join(lines[-40:])
        time.sleep(3)  # into the epochs
        before = len(lines)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole group, Dagster's helpers included
        assert proc.wait(timeout=120) == 130, "\n".join(lines[-40:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)

    about_it = [line for line in lines if re.search(r"interrupt|traceback|KeyboardInterrupt", line, re.IGNORECASE)]
    assert about_it == ["wand: interrupted during trained_model; nothing half-written was kept"], "\n".join(lines[before - 5 :])
    assert lines[-1] == about_it[0]
    root = home / "wand-artifacts"
    assert temporaries(root) == []
    stage = root / "trained_model"
    assert not stage.exists() or all((entry / "DONE").is_file() for entry in stage.iterdir() if entry.is_dir())


WRITER = """
import sys
from pathlib import Path
from wand_assets.core.artifacts import ArtifactStore, atomic_path

stage = ArtifactStore(Path(sys.argv[1])).stage("compiled_model", "rv32imf")
with stage.produce(sys.argv[2]) as out:
    (out / "model.vmfb").write_bytes(b"half a model")
    with atomic_path(stage.path / "current.json") as pointer:
        pointer.write_text("{")
        print("writing", flush=True)
        sys.stdin.read()  # until told to finish
        pointer.write_text('{"fingerprint": "%s"}' % sys.argv[2])
"""


def start_writer(root: Path, fp: str) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), fp], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None  # stdout=PIPE
    assert writer.stdout.readline() == "writing\n"
    return writer


def test_the_next_start_removes_a_killed_runs_temporaries_but_not_a_live_writers(tmp_path):
    home = tmp_path / "home"
    root = home / "wand-artifacts"
    killed = start_writer(root, "dead0000")
    killed.kill()  # SIGKILL: no finally block runs
    killed.wait()
    left = temporaries(root)
    assert len(left) == 2 and all(f".w{killed.pid}-" in p.name for p in left)  # the folder and the file
    live = start_writer(root, "live0000")
    in_progress = [p for p in temporaries(root) if f".w{live.pid}-" in p.name]
    try:
        # A run that fails at once (no dataset) still starts like every run: it cleans up first.
        proc = subprocess.run(
            CLI,
            cwd=REPO,
            env=cli_env(home, tmp_path / "no-dataset"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )
        assert temporaries(root) == in_progress, proc.stdout[-3000:]
    finally:
        live.communicate("", timeout=60)
    assert live.returncode == 0
    assert (root / "compiled_model" / "rv32imf" / "live0000" / "DONE").is_file()  # the live writer finished
    assert temporaries(root) == []

    out = proc.stdout.splitlines()
    assert f"wand: removed 2 temporary file(s) left by killed runs under {root}" in out
    assert proc.returncode == 1
    assert re.match(
        r"  FAILED\s+magic_wand_archive\s+dataset source .*no-dataset.* WAND_DATASET", out[out.index("wand: summary") + 1]
    )
    assert out[-1] == "wand: magic_wand_archive failed; Dagster's log above has the error (exit code 1)"
