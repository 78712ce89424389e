"""The firmware in QEMU: protocol conformance (TEST-ONLY protocol firmware, runs in CI), teardown on
traps, hangs and failures, and — with IREE_SOURCE_DIR — the real device evaluation for every target.
"""

import dataclasses
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from process_checks import (
    can_listen_on,
    is_running,
    kill_quietly,
    listening_sockets,
    read_line,
    start_python,
    wait_until_gone,
)

from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core.targets import DEVICE_TARGETS, get_target
from wand_assets.device import qemu
from wand_assets.device.firmware_build import build_firmware
from wand_assets.device.protocol import (
    MAX_MESSAGE_SIZE,
    DeviceClient,
    FrameParser,
    MessageType,
    RequestFailed,
    encode,
)

QEMU_TARGETS = [t for t in DEVICE_TARGETS if get_target(t).device_board.runs_on_qemu]  # not Springbok

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("riscv64-unknown-elf-gcc") is None or shutil.which(qemu.QEMU_BINARY) is None,
        reason="needs gcc-riscv64-unknown-elf, picolibc-riscv64-unknown-elf and qemu-system-misc (scripts/setup.sh)",
    ),
]

SCALAR = get_target("rv32imf")
VECTOR = get_target("rv32imf_zve32f_vlen512")


@pytest.fixture(scope="module")
def protocol_firmware(tmp_path_factory):
    """TEST-ONLY firmware: real framing, validation and state machine, fake runtime (no inference)."""
    out = tmp_path_factory.mktemp("fw")
    return {
        t.name: build_firmware(
            t, None, out / f"build-{t.name}", out / f"{t.name}.elf", protocol_only=True, log=lambda _: None
        ).path
        for t in map(get_target, QEMU_TARGETS)
    }


@pytest.fixture
def device(protocol_firmware, tmp_path):
    with qemu.start_qemu(protocol_firmware[SCALAR.name], SCALAR, tmp_path) as session:
        yield session


def exchange(session, raw: bytes, timeout_s: float = 30.0):
    """Write raw bytes, return the next whole frame (test helper that bypasses the client's checks)."""
    session.port.write(raw)
    return next_frame(session, timeout_s)


def next_frame(session, timeout_s: float = 30.0):
    """The next whole frame from the device."""
    parser = FrameParser()
    session.port.timeout = timeout_s
    while True:
        data = session.port.read(parser.bytes_wanted())
        assert data, "device did not answer"
        frames = parser.feed(data)
        if frames:
            return frames[0]


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def load_fake_model(client: DeviceClient) -> None:
    client.load_iospec(MODEL_IO.pack())
    client.load_model(b"fake model for the TEST-ONLY firmware")


def test_valid_sequence_reaches_the_fake_runtime(device):
    client = DeviceClient(device.port)
    load_fake_model(client)
    window = np.arange(384, dtype=np.float32).tobytes()
    client.send_input(window)
    client.run_inference()
    assert client.read_output() == struct.pack("<I", fnv1a(window)) * 4
    stats = client.read_stats()
    assert list(stats)[:7] == [
        "host_bytes_peak",
        "host_bytes_allocated",
        "host_bytes_freed",
        "device_bytes_peak",
        "device_bytes_allocated",
        "device_bytes_freed",
        "inference_instructions",
    ]
    assert stats["inference_count"] == 1


def test_stats_total_instructions_counts_the_whole_session_and_grows(device):
    client = DeviceClient(device.port)
    load_fake_model(client)
    first = client.read_stats()["total_instructions"]
    client.send_input(bytes(1536))
    client.run_inference()
    second = client.read_stats()["total_instructions"]
    assert 0 < first < second


def test_waiting_for_the_host_executes_almost_no_instructions(device):
    # Kenning counts every instruction of the session. A firmware that polls its UART between frames
    # executes instructions for as long as the host thinks (and QEMU with -icount sleep=on, which keeps
    # its clock and so minstret running while the guest sleeps, showed 381 M over these 2 s even with
    # wfi). Inside a frame the firmware still
    # polls, so each request's own cost varies with how fast QEMU feeds the UART (13-34 k for STATS
    # on a loaded machine): hence a margin, which is a thousandth of what polling the wait costs.
    client = DeviceClient(device.port)
    load_fake_model(client)
    stats = [client.read_stats()["total_instructions"] for _ in range(3)]
    no_wait = stats[2] - stats[1]
    time.sleep(2.0)
    waited = client.read_stats()["total_instructions"] - stats[2]
    assert waited - no_wait < 400_000, f"{waited:,} instructions across a 2 s wait, {no_wait:,} without"


def test_a_frame_costs_its_reads_not_the_time_qemu_takes_to_deliver_it(device):
    # Inside a frame the firmware sleeps until the next byte or the goldfish RTC's host-clock alarm
    # (firmware/README.md, "Waiting inside a frame"): a 1,542-byte DATA frame costs 144-168 k (~90 a byte,
    # the fake runtime's hash included); polled, 426-586 k on the same loaded machine, growing with load.
    client = DeviceClient(device.port)
    load_fake_model(client)
    first, second = (client.read_stats()["total_instructions"] for _ in range(2))
    costs = []
    for _ in range(3):
        before = client.read_stats()["total_instructions"]
        client.send_input(bytes(1536))
        costs.append(client.read_stats()["total_instructions"] - before - (second - first))
    assert min(costs) < 250_000, f"DATA cost {costs} instructions"


@pytest.mark.parametrize("message_type", [MessageType.OK, MessageType.ERROR, 8, 200, 0xFFFF])
def test_unknown_or_reply_type_gets_error_and_the_next_request_works(device, message_type):
    assert exchange(device, encode(message_type, b"xyz")).type == MessageType.ERROR
    assert exchange(device, encode(MessageType.IOSPEC, MODEL_IO.pack())).type == MessageType.OK


@pytest.mark.parametrize(
    "request_type",
    [MessageType.MODEL, MessageType.DATA, MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS],
)
def test_request_before_its_state_gets_error(device, request_type):
    assert exchange(device, encode(request_type, b"")).type == MessageType.ERROR
    assert exchange(device, encode(MessageType.IOSPEC, MODEL_IO.pack())).type == MessageType.OK


def test_output_before_process_is_refused_after_a_model_is_loaded(device):
    client = DeviceClient(device.port)
    load_fake_model(client)
    client.send_input(bytes(1536))
    with pytest.raises(RequestFailed, match=r"OUTPUT .* failed in state 'input loaded'"):
        client.read_output()


@pytest.mark.parametrize("payload", [bytes(159), bytes(161), b"\xff" * 160])
def test_malformed_iospec_gets_error(device, payload):
    assert exchange(device, encode(MessageType.IOSPEC, payload)).type == MessageType.ERROR


def test_data_of_the_wrong_size_gets_error(device):
    client = DeviceClient(device.port)
    load_fake_model(client)
    assert exchange(device, encode(MessageType.DATA, bytes(1535))).type == MessageType.ERROR
    client.send_input(bytes(1536))


def test_oversized_message_is_drained_and_refused(device):
    oversized = MAX_MESSAGE_SIZE + 1000
    header = struct.pack("<IH", oversized, MessageType.MODEL)
    # The firmware reads every byte through its UART (~10-25 KB/s of host time under -icount).
    reply = exchange(device, header + bytes(oversized - 2), timeout_s=600)
    assert reply.type == MessageType.ERROR
    assert exchange(device, encode(MessageType.IOSPEC, MODEL_IO.pack())).type == MessageType.OK


def test_message_cut_off_mid_way_times_out_and_the_next_header_is_read_cleanly(device):
    truncated = encode(MessageType.IOSPEC, MODEL_IO.pack())[:50]
    assert exchange(device, truncated, timeout_s=60).type == MessageType.ERROR
    assert exchange(device, encode(MessageType.IOSPEC, MODEL_IO.pack())).type == MessageType.OK


@pytest.mark.parametrize("target", QEMU_TARGETS)
def test_request_sent_before_the_firmware_is_ready_loses_no_byte(protocol_firmware, tmp_path, target):
    # The guest starts only once its UART holds the IOSPEC's first byte. Were that byte lost at boot,
    # the header would be read one byte late as an oversized frame, drained and refused (ERROR).
    request = encode(MessageType.IOSPEC, MODEL_IO.pack())
    with qemu.start_qemu(protocol_firmware[target], get_target(target), tmp_path, early_input=request) as session:
        assert next_frame(session, timeout_s=60).type == MessageType.OK
        DeviceClient(session.port).load_model(b"fake model for the TEST-ONLY firmware")


def test_rejected_model_leaves_no_model_loaded(device):
    client = DeviceClient(device.port)
    client.load_iospec(MODEL_IO.pack())
    with pytest.raises(RequestFailed, match="MODEL"):
        client.load_model(b"BAD! model")
    assert exchange(device, encode(MessageType.DATA, bytes(1536))).type == MessageType.ERROR


def qemu_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def qemu_processes_using(folder) -> list[int]:
    """QEMU processes whose command line mentions ``folder`` (each session logs into its own folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if qemu.QEMU_BINARY in cmdline and str(folder) in cmdline:
            found.append(int(pid))
    return found


def test_trap_is_reported_and_qemu_is_gone(protocol_firmware, tmp_path):
    # Deliberate mismatch, bypassing the registry: vector firmware on a CPU without V traps at boot.
    no_vector_cpu = dataclasses.replace(VECTOR, vlen=0, elen=0)
    with (
        pytest.raises(qemu.SimulatorError, match="exit status 3") as err,
        qemu.start_qemu(protocol_firmware[VECTOR.name], no_vector_cpu, tmp_path),
    ):
        pass
    assert "TRAP mcause=" in str(err.value)
    assert qemu_processes_using(tmp_path) == []


def test_firmware_that_never_gets_ready_is_killed_at_the_boot_timeout(tmp_path):
    spin = tmp_path / "spin.S"
    spin.write_text(".globl _start\n_start:\n  j _start\n")
    elf = tmp_path / "spin.elf"
    subprocess.run(
        [
            "riscv64-unknown-elf-gcc",
            "-march=rv32i",
            "-mabi=ilp32",
            "-nostdlib",
            "-Wl,-Ttext=0x80000000",
            str(spin),
            "-o",
            str(elf),
        ],
        check=True,
        timeout=60,
    )
    sessions = []
    with (
        pytest.raises(qemu.SimulatorError, match="did not log 'Runtime started' within 3 s"),
        qemu.start_qemu(elf, SCALAR, tmp_path, boot_timeout_s=3) as session,
    ):
        sessions.append(session)
    assert not sessions
    assert qemu_processes_using(tmp_path) == []


def test_exception_inside_a_session_still_kills_qemu(protocol_firmware, tmp_path):
    # Raising inside the session is the point: the session must end QEMU on the way out.
    with (  # noqa: PT012
        pytest.raises(RuntimeError, match="evaluation blew up"),
        qemu.start_qemu(protocol_firmware[SCALAR.name], SCALAR, tmp_path) as session,
    ):
        pid = session.process.pid
        raise RuntimeError("evaluation blew up")
    assert session.exit_status() is not None
    assert not qemu_alive(pid)


QEMU_PARENT = """
import sys, time
from pathlib import Path
from wand_assets.core.targets import get_target
from wand_assets.device import qemu

with qemu.start_qemu(Path(sys.argv[1]), get_target(sys.argv[2]), Path(sys.argv[3])) as session:
    print(session.process.pid, session.uart_address.rsplit(":", 1)[1], flush=True)
    time.sleep(600)
"""


def test_qemu_dies_with_the_process_that_started_it_even_on_sigkill(protocol_firmware, tmp_path):
    parent = start_python(QEMU_PARENT, str(protocol_firmware[SCALAR.name]), SCALAR.name, str(tmp_path))
    qemu_pid = None
    try:
        qemu_pid, port = map(int, read_line(parent, 120).split())
        assert is_running(qemu_pid) and not can_listen_on(port)
        parent.kill()  # SIGKILL: no finally, no atexit runs in the parent
        parent.wait(timeout=30)
        assert wait_until_gone(qemu_pid, 5), "QEMU outlived the process that started it"
        assert can_listen_on(port)
    finally:
        if qemu_pid is not None:
            kill_quietly(qemu_pid)
        parent.kill()
        parent.communicate(timeout=30)


def test_uart_listens_on_loopback_only(device):
    port = int(device.uart_address.rsplit(":", 1)[1])
    assert listening_sockets(device.process.pid) == {("127.0.0.1", port)}


def test_concurrent_sessions_get_their_own_ports_and_logs(protocol_firmware, tmp_path):
    with (
        qemu.start_qemu(protocol_firmware[SCALAR.name], SCALAR, tmp_path / "a") as a,
        qemu.start_qemu(protocol_firmware[VECTOR.name], VECTOR, tmp_path / "b") as b,
    ):
        assert a.uart_address != b.uart_address and a.log_path != b.log_path
        for session in (a, b):
            DeviceClient(session.port).load_iospec(MODEL_IO.pack())
