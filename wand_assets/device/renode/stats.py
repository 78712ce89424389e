"""Renode-only statistics: the profiler dump, opcode counters and Kenning's ``renode_stats`` report.

The profiler dump (Renode 1.15.1, KENNING_FACTS §3.5; all little-endian, packed):

- header: i32 cpu count, then per CPU i32 id, i32 name length, name; i32 peripheral count, then per
  peripheral i32 name length, name, u64 start, u64 end;
- entries to EOF: i64 real time, f64 virtual time in ms, u8 type, then by type
  0 instruction (u8 cpu id, u64 cumulative executed instructions), 1 memory (u8 op: 2 read, 3 write),
  2 peripheral (u8 op: 0 read, 1 write; u64 address), 3 exception (u64 index).

A dump whose last entry is cut off (the disk filled up, or Renode died while writing) is an error
(:class:`ProfilerDumpTruncated`), not a number: its series would silently miss the end of the run.

Kenning's ``compute_renode_metrics`` derived values are reproduced by :func:`opcode_metrics`; every
plot of its renode_stats section is drawn by :func:`renode_plots`, the memory-access plots included
(Kenning looks them up under a misspelt key and never draws them).
"""

from __future__ import annotations

import array
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wand_assets.core import plots

ENTRY_HEAD = struct.Struct("<qdB")  # real time, virtual time (ms), type
INSTRUCTION, MEMORY, PERIPHERAL, EXCEPTION = 0, 1, 2, 3
_BODY = {
    INSTRUCTION: struct.Struct("<BQ"),
    MEMORY: struct.Struct("<B"),
    PERIPHERAL: struct.Struct("<BQ"),
    EXCEPTION: struct.Struct("<Q"),
}
MEMORY_READ, MEMORY_WRITE = 2, 3
PERIPHERAL_READ, PERIPHERAL_WRITE = 0, 1
DEFAULT_INTERVAL_S = 0.01  # Kenning's profiler_interval_step: 10 ms of virtual time


class ProfilerDumpError(ValueError):
    """The file is not a Renode profiler dump of the format this parser knows."""


class ProfilerDumpTruncated(ProfilerDumpError):
    """The dump ends inside an entry: it was cut off while being written."""

    def __init__(self, source: str, offset: int, size: int):
        self.source, self.offset, self.size = source, offset, size
        super().__init__(
            f"profiler dump {source} is cut off: it ends {size - offset} bytes into the entry at byte offset "
            f"{offset} (file size {size}). Was the disk full, or did Renode stop while writing? Free space and "
            "rerun the evaluation; statistics from an incomplete dump would miss the end of the run."
        )


@dataclass
class ProfilerDump:
    cpus: dict[int, str]
    peripherals: list[tuple[str, int, int]]  # name, first address, last address
    instructions: np.ndarray  # structured: t_ms, cpu, count (cumulative)
    memory: np.ndarray  # structured: t_ms, op
    peripheral: np.ndarray  # structured: t_ms, op, address
    exceptions: np.ndarray  # structured: t_ms, index


_INSTR_DT = np.dtype([("t_ms", "f8"), ("cpu", "u1"), ("count", "u8")])
_MEM_DT = np.dtype([("t_ms", "f8"), ("op", "u1")])
_PERIPH_DT = np.dtype([("t_ms", "f8"), ("op", "u1"), ("address", "u8")])
_EXC_DT = np.dtype([("t_ms", "f8"), ("index", "u8")])


def _header(data: bytes, source: str) -> tuple[dict[int, str], list[tuple[str, int, int]], int]:
    offset = 0

    def take(fmt: str):
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(data):
            raise ProfilerDumpError(f"profiler dump {source}: the header ends early at byte {offset}")
        values = struct.unpack_from(fmt, data, offset)
        offset += size
        return values

    (cpu_count,) = take("<i")
    if not 0 <= cpu_count <= 1024:
        raise ProfilerDumpError(f"profiler dump {source}: implausible CPU count {cpu_count} in the header")
    cpus = {}
    for _ in range(cpu_count):
        cpu_id, length = take("<ii")
        cpus[cpu_id] = take(f"<{length}s")[0].decode(errors="replace")
    (peripheral_count,) = take("<i")
    if not 0 <= peripheral_count <= 100_000:
        raise ProfilerDumpError(f"profiler dump {source}: implausible peripheral count {peripheral_count} in the header")
    peripherals = []
    for _ in range(peripheral_count):
        (length,) = take("<i")
        name = take(f"<{length}s")[0].decode(errors="replace")
        start, end = take("<QQ")
        peripherals.append((name, start, end))
    return cpus, peripherals, offset


def _scan(data, offset: int, end: int, source: str, base: int = 0) -> tuple[dict[int, array.array], int]:
    """Start offsets of the whole entries in ``data[offset:end]``, by type; returns where it stopped
    (before a partial entry). ``data`` starts at byte ``base`` of the dump ``source`` (for messages)."""

    head = ENTRY_HEAD.size
    size_instr, size_mem, size_periph, size_exc = (head + _BODY[k].size for k in (INSTRUCTION, MEMORY, PERIPHERAL, EXCEPTION))
    starts = {kind: array.array("q") for kind in _BODY}
    add_instr, add_mem, add_periph, add_exc = (starts[k].append for k in (INSTRUCTION, MEMORY, PERIPHERAL, EXCEPTION))
    last_full = end - head
    while offset <= last_full:
        kind = data[offset + 16]
        if kind == MEMORY:
            if offset + size_mem > end:
                break
            add_mem(offset)
            offset += size_mem
        elif kind == PERIPHERAL:
            if offset + size_periph > end:
                break
            add_periph(offset)
            offset += size_periph
        elif kind == INSTRUCTION:
            if offset + size_instr > end:
                break
            add_instr(offset)
            offset += size_instr
        elif kind == EXCEPTION:
            if offset + size_exc > end:
                break
            add_exc(offset)
            offset += size_exc
        else:
            raise ProfilerDumpError(f"profiler dump {source}: unknown entry type {kind} at byte {base + offset}")
    return starts, offset


def _gather(raw: np.ndarray, starts: dict) -> dict[int, np.ndarray]:
    """Field values at the given entry offsets, as the structured arrays of :class:`ProfilerDump`."""
    head = ENTRY_HEAD.size

    def field_at(kind: int, at: int, dtype: str) -> np.ndarray:
        offs = np.frombuffer(starts[kind], dtype=np.int64) if len(starts[kind]) else np.zeros(0, np.int64)
        width = np.dtype(dtype).itemsize
        out = np.empty(len(offs), dtype=dtype)
        for lo in range(0, len(offs), 1 << 20):  # bounded temporary memory
            chunk = offs[lo : lo + (1 << 20)]
            out[lo : lo + len(chunk)] = raw[chunk[:, None] + (at + np.arange(width))].copy().view(dtype).ravel()
        return out

    def table(kind: int, dtype: np.dtype, fields: list[tuple[str, int, str]]) -> np.ndarray:
        result = np.empty(len(starts[kind]), dtype=dtype)
        result["t_ms"] = field_at(kind, 8, "<f8")
        for name, at, fmt in fields:
            result[name] = field_at(kind, head + at, fmt)
        return result

    return {
        INSTRUCTION: table(INSTRUCTION, _INSTR_DT, [("cpu", 0, "u1"), ("count", 1, "<u8")]),
        MEMORY: table(MEMORY, _MEM_DT, [("op", 0, "u1")]),
        PERIPHERAL: table(PERIPHERAL, _PERIPH_DT, [("op", 0, "u1"), ("address", 1, "<u8")]),
        EXCEPTION: table(EXCEPTION, _EXC_DT, [("index", 0, "<u8")]),
    }


def parse_profiler_dump(data, source: str = "(in memory)") -> ProfilerDump:
    """Parse a whole dump held in memory; raises :class:`ProfilerDumpTruncated` if its last entry is cut off."""
    cpus, peripherals, offset = _header(data, source)
    starts, stop = _scan(data, offset, len(data), source)
    if stop != len(data):
        raise ProfilerDumpTruncated(source, stop, len(data))
    tables = _gather(np.frombuffer(data, dtype=np.uint8), starts)
    return ProfilerDump(cpus, peripherals, tables[INSTRUCTION], tables[MEMORY], tables[PERIPHERAL], tables[EXCEPTION])


class _Intervals:
    """Accumulates entries into fixed virtual-time intervals over [start_s, end_s]."""

    def __init__(self, cpus, peripherals, start_s: float, end_s: float, step_s: float):
        self.cpus, self.peripherals, self.start_s, self.end_s, self.step_s = cpus, peripherals, start_s, end_s, step_s
        self.n = max(int(np.floor((end_s - start_s) / step_s)) + 1, 1)
        zeros = lambda: np.zeros(self.n, np.int64)  # noqa: E731
        self.executed = {name: zeros() for name in cpus.values()}
        self.last_count: dict[int, int] = {}
        self.memory = {"read": zeros(), "write": zeros()}
        self.periph = {name: {"read": zeros(), "write": zeros()} for name, _, _ in peripherals}
        self.exceptions = zeros()

    def _bucket(self, t_ms: np.ndarray):
        t = t_ms / 1e3
        keep = (t >= self.start_s) & (t <= self.end_s)
        return np.minimum(((t[keep] - self.start_s) / self.step_s).astype(np.int64), self.n - 1), keep

    def _count(self, into: np.ndarray, t_ms: np.ndarray) -> None:
        idx, _ = self._bucket(t_ms)
        into += np.bincount(idx, minlength=self.n)[: self.n]

    def add(self, instructions, memory, peripheral, exceptions) -> None:
        for cpu_id, name in self.cpus.items():
            rows = instructions[instructions["cpu"] == cpu_id]
            if not len(rows):
                continue
            rows = rows[np.argsort(rows["t_ms"], kind="stable")]
            counts = rows["count"].astype(np.int64)
            previous = self.last_count.get(cpu_id, int(counts[0]))
            deltas = np.diff(counts, prepend=previous)
            self.last_count[cpu_id] = int(counts[-1])
            idx, keep = self._bucket(rows["t_ms"])
            self.executed.setdefault(name, np.zeros(self.n, np.int64))
            self.executed[name] += np.bincount(idx, weights=deltas[keep], minlength=self.n)[: self.n].astype(np.int64)
        self._count(self.memory["read"], memory["t_ms"][memory["op"] == MEMORY_READ])
        self._count(self.memory["write"], memory["t_ms"][memory["op"] == MEMORY_WRITE])
        for name, first, last in self.peripherals:
            rows = peripheral[(peripheral["address"] >= first) & (peripheral["address"] <= last)]
            self._count(self.periph[name]["read"], rows["t_ms"][rows["op"] == PERIPHERAL_READ])
            self._count(self.periph[name]["write"], rows["t_ms"][rows["op"] == PERIPHERAL_WRITE])
        self._count(self.exceptions, exceptions["t_ms"])

    def result(self) -> dict:
        return {
            "profiler_timestamps": (self.start_s + self.step_s * np.arange(self.n)).tolist(),
            "profiler_interval_s": self.step_s,
            "executed_instructions": {k: v.tolist() for k, v in self.executed.items()},
            "memory_accesses": {k: v.tolist() for k, v in self.memory.items()},
            "peripheral_accesses": {n: {k: v.tolist() for k, v in ops.items()} for n, ops in self.periph.items()},
            "exceptions": self.exceptions.tolist(),
        }


def interval_series(
    dump: ProfilerDump, start_s: float | None = None, end_s: float | None = None, step_s: float = DEFAULT_INTERVAL_S
) -> dict:
    """Per-interval series in Kenning's measurement keys (KENNING_FACTS §3.6), over [start_s, end_s].

    Instruction counts are deltas of each CPU's cumulative counter, attributed to the interval of the
    later sample. A peripheral access belongs to the peripheral whose address range contains it.
    Without bounds the whole dump is used.
    """
    times = [a["t_ms"] for a in (dump.instructions, dump.memory, dump.peripheral, dump.exceptions) if len(a)]
    if start_s is None:
        start_s = min((float(t.min()) for t in times), default=0.0) / 1e3
    if end_s is None:
        end_s = max((float(t.max()) for t in times), default=start_s * 1e3) / 1e3
    intervals = _Intervals(dump.cpus, dump.peripherals, start_s, end_s, step_s)
    intervals.add(dump.instructions, dump.memory, dump.peripheral, dump.exceptions)
    return intervals.result()


def profiler_series(
    path: Path, start_s: float, end_s: float, step_s: float = DEFAULT_INTERVAL_S, chunk_bytes: int = 32 << 20
) -> dict:
    """:func:`interval_series` of the dump file at ``path``, read in chunks.

    A full evaluation's dump is hundreds of MB (one entry per memory access), so entries are never all
    held at once: memory stays around ``chunk_bytes`` times a small factor. Raises
    :class:`ProfilerDumpTruncated` if the last entry is cut off.
    """
    size = Path(path).stat().st_size
    if size == 0:
        raise ProfilerDumpError(f"profiler dump {path} is empty (the profiler wrote nothing)")
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        cpus, peripherals, offset = _header(head, str(path))
        intervals = _Intervals(cpus, peripherals, start_s, end_s, step_s)
        while offset < size:
            f.seek(offset)
            chunk = f.read(max(chunk_bytes, 64))  # 64: more than the largest entry
            starts, reached = _scan(chunk, 0, len(chunk), str(path), base=offset)
            if reached == 0:  # what is left is less than one entry
                raise ProfilerDumpTruncated(str(path), offset, size)
            tables = _gather(np.frombuffer(chunk, dtype=np.uint8), starts)
            intervals.add(tables[INSTRUCTION], tables[MEMORY], tables[PERIPHERAL], tables[EXCEPTION])
            offset += reached
        return intervals.result()


def opcode_diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Counts executed between two snapshots of ``GetAllOpcodesCounters``; zero entries dropped."""
    diff = {op: int(count) - int(before.get(op, 0)) for op, count in after.items()}
    negative = {op: d for op, d in diff.items() if d < 0}
    if negative:
        raise ValueError(f"opcode counters went backwards (reset between snapshots?): {negative}")
    return {op: d for op, d in diff.items() if d}


def opcode_metrics(opcode_counters: dict[str, dict[str, int]], inference_passes: int) -> dict:
    """Kenning's ``compute_renode_metrics``: sums over CPUs, vector opcodes are mnemonics starting with "v"."""
    summed: dict[str, int] = {}
    for counters in opcode_counters.values():
        for op, count in counters.items():
            summed[op] = summed.get(op, 0) + int(count)
    ordered = dict(sorted(((op, c) for op, c in summed.items() if c), key=lambda kv: (-kv[1], kv[0])))
    vector = {op: c for op, c in ordered.items() if op.startswith("v")}
    total, vector_total = sum(ordered.values()), sum(vector.values())
    per_pass = total / inference_passes if inference_passes else float("nan")
    return {
        "sorted_opcode_counters": ordered,
        "sorted_vector_opcode_counters": vector,
        "total_instructions": total,
        "vector_instructions": vector_total,
        "instructions_per_inference_pass": per_pass,
        "vector_opcodes_fraction": vector_total / total if total else 0.0,
        "top_10_opcodes_per_inference_pass": {op: c / inference_passes for op, c in list(ordered.items())[:10]}
        if inference_passes
        else {},
    }


def request_windows(marks: list[dict]) -> dict[str, list[int] | list[float]]:
    """Per PROCESS request, the simulator's own deltas: executed instructions and virtual seconds.

    Measured from just before the request is written until its reply is read, so they include the
    firmware's UART polling around the inference (the device's STATS count only the invoke).
    """
    instructions: list[int] = []
    seconds: list[float] = []
    start: dict | None = None
    for mark in marks:
        if mark["label"] == "process_start":
            start = mark
        elif mark["label"] == "process_end" and start is not None:
            instructions.append(int(mark["instructions"]) - int(start["instructions"]))
            seconds.append(float(mark["virtual_s"]) - float(start["virtual_s"]))
            start = None
    return {"instructions": instructions, "virtual_seconds": seconds}


def renode_statistics(session) -> dict:
    """Everything Renode-only about a finished :class:`wand_assets.device.renode.session.RenodeSession`."""
    start, finish = session.loop_start or {}, session.finish or {}
    cpu_name = session.plan.cpu.split(".")[-1]
    counters = {cpu_name: opcode_diff(start.get("opcodes", {}), finish.get("opcodes", {}))} if start else {}
    windows = request_windows(session.marks)
    stats: dict = {
        "simulator": session.describe(),
        "opcode_counters": counters,
        **opcode_metrics(counters, len(windows["instructions"])),
        "request_window_instructions": windows["instructions"],
        "request_window_virtual_seconds": windows["virtual_seconds"],
        "loop_executed_instructions": int(finish.get("instructions", 0)) - int(start.get("instructions", 0)) if start else 0,
        "loop_virtual_seconds": float(finish.get("virtual_s", 0.0)) - float(start.get("virtual_s", 0.0)) if start else 0.0,
        "executed_instructions_total": finish.get("executed_instructions_total"),
        "worker_peak_rss_kib": finish.get("peak_rss_kib"),
        "session_wall_seconds": session.wall_seconds,
    }
    process = getattr(session, "process_opcodes", None)
    if process:
        inference = opcode_metrics({cpu_name: process}, len(windows["instructions"]))
        stats["process_opcode_counters"] = {cpu_name: process}
        stats["inference"] = {
            "instructions_per_inference_pass": inference["instructions_per_inference_pass"],
            "vector_opcodes_fraction": inference["vector_opcodes_fraction"],
            "top_10_opcodes_per_inference_pass": inference["top_10_opcodes_per_inference_pass"],
            "sorted_vector_opcode_counters": inference["sorted_vector_opcode_counters"],
        }
    dump_path = Path(session.plan.profiler_dump) if session.plan.profiler_dump else None
    if dump_path is not None and dump_path.exists() and start:
        stats.update(profiler_series(dump_path, float(start["virtual_s"]), float(finish["virtual_s"])))
        stats["profiler_dump_bytes"] = dump_path.stat().st_size
    return stats


# --- plots (every plot of Kenning's renode_stats section) ---------------------------------------------


def _series_png(timestamps, values, title: str, ylabel: str, cumulative: bool = False) -> bytes:
    fig, ax = plots.new_figure(6.0, 3.0)
    values = np.cumsum(values) if cumulative else np.asarray(values)
    ax.plot(np.asarray(timestamps), values, linewidth=1)
    ax.set_xlabel("virtual time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return plots.figure_png(fig)


def _histogram_png(values, title: str, xlabel: str) -> bytes:
    fig, ax = plots.new_figure(6.0, 3.0)
    ax.hist(np.asarray(values), bins=30)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("intervals")
    ax.set_title(title)
    return plots.figure_png(fig)


def _by_count(counts: dict) -> dict:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def renode_plots(stats: dict, max_bars: int = 32) -> dict[str, bytes]:
    """PNG per plot, keyed by a short name. Units say "per interval" (Kenning's "1/s" is per 10 ms)."""
    out: dict[str, bytes] = {}
    ordered = _by_count(stats.get("sorted_opcode_counters") or {})  # JSON round trips may sort keys
    if ordered:
        top = list(ordered.items())[:max_bars]
        out["instruction_histogram"] = plots.bar_png(
            [k for k, _ in top], [v for _, v in top], "Instruction histogram (evaluation loop)", "executed"
        )
    vector = _by_count(stats.get("sorted_vector_opcode_counters") or {})
    if vector:
        top = list(vector.items())[:max_bars]
        out["vector_histogram"] = plots.bar_png(
            [k for k, _ in top], [v for _, v in top], "V-extension instruction histogram", "executed"
        )
    stamps = stats.get("profiler_timestamps")
    if not stamps:
        return out
    step_ms = stats.get("profiler_interval_s", DEFAULT_INTERVAL_S) * 1e3
    per = f"per {step_ms:g} ms"
    for cpu, series in (stats.get("executed_instructions") or {}).items():
        out[f"executed_instructions_{cpu}"] = _series_png(stamps, series, f"{cpu}: executed instructions", per)
        out[f"executed_instructions_{cpu}_histogram"] = _histogram_png(
            series, f"{cpu}: executed instructions {per}", f"instructions {per}"
        )
        out[f"executed_instructions_{cpu}_cumulative"] = _series_png(
            stamps, series, f"{cpu}: executed instructions, cumulative", "instructions", True
        )
    for op, series in (stats.get("memory_accesses") or {}).items():
        out[f"memory_{op}s"] = _series_png(stamps, series, f"Memory {op}s", per)
        out[f"memory_{op}s_cumulative"] = _series_png(stamps, series, f"Memory {op}s, cumulative", op + "s", True)
    for name, ops in (stats.get("peripheral_accesses") or {}).items():
        for op, series in ops.items():
            if any(series):
                out[f"{name}_{op}s"] = _series_png(stamps, series, f"{name}: {op}s", per)
                out[f"{name}_{op}s_cumulative"] = _series_png(stamps, series, f"{name}: {op}s, cumulative", op + "s", True)
    exceptions = stats.get("exceptions") or []
    if any(exceptions):
        out["exceptions"] = _series_png(stamps, exceptions, "Exceptions", per)
    return out


def renode_report_markdown(stats: dict) -> str:
    """The text part of Kenning's renode_stats section plus every plot, as Markdown for the UI."""
    lines = ["## Renode statistics", ""]
    per_pass = stats.get("instructions_per_inference_pass")
    if per_pass is not None and not math.isnan(per_pass):
        lines.append(f"- Instructions per inference pass: **{per_pass:,.0f}** (whole request loop, UART polling included)")
    lines.append(f"- Vector instructions: **{100 * stats.get('vector_opcodes_fraction', 0.0):.2f} %**")
    if inference := stats.get("inference"):
        lines.append(
            f"- Within the PROCESS requests only (inference, little polling): "
            f"**{inference['instructions_per_inference_pass']:,.0f}** instructions per pass, "
            f"**{100 * inference['vector_opcodes_fraction']:.2f} %** vector"
        )
    top = _by_count(stats.get("top_10_opcodes_per_inference_pass") or {})
    if top:
        lines += ["", "| opcode | per inference pass |", "|---|---|"]
        lines += [f"| {op} | {count:,.0f} |" for op, count in top.items()]
    lines.append("")
    for name, png in renode_plots(stats).items():
        lines += [f"### {name.replace('_', ' ')}", "", plots.markdown_image(png, name), ""]
    return "\n".join(lines)
