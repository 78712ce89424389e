"""The Renode backend with Renode itself but without the pipeline: the TEST-ONLY protocol firmware in a
Renode session (the worker module, the plan, the marking port, the statistics from a real profiler
dump), a real dump cut off, and the worker dying with the process that started it.

Needs Renode + pyrenode3 (``PYRENODE_BUILD_DIR`` + ``PYRENODE_RUNTIME``, or ``PYRENODE_PKG``) and the
riscv64-unknown-elf toolchain.
"""

import shutil
from pathlib import Path

import pytest
from process_checks import is_running, kill_quietly, read_line, start_python, wait_until_gone

from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core.targets import get_target
from wand_assets.device import kenning_protocol
from wand_assets.device.firmware_build import build_firmware
from wand_assets.device.kenning_protocol import KenningClient
from wand_assets.device.protocol import DeviceClient, FrameParser, MessageType, encode
from wand_assets.device.renode import RenodeUnavailable, check_renode_available, start_renode
from wand_assets.device.renode import stats as renode_stats
from wand_assets.device.renode.plan import RenodeSetup

try:
    check_renode_available()
    RENODE_MISSING = ""
except RenodeUnavailable as exc:
    RENODE_MISSING = f"Renode not available: set PYRENODE_BUILD_DIR+PYRENODE_RUNTIME or PYRENODE_PKG ({exc})"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(RENODE_MISSING), reason=RENODE_MISSING or "Renode available"),
    pytest.mark.skipif(
        shutil.which("riscv64-unknown-elf-gcc") is None,
        reason="needs Debian's gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf",
    ),
]

SCALAR = get_target("rv32imf")
WINDOWS = 2


@pytest.fixture(scope="module")
def protocol_elf(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw")
    return build_firmware(SCALAR, None, out / "build", out / "fw.elf", protocol_only=True, log=lambda _: None).path


@pytest.fixture(scope="module")
def finished_session(protocol_elf, tmp_path_factory):
    """One Renode session through the fake runtime's request loop, ended."""
    with start_renode(protocol_elf, SCALAR, tmp_path_factory.mktemp("renode")) as session:
        client = DeviceClient(session.port)
        client.load_iospec(MODEL_IO.pack())
        client.load_model(b"fake model for the TEST-ONLY firmware")
        for _ in range(WINDOWS):
            client.send_input(bytes(MODEL_IO.input_bytes))
            client.run_inference()
            client.read_output()
            client.read_stats()
    return session


def test_session_statistics_come_from_the_marks_and_the_profiler_dump(finished_session):
    stats = finished_session.statistics
    assert len(stats["request_window_instructions"]) == WINDOWS  # each PROCESS bracketed once
    assert all(n > 0 for n in stats["request_window_instructions"])
    assert stats["profiler_dump_bytes"] > 0 and sum(stats["executed_instructions"]["cpu"]) > 0
    assert finished_session.exit_status() is not None


def test_a_kenning_protocol_session_is_marked_like_a_legacy_one(protocol_elf, tmp_path):
    """The marking port reads KenningProtocol requests: the loop starts at the first DATA, and each PROCESS
    is bracketed once although DATA arrives in 12 messages."""
    with start_renode(protocol_elf, SCALAR, tmp_path / "renode", wire=kenning_protocol) as session:
        client = KenningClient(session.port)
        client.connect()
        client.load_iospec(MODEL_IO.pack_kenning())
        client.load_model(b"fake model for the TEST-ONLY firmware")
        for _ in range(WINDOWS):
            client.send_input(bytes(MODEL_IO.input_bytes))
            client.run_inference()
            client.read_output()
        assert client.read_stats()["inference_count"] == WINDOWS
        client.disconnect()
    stats = session.statistics
    assert stats is not None
    assert [m["label"] for m in session.marks] == ["process_start", "process_end"] * WINDOWS
    assert len(stats["request_window_instructions"]) == WINDOWS
    assert all(n > 0 for n in stats["request_window_instructions"])


def next_frame(port, timeout_s: float = 60.0):
    parser = FrameParser()
    port.timeout = timeout_s
    while True:
        data = port.read(parser.bytes_wanted())
        assert data, "device did not answer"
        if frames := parser.feed(data):
            return frames[0]


def test_a_frame_cut_off_in_renode_times_out_and_the_next_header_is_read_cleanly(protocol_elf, tmp_path):
    """Inside a frame the Renode wand board polls the inter-byte clock (a CLINT sleep let virtual time
    outrun the host: firmware/README.md, "Waiting inside a frame"); a cut-off frame gets ERROR."""
    setup = RenodeSetup(profiler=False, opcode_counting=False)
    with start_renode(protocol_elf, SCALAR, tmp_path / "renode", setup=setup) as session:
        client = DeviceClient(session.port)
        client.load_iospec(MODEL_IO.pack())
        client.load_model(b"fake model for the TEST-ONLY firmware")
        client.send_input(bytes(MODEL_IO.input_bytes))
        session.port.write(encode(MessageType.IOSPEC, MODEL_IO.pack())[:50])
        assert next_frame(session.port).type == MessageType.ERROR
        session.port.write(encode(MessageType.IOSPEC, MODEL_IO.pack()))
        assert next_frame(session.port).type == MessageType.OK


def test_real_dump_cut_inside_its_last_entry_fails_naming_file_and_offset(finished_session, tmp_path):
    whole = Path(finished_session.plan.profiler_dump).read_bytes()
    cut = tmp_path / "profiler.dump"
    cut.write_bytes(whole[:-1])
    with pytest.raises(renode_stats.ProfilerDumpTruncated, match=rf"{cut} is cut off") as e:
        renode_stats.profiler_series(cut, 0.0, 1.0, chunk_bytes=1 << 20)
    assert e.value.size == len(whole) - 1 and 0 < e.value.size - e.value.offset < 26  # inside one entry
    # The error points at the last entry boundary: the dump up to there is whole.
    cut.write_bytes(whole[: e.value.offset])
    renode_stats.profiler_series(cut, 0.0, 1.0, chunk_bytes=1 << 20)


# The worker also ends when its channel (stdin) closes, which the parent's death does too. To see the
# death signal alone at work, the parent hands a copy of the channel to a child of its own that
# outlives it: the channel stays open, and only the kernel's death signal can end the worker.
RENODE_PARENT = """
import subprocess, sys, time
from pathlib import Path
from wand_assets.core.targets import get_target
from wand_assets.device.renode import start_renode

with start_renode(Path(sys.argv[1]), get_target(sys.argv[2]), Path(sys.argv[3])) as session:
    channel = session.worker.process.stdin.fileno()
    holder = subprocess.Popen(["sleep", "600"], pass_fds=[channel])
    print(session.worker.process.pid, holder.pid, flush=True)
    time.sleep(600)
"""


def test_worker_dies_with_the_process_that_started_it_even_on_sigkill(protocol_elf, tmp_path):
    parent = start_python(RENODE_PARENT, str(protocol_elf), SCALAR.name, str(tmp_path))
    pids = []
    try:
        pids = [int(pid) for pid in read_line(parent, 180).split()]
        worker_pid, holder_pid = pids
        assert is_running(worker_pid)
        parent.kill()
        parent.wait(timeout=30)
        assert wait_until_gone(worker_pid, 5), "the Renode worker outlived the process that started it"
        assert is_running(holder_pid), "the channel must have stayed open for this test to mean anything"
    finally:
        for pid in pids:  # first: they hold the parent's stdout open
            kill_quietly(pid)
        parent.kill()
        parent.communicate(timeout=30)
