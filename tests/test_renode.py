"""Renode backend without Renode: board rendering, Kenning's variable naming, the monitor command
sequence, the missing-Renode message, the profiler dump parser and the renode_stats metrics."""

import dataclasses
import struct
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from conftest import SPRINGBOK_TARGET

from wand_assets.core.targets import DEVICE_TARGETS, QEMU_VIRT, get_target
from wand_assets.device import simulators
from wand_assets.device.protocol import MessageType
from wand_assets.device.qemu import SimulatorError
from wand_assets.device.renode import installation
from wand_assets.device.renode import stats as renode_stats
from wand_assets.device.renode.board import BOARD_SCRIPT, render_board
from wand_assets.device.renode.plan import RenodeSetup, make_plan, monitor_variable_name, setup_commands
from wand_assets.device.renode.session import RenodeSession, WorkerConnection
from wand_assets.device.renode.sniffer import MarkingPort
from wand_assets.device.resources import SimulatorResource

# --- board and setup -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_board_cpu_comes_from_the_target_registry(target):
    t = get_target(target)
    board = render_board(t)
    assert f'cpuType: "{t.renode_cpu_type()}"' in board
    if t.has_vector:
        elen = board.index(f"VectorElementMaxWidth: {t.elen}")
        vlen = board.index(f"VectorRegisterLength: {t.vlen}")
        assert elen < vlen, "ELEN must be set before VLEN (Renode checks VLEN >= ELEN on every change)"
    else:
        assert "VectorRegisterLength" not in board


def test_board_memory_map_comes_from_the_target_registry():
    board = dataclasses.replace(
        QEMU_VIRT,
        ram_base=0x9000_0000,
        ram_size=32 << 20,
        clint_base=0x0300_0000,
        mtime_hz=1_000_000,
        uart0_base=0x1100_0000,
        log_uart_base=0x1100_1000,
        plic_base=0x0D00_0000,
        uart0_irq=7,
    )
    repl = render_board(dataclasses.replace(get_target("rv32imf"), board=board))
    assert "clint: IRQControllers.CoreLevelInterruptor @ sysbus 0x3000000\n    frequency: 1000000\n" in repl
    assert "uart0: UART.NS16550 @ sysbus 0x11000000\n    IRQ -> plic@7\n" in repl
    assert "plic: IRQControllers.PlatformLevelInterruptController @ sysbus 0xd000000\n    0 -> cpu@11\n" in repl
    assert "log_uart: UART.NS16550 @ sysbus 0x11001000" in repl
    assert "ram: Memory.MappedMemory @ sysbus 0x90000000\n    size: 0x2000000" in repl


def test_host_target_has_no_renode_board():
    with pytest.raises(ValueError, match="host reference"):
        render_board(get_target("host"))


@pytest.mark.parametrize(
    ("file_name", "variable"),
    [
        ("springbok.repl", "springbok_repl"),
        ("SpringbokRiscV32.cs", "springbokriscv32_cs"),
        ("springbok.resc", "springbok_resc"),
        ("magic_wand.data", "magic_wand_data"),
        ("/abs/dir/Wand.Board.repl", "wand_board_repl"),
    ],
)
def test_monitor_variables_follow_kennings_naming(file_name, variable):
    assert monitor_variable_name(file_name) == variable


def test_default_plan_uses_the_wand_board_script(tmp_path):
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    plan = make_plan(elf, get_target("rv32imf_zve32f_vlen512"), tmp_path / "work", RenodeSetup())
    assert plan.resc == str(BOARD_SCRIPT)
    assert list(plan.variables) == ["wand_board_repl", "bin"]
    assert plan.variables["bin"] == str(elf.resolve())
    assert "VectorRegisterLength: 512" in (tmp_path / "work" / "wand_board.repl").read_text()
    assert plan.create_uart_pty and plan.uart_pty.startswith(str((tmp_path / "work").resolve()))


def springbok_setup(springbok_dir) -> RenodeSetup:
    return SimulatorResource(backend="renode", renode_platform_dir=str(springbok_dir)).setup_for(get_target(SPRINGBOK_TARGET))


def test_springbok_setup_command_sequence(tmp_path, springbok_dir):
    (tmp_path / "iree_runtime").write_bytes(b"\x7fELF")
    work = (tmp_path / "work").resolve()
    plan = make_plan(tmp_path / "iree_runtime", None, work, springbok_setup(springbok_dir))
    commands = setup_commands(plan)
    assert commands == [
        f"logFile @{work}/renode.log",
        f"$springbok_repl=@{springbok_dir}/springbok.repl",
        f"$springbokriscv32_cs=@{springbok_dir}/SpringbokRiscV32.cs",
        f"$bin=@{tmp_path}/iree_runtime",
        f"include @{work}/springbok.resc",  # the session's own copy (below)
        "mach set 0",
    ]  # no EnableRiscvOpcodesCounting: the script enables it, and a second time is an error in Renode
    assert plan.opcode_counting and not plan.enable_opcode_counting
    # The script makes its own pty; the copy run here makes it in the session's folder instead of /tmp/uart.
    assert not plan.create_uart_pty and plan.uart_pty == f"{work}/uart.pty"
    assert plan.post_start_commands == ["sysbus.vec_controlblock WriteDoubleWord 0xc 0"]
    assert plan.log_uart == ""  # the log is simprint's, in Renode's log


def test_springbok_script_runs_as_a_private_copy_and_the_users_file_stays(tmp_path, springbok_dir):
    original = (springbok_dir / "springbok.resc").read_text()
    plans = [make_plan(tmp_path / "fw.elf", None, tmp_path / f"run{i}", springbok_setup(springbok_dir)) for i in (1, 2)]
    copies = [Path(p.resc).read_text() for p in plans]
    assert (springbok_dir / "springbok.resc").read_text() == original
    assert plans[0].uart_pty != plans[1].uart_pty
    for plan, copy in zip(plans, copies, strict=True):
        assert '"/tmp/uart"' not in copy and f'"{plan.uart_pty}"' in copy
        assert copy.replace(f'"{plan.uart_pty}"', '"/tmp/uart"') == original  # nothing else changed


def test_a_script_without_the_named_pty_is_refused(tmp_path, springbok_dir):
    (tmp_path / "springbok.resc").write_text("mach create\n")
    setup = dataclasses.replace(springbok_setup(springbok_dir), resc=str(tmp_path / "springbok.resc"))
    with pytest.raises(SimulatorError, match="does not create the pty"):
        make_plan(tmp_path / "fw.elf", None, tmp_path / "w", setup)


def test_springbok_files_must_be_pointed_at(monkeypatch):
    monkeypatch.delenv("WAND_SPRINGBOK_DIR", raising=False)
    with pytest.raises(SimulatorError, match="WAND_SPRINGBOK_DIR"):
        SimulatorResource(backend="renode").setup_for(get_target(SPRINGBOK_TARGET))


def test_qemu_refuses_the_springbok_target_with_a_clear_message(tmp_path):
    with pytest.raises(SimulatorError, match="QEMU does not emulate"):
        SimulatorResource(backend="qemu").session(tmp_path / "fw.elf", get_target(SPRINGBOK_TARGET), tmp_path, print)


def test_wand_board_commands_connect_both_uarts_to_ptys(tmp_path):
    (tmp_path / "fw.elf").write_bytes(b"\x7fELF")
    plan = make_plan(tmp_path / "fw.elf", get_target("rv32imf"), tmp_path / "w", RenodeSetup())
    commands = setup_commands(plan)
    assert commands.index(f"include @{BOARD_SCRIPT}") > commands.index(f"$bin=@{(tmp_path / 'fw.elf').resolve()}")
    assert f'emulation CreateUartPtyTerminal "wand_uart" "{plan.uart_pty}" true' in commands
    assert "connector Connect sysbus.uart0 wand_uart" in commands
    assert "connector Connect sysbus.log_uart wand_log" in commands
    assert not any("EnableProfiler" in c for c in commands), "the profiler starts with the evaluation loop"


def test_missing_dependency_is_named(tmp_path):
    setup = RenodeSetup(resc=str(tmp_path / "x.resc"), dependencies=(str(tmp_path / "gone.repl"),))
    (tmp_path / "x.resc").write_text("")
    with pytest.raises(SimulatorError, match=r"gone\.repl"):
        make_plan(tmp_path / "fw.elf", None, tmp_path / "w", setup)


# --- missing Renode ---------------------------------------------------------------------------------


def test_missing_renode_names_the_variables_and_what_to_install(monkeypatch):
    for var in ("PYRENODE_PKG", "PYRENODE_BUILD_DIR", "PYRENODE_RUNTIME", "PYRENODE_BIN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(installation.RenodeUnavailable) as err:
        simulators.simulator_version("renode")
    message = str(err.value)
    for needed in ("PYRENODE_PKG", "PYRENODE_BUILD_DIR", "PYRENODE_RUNTIME", "pyrenode3", "pythonnet", "Renode"):
        assert needed in message


def test_build_dir_without_runtime_is_refused(tmp_path):
    with pytest.raises(installation.RenodeUnavailable, match="PYRENODE_RUNTIME is not"):
        installation.renode_environment({"PYRENODE_BUILD_DIR": str(tmp_path)})


def test_nonexistent_package_is_refused(tmp_path):
    with pytest.raises(installation.RenodeUnavailable, match="does not exist"):
        installation.renode_environment({"PYRENODE_PKG": str(tmp_path / "renode-1.15.1.pkg.tar.xz")})


def test_version_is_read_without_loading_renode(tmp_path, monkeypatch):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "version").write_text("1.15.1\n")
    monkeypatch.setattr(installation.importlib.util, "find_spec", lambda name: object())
    env = {"PYRENODE_BUILD_DIR": str(tmp_path), "PYRENODE_RUNTIME": "mono"}
    assert installation.renode_version(env).startswith("Renode 1.15.1 ")
    pkg = tmp_path / "renode-1.15.1.linux-portable.tar.gz"
    pkg.write_bytes(b"")
    assert installation.renode_version({"PYRENODE_PKG": str(pkg)}).startswith("Renode 1.15.1 ")


def test_renode_is_a_known_backend():
    assert simulators.BACKENDS == ("qemu", "renode")


# --- the port that marks the evaluation loop ----------------------------------------------------------


class FakePort:
    def __init__(self, replies: bytes):
        self.replies, self.timeout = bytearray(replies), 1.0
        self.written: list[bytes] = []

    def write(self, data):
        self.written.append(bytes(data))
        return len(data)

    def read(self, size=1):
        out, self.replies[:size] = bytes(self.replies[:size]), b""
        return out


class FakeSession:
    loop_started = False

    def __init__(self):
        self.events = []

    def mark_loop_start(self):
        self.events.append("loop_start")
        self.loop_started = True

    def mark(self, label):
        self.events.append(label)


def frame(kind, payload=b""):
    return struct.pack("<IH", len(payload) + 2, kind) + payload


def test_marking_port_brackets_each_process_and_starts_the_loop_once():
    port, session = FakePort(frame(MessageType.OK) * 2 + frame(MessageType.OK, b"x" * 20)), FakeSession()
    marked = MarkingPort(port, session)
    marked.timeout = 0.25
    assert port.timeout == 0.25
    marked.write(frame(MessageType.MODEL, b"model"))
    assert session.events == []
    marked.write(frame(MessageType.DATA, b"in"))  # the loop starts
    marked.read(6)
    marked.write(frame(MessageType.PROCESS))
    assert session.events == ["loop_start", "process_start"]
    marked.read(3)
    assert session.events[-1] == "process_start"
    marked.read(3)  # the 6-byte OK is complete
    assert session.events[-1] == "process_end"
    marked.write(frame(MessageType.DATA, b"in"))
    marked.read(26)
    assert session.events == ["loop_start", "process_start", "process_end"]


def test_marking_port_reads_kenning_protocol_requests():
    from wand_assets.device import kenning_protocol as kp

    ok = kp.encode_message(kp.MessageType.PROCESS, kp.Flow.TRANSMISSION, kp.Flag.SUCCESS | kp.Flag.FIRST | kp.Flag.LAST)
    port, session = FakePort(ok), FakeSession()
    marked = MarkingPort(port, session, kp)
    for message in kp.encode_request(kp.MessageType.DATA, bytes(300)):  # FIRST, middle, LAST
        marked.write(message)
    assert session.events == ["loop_start"]
    (process,) = kp.encode_request(kp.MessageType.PROCESS)
    marked.write(process)
    marked.read(7)
    assert session.events[-1] == "process_start"
    marked.read(1)  # the 8-byte TRANSMISSION is complete
    assert session.events == ["loop_start", "process_start", "process_end"]


# --- profiler dump --------------------------------------------------------------------------------


def synthetic_dump(truncate: int = 0) -> bytes:
    """Header: one CPU, two peripherals; entries of every type at known virtual times (ms)."""
    out = struct.pack("<i", 1) + struct.pack("<ii", 0, 3) + b"cpu"
    out += struct.pack("<i", 2)
    out += struct.pack("<i", 5) + b"uart0" + struct.pack("<QQ", 0x10000000, 0x100000FF)
    out += struct.pack("<i", 5) + b"clint" + struct.pack("<QQ", 0x2000000, 0x200FFFF)

    def entry(t_ms, kind, body):
        return struct.pack("<qdB", 123, t_ms, kind) + body

    out += entry(0.0, 0, struct.pack("<BQ", 0, 1000))
    out += entry(5.0, 0, struct.pack("<BQ", 0, 1500))
    out += entry(12.0, 0, struct.pack("<BQ", 0, 2700))
    out += entry(15.0, 0, struct.pack("<BQ", 0, 2900))
    out += entry(1.0, 1, struct.pack("<B", 2)) * 3  # 3 reads in interval 0
    out += entry(11.0, 1, struct.pack("<B", 3)) * 2  # 2 writes in interval 1
    out += entry(2.0, 2, struct.pack("<BQ", 0, 0x10000005))  # uart0 read
    out += entry(13.0, 2, struct.pack("<BQ", 1, 0x10000000))  # uart0 write
    out += entry(14.0, 2, struct.pack("<BQ", 0, 0x200BFF8))  # clint read
    out += entry(16.0, 3, struct.pack("<Q", 7))  # exception
    out += entry(50.0, 1, struct.pack("<B", 2))  # outside the window used below
    return out[: len(out) - truncate] if truncate else out


def test_profiler_dump_is_parsed_by_type():
    dump = renode_stats.parse_profiler_dump(synthetic_dump())
    assert dump.cpus == {0: "cpu"}
    assert dump.peripherals == [("uart0", 0x10000000, 0x100000FF), ("clint", 0x2000000, 0x200FFFF)]
    assert dump.instructions["count"].tolist() == [1000, 1500, 2700, 2900]
    assert dump.instructions["cpu"].tolist() == [0, 0, 0, 0]
    assert dump.memory["op"].tolist() == [2, 2, 2, 3, 3, 2]
    assert dump.peripheral["address"].tolist() == [0x10000005, 0x10000000, 0x200BFF8]
    assert dump.exceptions["index"].tolist() == [7]
    assert dump.exceptions["t_ms"].tolist() == [16.0]


LAST_ENTRY_BYTES = 17 + 1  # synthetic_dump ends with a memory entry: head, op


@pytest.mark.parametrize("cut", range(1, LAST_ENTRY_BYTES))
def test_dump_cut_inside_its_last_entry_is_an_error_naming_the_offset(cut):
    whole = synthetic_dump()
    with pytest.raises(renode_stats.ProfilerDumpTruncated, match=rf"at byte offset {len(whole) - LAST_ENTRY_BYTES}\b") as e:
        renode_stats.parse_profiler_dump(synthetic_dump(truncate=cut))
    assert (e.value.offset, e.value.size) == (len(whole) - LAST_ENTRY_BYTES, len(whole) - cut)


@pytest.mark.parametrize("chunk_bytes", [30, 64, 1 << 20])
@pytest.mark.parametrize("cut", [1, LAST_ENTRY_BYTES - 1])
def test_dump_file_cut_inside_its_last_entry_is_an_error_naming_the_file(tmp_path, chunk_bytes, cut):
    path = tmp_path / "profiler.dump"
    path.write_bytes(synthetic_dump(truncate=cut))
    offset = len(synthetic_dump()) - LAST_ENTRY_BYTES
    with pytest.raises(renode_stats.ProfilerDumpTruncated, match=rf"{path} is cut off: .* byte offset {offset}\b"):
        renode_stats.profiler_series(path, 0.0, 0.019, chunk_bytes=chunk_bytes)


def test_unknown_entry_type_is_an_error():
    data = bytearray(synthetic_dump())
    header_end = 4 + (8 + 3) + 4 + 2 * (4 + 5 + 16)
    data[header_end + 16] = 9
    with pytest.raises(renode_stats.ProfilerDumpError, match=f"unknown entry type 9 at byte {header_end}"):
        renode_stats.parse_profiler_dump(bytes(data))


def test_interval_series_buckets_by_virtual_time():
    dump = renode_stats.parse_profiler_dump(synthetic_dump())
    series = renode_stats.interval_series(dump, start_s=0.0, end_s=0.019, step_s=0.01)
    assert series["profiler_timestamps"] == pytest.approx([0.0, 0.01])
    assert series["executed_instructions"] == {"cpu": [500, 1400]}  # deltas of the cumulative counter
    assert series["memory_accesses"] == {"read": [3, 0], "write": [0, 2]}
    assert series["peripheral_accesses"] == {
        "uart0": {"read": [1, 0], "write": [0, 1]},
        "clint": {"read": [0, 1], "write": [0, 0]},
    }
    assert series["exceptions"] == [0, 1]


@pytest.mark.parametrize("chunk_bytes", [30, 64, 1 << 20])
def test_dump_file_read_in_chunks_gives_the_same_series(tmp_path, chunk_bytes):
    path = tmp_path / "profiler.dump"
    path.write_bytes(synthetic_dump())
    whole = renode_stats.interval_series(renode_stats.parse_profiler_dump(path.read_bytes()), 0.0, 0.019)
    assert renode_stats.profiler_series(path, 0.0, 0.019, chunk_bytes=chunk_bytes) == whole


# --- opcode metrics -------------------------------------------------------------------------------


def test_opcode_diff_counts_only_the_loop():
    before = {"addi": 10, "vle32.v": 0, "lw": 5, "wfi": 1}
    after = {"addi": 40, "vle32.v": 20, "lw": 5, "wfi": 1}
    assert renode_stats.opcode_diff(before, after) == {"addi": 30, "vle32.v": 20}


def test_opcode_counters_going_backwards_is_an_error():
    with pytest.raises(ValueError, match="backwards"):
        renode_stats.opcode_diff({"addi": 10}, {"addi": 3})


def test_opcode_metrics_match_kennings_definitions():
    counters = {"cpu": {"addi": 600, "vle32.v": 200, "vfmadd.vf": 100, "lw": 100, "fadd.s": 0}}
    metrics = renode_stats.opcode_metrics(counters, inference_passes=4)
    assert list(metrics["sorted_opcode_counters"]) == ["addi", "vle32.v", "lw", "vfmadd.vf"]
    assert metrics["sorted_vector_opcode_counters"] == {"vle32.v": 200, "vfmadd.vf": 100}
    assert metrics["instructions_per_inference_pass"] == 250.0
    assert metrics["vector_opcodes_fraction"] == pytest.approx(0.3)
    assert metrics["top_10_opcodes_per_inference_pass"]["addi"] == 150.0


def test_opcode_metrics_sum_over_cpus():
    metrics = renode_stats.opcode_metrics({"cpu0": {"addi": 1}, "cpu1": {"addi": 2, "vadd.vv": 1}}, 1)
    assert metrics["sorted_opcode_counters"] == {"addi": 3, "vadd.vv": 1}


def test_request_windows_pair_start_and_end_marks():
    marks = [
        {"label": "process_start", "instructions": 100, "virtual_s": 1.0},
        {"label": "process_end", "instructions": 400, "virtual_s": 1.003},
        {"label": "process_start", "instructions": 900, "virtual_s": 2.0},
        {"label": "process_end", "instructions": 1000, "virtual_s": 2.001},
    ]
    windows = renode_stats.request_windows(marks)
    assert windows["instructions"] == [300, 100]
    assert windows["virtual_seconds"] == pytest.approx([0.003, 0.001])


def test_every_renode_stats_plot_is_drawn_including_memory_accesses():
    dump = renode_stats.parse_profiler_dump(synthetic_dump())
    stats = {
        **renode_stats.opcode_metrics({"cpu": {"addi": 5, "vle32.v": 2}}, 1),
        **renode_stats.interval_series(dump, 0.0, 0.019),
    }
    pngs = renode_stats.renode_plots(stats)
    assert set(pngs) == {
        "instruction_histogram",
        "vector_histogram",
        "executed_instructions_cpu",
        "executed_instructions_cpu_histogram",
        "executed_instructions_cpu_cumulative",
        "memory_reads",
        "memory_reads_cumulative",
        "memory_writes",
        "memory_writes_cumulative",
        "uart0_reads",
        "uart0_reads_cumulative",
        "uart0_writes",
        "uart0_writes_cumulative",
        "clint_reads",
        "clint_reads_cumulative",
        "exceptions",
    }  # clint writes are all zero: skipped, as in Kenning
    assert all(p.startswith(b"\x89PNG") for p in pngs.values())
    report = renode_stats.renode_report_markdown(stats)
    assert "Instructions per inference pass: **7**" in report and "28.57 %" in report


def test_plots_skip_exceptions_when_there_are_none():
    stats = {"profiler_timestamps": [0.0], "exceptions": [0], "memory_accesses": {"read": [1], "write": [0]}}
    assert "exceptions" not in renode_stats.renode_plots(stats)
    assert np.isnan(renode_stats.opcode_metrics({}, 0)["instructions_per_inference_pass"])


class ScriptedWorker:
    """Answers ``mark`` with the next counters and opcode table."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def call(self, op, **args):
        self.calls.append((op, args))
        return self.answers.pop(0)


def test_session_sums_opcode_counts_over_process_requests(tmp_path):
    (tmp_path / "fw.elf").write_bytes(b"\x7fELF")
    plan = make_plan(tmp_path / "fw.elf", get_target("rv32imf"), tmp_path / "w", RenodeSetup())
    worker = ScriptedWorker(
        [
            {"instructions": 100, "virtual_s": 0.0, "opcodes": {"addi": 10, "vle32.v": 0}},
            {"instructions": 160, "virtual_s": 0.1, "opcodes": {"addi": 50, "vle32.v": 20}},
            {"instructions": 500, "virtual_s": 0.5, "opcodes": {"addi": 70, "vle32.v": 20}},
            {"instructions": 560, "virtual_s": 0.6, "opcodes": {"addi": 80, "vle32.v": 70}},
        ]
    )
    session = RenodeSession(cast(WorkerConnection, worker), plan, "Renode test")  # only call() is used
    for label in ("process_start", "process_end") * 2:
        session.mark(label)
    assert session.process_opcodes == {"addi": 50, "vle32.v": 70}
    assert all(args["opcodes"] for _, args in worker.calls)
    assert renode_stats.request_windows(session.marks)["instructions"] == [60, 60]


def test_a_cut_off_dump_fails_the_session_statistics(tmp_path):
    (tmp_path / "fw.elf").write_bytes(b"\x7fELF")
    plan = make_plan(tmp_path / "fw.elf", get_target("rv32imf"), tmp_path / "w", RenodeSetup())
    Path(plan.profiler_dump).write_bytes(synthetic_dump(truncate=1))
    session = RenodeSession(cast(WorkerConnection, ScriptedWorker([])), plan, "Renode test")  # only call() is used
    session.loop_start = {"opcodes": {}, "instructions": 0, "virtual_s": 0.0}
    session.finish = {"opcodes": {}, "instructions": 10, "virtual_s": 0.019}
    with pytest.raises(renode_stats.ProfilerDumpTruncated, match=plan.profiler_dump):
        renode_stats.renode_statistics(session)
