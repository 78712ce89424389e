"""Evaluating a model on a device over the UART protocol: the host side of one evaluation session.

The sequence is the seed's (KENNING_FACTS §1.5): IOSPEC and MODEL once, then DATA / PROCESS / OUTPUT
for each window. After every PROCESS this client also asks STATS, whose named records carry the
device's own instruction, cycle and timer counts for that inference — numbers measured on the
device, not estimated by the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from wand_assets.compilation.iospec import ModelIOSpec
from wand_assets.device.protocol import DeviceClient


@dataclass
class DeviceRun:
    scores: np.ndarray  # (n, classes) float32 as the device computed them
    inference_instructions: np.ndarray  # (n,) minstret delta around iree_vm_invoke (or 0 if not reported)
    inference_cycles: np.ndarray
    inference_seconds: np.ndarray  # simulated: mtime delta / mtime_hz
    round_trip_seconds: np.ndarray  # host wall time of DATA+PROCESS+OUTPUT+STATS
    final_stats: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0  # host wall time of IOSPEC + MODEL
    wall_seconds: float = 0.0


def evaluate_on_device(
    client: DeviceClient,
    io: ModelIOSpec,
    vmfb: bytes,
    windows: np.ndarray,
    *,
    log: Callable[[str], None] = lambda _m: None,
    log_every: int = 50,
    process_timeout_s: float = 120.0,
) -> DeviceRun:
    """Run every window through the device; ``windows`` are already in the model's input layout."""
    started = time.monotonic()
    client.load_iospec(io.pack())
    client.load_model(vmfb)
    setup = time.monotonic() - started
    log(f"model loaded on the device ({len(vmfb)} bytes) in {setup:.2f} s")
    out_dtype = np.dtype(io.outputs[0].dtype).newbyteorder("<")
    in_dtype = np.dtype(io.inputs[0].dtype).newbyteorder("<")
    n = len(windows)
    scores = np.zeros((n, io.outputs[0].length), np.float32)
    instructions, cycles = np.zeros(n, np.int64), np.zeros(n, np.int64)
    seconds, round_trips = np.zeros(n), np.zeros(n)
    stats: dict[str, int] = {}
    for i, window in enumerate(windows):
        t0 = time.monotonic()
        payload = np.ascontiguousarray(window, dtype=in_dtype).tobytes()
        if len(payload) != io.input_bytes:
            raise ValueError(f"window {i} has {len(payload)} bytes; the model takes {io.input_bytes}")
        client.send_input(payload)
        client.run_inference(timeout_s=process_timeout_s)
        raw = client.read_output()
        if len(raw) != io.output_bytes:
            raise ValueError(f"device returned {len(raw)} output bytes for window {i}; expected {io.output_bytes}")
        scores[i] = np.frombuffer(raw, dtype=out_dtype)
        stats = client.read_stats()
        instructions[i] = stats.get("inference_instructions", 0)
        cycles[i] = stats.get("inference_cycles", 0)
        hz = stats.get("mtime_hz", 0)
        seconds[i] = stats.get("inference_mtime_ticks", 0) / hz if hz else np.nan
        round_trips[i] = time.monotonic() - t0
        if (i + 1) % log_every == 0 or i + 1 == n:
            log(
                f"device: {i + 1}/{n} windows, last inference {instructions[i]:,} instructions, "
                f"{seconds[i] * 1e3:.3f} ms simulated"
            )
    return DeviceRun(scores, instructions, cycles, seconds, round_trips, stats, setup, time.monotonic() - started)
