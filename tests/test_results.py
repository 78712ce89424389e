"""Result assembly and the report's device status, without a simulator."""

import json

import numpy as np
import pandas as pd
import pytest

from wand_assets.core.artifacts import sha256_file
from wand_assets.core.targets import DEVICE_TARGETS, get_target
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.device.firmware_build import ELF_NAME
from wand_assets.device.results import EvaluationInputs, assemble, parity
from wand_assets.device.session import DeviceRun
from wand_assets.report.build import ReportInputs, device_status, pareto_front

N = 5


def windows() -> WindowSet:
    strings = np.array(["test"] * N)
    return WindowSet(
        np.zeros((N, 128, 3), np.float32), np.arange(N) % 4, strings, strings, np.array([f"r#{i}" for i in range(N)]), strings
    )


def host_predictions(scores: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "window": np.arange(len(scores)),
            "iree_class": scores.argmax(axis=1),
            **{f"iree_{c}": scores[:, i] for i, c in enumerate(CLASSES)},
        }
    )


def device_run(scores: np.ndarray) -> DeviceRun:
    ones = np.ones(len(scores))
    return DeviceRun(scores.astype(np.float32), ones * 1000, ones * 1000, ones * 1e-4, ones * 0.01, {"heap_bytes_peak": 7})


INPUTS = EvaluationInputs(vmfb="v" * 64, elf="e" * 64, windows="w" * 64, host="h" * 64)


def test_device_equal_to_the_host_passes_parity_and_keeps_kennings_keys():
    scores = np.eye(4)[np.arange(N) % 4] * 0.9 + 0.025
    measured = assemble(
        get_target(DEVICE_TARGETS[0]),
        windows(),
        host_predictions(scores),
        device_run(scores),
        inputs=INPUTS,
        simulator={"name": "qemu"},
        vmfb_bytes=123,
        wall_seconds=1.0,
    )
    assert parity(measured.summary, atol=1e-5)
    assert measured.summary["accuracy"] == 1.0 and measured.summary["inputs"]["vmfb"] == "v" * 64
    assert measured.measurements["total"] == N and measured.measurements["compiled_model_size"] == 123
    assert list(measured.frame["device_class"]) == list(np.arange(N) % 4)


def test_one_flipped_window_fails_parity():
    host = np.eye(4)[np.arange(N) % 4]
    device = host.copy()
    device[2] = np.roll(device[2], 1)
    measured = assemble(
        get_target(DEVICE_TARGETS[0]),
        windows(),
        host_predictions(host),
        device_run(device),
        inputs=INPUTS,
        simulator={},
        vmfb_bytes=1,
        wall_seconds=1.0,
    )
    assert measured.summary["argmax_mismatches_vs_host"] == 1
    assert not parity(measured.summary, atol=10.0)


def test_a_host_reference_for_other_windows_is_refused():
    scores = np.eye(4)[np.arange(N) % 4]
    with pytest.raises(ValueError, match="host reference has 3 windows"):
        assemble(
            get_target(DEVICE_TARGETS[0]),
            windows(),
            host_predictions(scores[:3]),
            device_run(scores),
            inputs=INPUTS,
            simulator={},
            vmfb_bytes=1,
            wall_seconds=1.0,
        )


def entry(path, **files):
    path.mkdir(parents=True)
    for name, content in files.items():
        (path / name.replace("_dot_", ".")).write_bytes(content)
    return path


def test_device_results_are_current_stale_or_missing(tmp_path):
    scalar, vector = DEVICE_TARGETS[:2]
    compiled = {t: entry(tmp_path / "vmfb" / t, model_dot_vmfb=t.encode()) for t in (scalar, vector)}
    firmware = {t: entry(tmp_path / "fw" / t, **{ELF_NAME.replace(".", "_dot_"): b"elf" + t.encode()}) for t in (scalar, vector)}
    measured_now = {"vmfb": sha256_file(compiled[scalar] / "model.vmfb"), "elf": sha256_file(firmware[scalar] / ELF_NAME)}
    measured_before = {"vmfb": sha256_file(compiled[scalar] / "model.vmfb"), "elf": "0" * 64}  # an older firmware
    devices = {
        scalar: entry(tmp_path / "dev" / scalar, summary_dot_json=json.dumps({"inputs": measured_now}).encode()),
        vector: entry(tmp_path / "dev" / vector, summary_dot_json=json.dumps({"inputs": measured_before}).encode()),
    }
    inputs = ReportInputs(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, compiled=compiled, firmware=firmware, devices=devices)
    status = {row["target"]: row["status"] for row in device_status(inputs)}
    assert status[scalar] == "current" and status[vector] == "stale"
    assert all(status[t] == "missing" for t in DEVICE_TARGETS[2:])
    inputs = ReportInputs(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, compiled=compiled, firmware=firmware)
    assert {row["status"] for row in device_status(inputs)} == {"missing"}


def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    points = {"small_slow": (100.0, 300.0), "big_fast": (200.0, 80.0), "dominated": (250.0, 90.0), "tie_fast": (200.0, 80.0)}
    assert pareto_front(points) == {"small_slow", "big_fast", "tie_fast"}
    assert pareto_front({"only": (1.0, 1.0)}) == {"only"}
