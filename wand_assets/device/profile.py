"""Where the instructions of one inference go: per-function counts from a QEMU execution trace, grouped
into the components of :mod:`wand_assets.device.firmware_map`.

Plain Python (no Dagster). Debian's QEMU has no TCG plugins, and its ``-singlestep`` aborts on the
vector code (an assertion in ``decode_save_opc``), so the trace is QEMU's translation-block log:
``-d in_asm,exec,nochain`` prints every block's instructions when it is translated and one line each
time it runs. A block's start PC, its ``cflags`` instruction budget and the I/O restarts of
``-icount`` (a block stopped at a device access, the access re-run alone) give the instructions it
executed. The inference is the part of the
trace from the entry of ``iree_vm_invoke`` to the return into its caller, the same span the firmware's
``minstret`` delta covers. Code outside the firmware image is the model's dispatches: embedded ELFs
from the uploaded ``.vmfb``, loaded into the heap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wand_assets.compilation.iospec import ModelIOSpec
from wand_assets.core.targets import Target
from wand_assets.device import qemu
from wand_assets.device.firmware_map import MAP_SUFFIX, MODEL, CodeMap, InputSection, LinkerMap, parse_map
from wand_assets.device.protocol import DeviceClient
from wand_assets.device.session import evaluate_on_device

TRACE_ARGS = ("-d", "in_asm,exec,nochain")  # plus "-D <file>"
INVOKE_FUNCTION = "iree_vm_invoke"
INVOKE_CALLER = "wand_runtime_invoke"
_CF_COUNT_MASK = 0x1FF  # QEMU's CF_COUNT_MASK: a block's instruction budget (0: none)
_CF_LAST_IO = 0x8000  # QEMU 7.2's CF_LAST_IO: the block re-runs an I/O access that stopped the one before

_EXEC = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/([0-9a-f]+)\]")
_INSN = re.compile(r"^0x([0-9a-f]+):\s")


def function_name(section: InputSection) -> str:
    """The function of a ``-ffunction-sections`` code section (``.text.<name>``), else the section's name."""
    return section.name.removeprefix(".text.") if section.name.startswith(".text.") else section.name


def trace_args(log_path: Path) -> list[str]:
    """QEMU arguments that write the trace this module reads to ``log_path``."""
    return [*TRACE_ARGS, "-D", str(log_path)]


@dataclass(frozen=True)
class InvokeProfile:
    instructions: int  # executed between the entry of iree_vm_invoke and the return to its caller
    per_function: list[tuple[str, str, int]]  # (component, function, instructions), most first
    per_component: list[tuple[str, int]]  # (component, instructions), most first

    def as_dict(self) -> dict:
        return asdict(self)

    def rows(self, top: int = 25) -> list[dict]:
        """The ``top`` functions as table rows."""
        return [
            {"component": c, "function": f, "instructions": n, "share": round(n / max(1, self.instructions), 4)}
            for c, f, n in self.per_function[:top]
        ]

    def component_rows(self) -> list[dict]:
        return [
            {"component": c, "instructions": n, "share": round(n / max(1, self.instructions), 4)} for c, n in self.per_component
        ]


def last_invoke_counts(lines: Iterable[str], invoke_entry: int, caller: InputSection) -> Counter[int]:
    """Instructions executed per address over the last call of the function at ``invoke_entry`` from
    ``caller``, from a ``-d in_asm,exec,nochain`` log."""
    blocks: dict[int, list[int]] = {}  # start PC -> the longest translation's instruction addresses
    current: list[int] | None = None
    counts: Counter[int] | None = None
    last: Counter[int] | None = None
    pending: list[int] = []  # the block that ran last: counted once the next line shows how far it got
    for line in lines:
        if line.startswith("Trace"):
            current = None
            match = _EXEC.match(line)
            if match is None:
                continue
            pc, cflags = int(match.group(1), 16), int(match.group(2), 16)
            if counts is not None:
                # An I/O access inside a block stops it there under -icount: QEMU keeps what ran before
                # the access and runs the access alone in a block of its own (CF_LAST_IO).
                cut = cflags & _CF_LAST_IO and pc in pending
                counts.update(pending[: pending.index(pc)] if cut else pending)
                pending = []
            if counts is None:
                if pc != invoke_entry:
                    continue
                counts = Counter()
            elif caller.address <= pc < caller.address + caller.size:
                last, counts = counts, None
                continue
            insns = blocks.get(pc)
            if insns is None:
                raise ValueError(f"the trace runs a block at {pc:#x} it never translated (was in_asm logged?)")
            budget = cflags & _CF_COUNT_MASK
            pending = insns[:budget] if budget else insns
        elif line.startswith("IN:"):
            current = []
        elif current is not None and (match := _INSN.match(line)):
            address = int(match.group(1), 16)
            current.append(address)
            if len(current) == 1 or len(current) > len(blocks.get(current[0], ())):
                blocks[current[0]] = current
    if last is None:
        raise ValueError(f"the trace has no complete call of {INVOKE_FUNCTION}")
    return last


def profile_invoke(trace_path: Path, linker_map: LinkerMap) -> InvokeProfile:
    """The last inference in ``trace_path``, per function and component of the firmware in ``sections``."""
    code = CodeMap(linker_map.sections)
    by_name = {function_name(s): s for s in linker_map.sections if s.output == ".text"}
    try:
        entry, caller = by_name[INVOKE_FUNCTION], by_name[INVOKE_CALLER]
    except KeyError as e:
        raise ValueError(f"the firmware's map has no function {e}; was it built with -ffunction-sections?") from None
    with open(trace_path, errors="replace") as lines:
        counts = last_invoke_counts(lines, entry.address, caller)
    functions: Counter[tuple[str, str]] = Counter()
    for address, n in counts.items():
        section = code.section_at(address)
        if section is None:
            functions[(MODEL, "(dispatch code in the loaded .vmfb)")] += n
        else:
            functions[(section.component, function_name(section))] += n
    components: Counter[str] = Counter()
    for (component, _), n in functions.items():
        components[component] += n
    return InvokeProfile(
        instructions=sum(counts.values()),
        per_function=[(c, f, n) for (c, f), n in functions.most_common()],
        per_component=components.most_common(),
    )


def trace_inference(elf: Path, target: Target, io: ModelIOSpec, vmfb: bytes, windows: np.ndarray, workdir: Path) -> InvokeProfile:
    """Profile the last of ``windows`` (two are enough: the first invoke also pays one-time costs) on
    the firmware ``elf`` in QEMU with the trace on; the trace (~150 MB) stays in ``workdir``."""
    linker_map = parse_map(elf.with_name(elf.name + MAP_SUFFIX))
    trace = workdir / "exec.log"
    with qemu.start_qemu(elf, target, workdir, extra_args=trace_args(trace)) as session:
        evaluate_on_device(DeviceClient(session.port), io, vmfb, windows)
    return profile_invoke(trace, linker_map)
