"""Evaluating a model on a device over the UART protocol: the host side of one evaluation session.

The sequence is the seed's (KENNING_FACTS §1.5), in either protocol (with KenningProtocol framed by
the PING connect and disconnect of Kenning v0.8.2's host): IOSPEC and MODEL once, then DATA / PROCESS / OUTPUT
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
from wand_assets.device import kenning_protocol, protocol
from wand_assets.device.kenning_protocol import KenningClient
from wand_assets.device.protocol import DeviceClient, Port

# The wire protocols a device session can speak (the firmware serves both on one UART).
PROTOCOLS = {protocol.PROTOCOL: protocol, kenning_protocol.PROTOCOL: kenning_protocol}


def check_protocol(name: str) -> None:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown device protocol {name!r}; available: {', '.join(PROTOCOLS)}")


def device_client(
    name: str, port: Port, *, timeout_s: float = 30.0, log: Callable[[str], None] = lambda _m: None
) -> DeviceClient | KenningClient:
    """The client for protocol ``name``: "legacy" (Kenning <= v0.8.0) or "kenning" (v0.8.1+)."""
    check_protocol(name)
    if name == kenning_protocol.PROTOCOL:
        return KenningClient(port, timeout_s=timeout_s, on_log=lambda line: log(f"device log: {line}"))
    return DeviceClient(port, timeout_s=timeout_s)


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
    client: DeviceClient | KenningClient,
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
    client.connect()
    client.load_iospec(client.iospec_payload(io))
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
    client.disconnect()
    return DeviceRun(scores, instructions, cycles, seconds, round_trips, stats, setup, time.monotonic() - started)
