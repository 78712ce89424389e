"""The Renode backend with Renode: device evaluation equal to QEMU's, teardown, errors.

Needs Renode + pyrenode3 (``PYRENODE_BUILD_DIR`` + ``PYRENODE_RUNTIME``, or ``PYRENODE_PKG``) and an
artifact store with firmware, compiled models and gesture windows (``WAND_ARTIFACT_ROOT``; run the
pipeline once). ``WAND_RENODE_WINDOWS`` sets how many test windows to compare (default 24; ``all``
for the whole split).
"""

import os
from pathlib import Path

import numpy as np
import pytest

from wand_assets import firmware_build, renode, simulators
from wand_assets.artifacts import ArtifactStore, MissingArtifactError, default_artifact_root
from wand_assets.device_eval import evaluate_on_device
from wand_assets.model import MODEL_IO, as_model_input
from wand_assets.protocol import DeviceClient
from wand_assets.targets import DEVICE_TARGETS, get_target
from wand_assets.windows import WindowSet

pytestmark = pytest.mark.slow

try:
    renode.check_renode_available()
    RENODE_MISSING = ""
except renode.RenodeUnavailable as exc:
    RENODE_MISSING = f"Renode not available: set PYRENODE_BUILD_DIR+PYRENODE_RUNTIME or PYRENODE_PKG ({exc})"

needs_renode = pytest.mark.skipif(bool(RENODE_MISSING), reason=RENODE_MISSING or "Renode available")


def artifacts_for(target: str) -> tuple[Path, bytes, np.ndarray]:
    store = ArtifactStore(default_artifact_root())
    try:
        elf = store.stage("firmware", target).current() / firmware_build.ELF_NAME
        vmfb = (store.stage("compiled_model", target).current() / "model.vmfb").read_bytes()
        windows = store.stage("gesture_windows").current() / "windows.npz"
    except (MissingArtifactError, FileNotFoundError) as exc:
        pytest.skip(f"no built firmware/model/windows for {target} in the artifact store ({exc}); set WAND_ARTIFACT_ROOT")
    test = WindowSet.load(windows).select("test")
    count = os.environ.get("WAND_RENODE_WINDOWS", "24")
    x = as_model_input(test.x)
    return elf, vmfb, x if count == "all" else x[: int(count)]


def evaluate(backend: str, target: str, workdir: Path):
    elf, vmfb, x = artifacts_for(target)
    with simulators.open_session(backend, elf, get_target(target), workdir) as session:
        run = evaluate_on_device(DeviceClient(session.port, timeout_s=60), MODEL_IO, vmfb, x)
        info = session.describe()
    return run, info, getattr(session, "statistics", None)


@needs_renode
@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_renode_predictions_equal_qemus(tmp_path, target):
    qemu_run, _, _ = evaluate("qemu", target, tmp_path / "qemu")
    run, info, stats = evaluate("renode", target, tmp_path / "renode")
    assert info["name"] == "renode" and info["version"].startswith("Renode ")
    assert np.array_equal(run.scores.argmax(axis=1), qemu_run.scores.argmax(axis=1))
    assert np.abs(run.scores - qemu_run.scores).max() <= 1e-6
    # The same ELF and model: the device's own instruction count agrees across simulators.
    assert np.median(run.inference_instructions) == pytest.approx(np.median(qemu_run.inference_instructions), rel=0.01)
    n = len(run.scores)
    assert len(stats["request_window_instructions"]) == n
    assert min(stats["request_window_instructions"]) >= np.median(run.inference_instructions)
    assert stats["instructions_per_inference_pass"] > np.median(run.inference_instructions)
    if get_target(target).has_vector:
        assert stats["vector_opcodes_fraction"] > 0.01
        assert stats["inference"]["vector_opcodes_fraction"] > stats["vector_opcodes_fraction"]
        assert any(op.startswith("vf") for op in stats["sorted_vector_opcode_counters"])
    else:
        assert stats["vector_opcodes_fraction"] == 0.0
    assert sum(stats["memory_accesses"]["read"]) > 0 and sum(stats["peripheral_accesses"]["uart0"]["write"]) > 0
    assert sum(stats["executed_instructions"]["cpu"]) > 0
    print(
        f"\n{target}: {n} windows; Renode {stats['instructions_per_inference_pass']:,.0f} instructions per pass, "
        f"vector share {100 * stats['vector_opcodes_fraction']:.2f} % (within PROCESS: "
        f"{stats['inference']['instructions_per_inference_pass']:,.0f} per pass, "
        f"{100 * stats['inference']['vector_opcodes_fraction']:.2f} %), device {np.median(run.inference_instructions):,.0f} "
        f"per inference; session {stats['session_wall_seconds']:.1f} s, worker peak RSS "
        f"{stats['worker_peak_rss_kib'] / 1024:.0f} MiB"
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@needs_renode
def test_worker_is_gone_after_an_error_in_the_session(tmp_path):
    elf, _, _ = artifacts_for("rv32imf")
    with pytest.raises(simulators.DeviceSessionError, match="boom"):
        with simulators.open_session("renode", elf, get_target("rv32imf"), tmp_path) as session:
            pid = session.worker.process.pid
            raise RuntimeError("boom")
    assert session.statistics is None
    assert not _group_alive(pid)


@needs_renode
def test_monitor_errors_are_reported_with_the_command(tmp_path):
    elf, _, _ = artifacts_for("rv32imf")
    setup = renode.RenodeSetup(uart="sysbus.no_such_uart")
    with pytest.raises(renode.SimulatorError, match="sysbus.no_such_uart"):
        with renode.start_renode(elf, get_target("rv32imf"), tmp_path, setup=setup):
            pass
