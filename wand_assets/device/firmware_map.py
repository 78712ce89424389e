"""What the firmware is made of, from GNU ld's map file (``-Wl,-Map``): every input section with its
address, size and the object or archive member it came from, grouped into components.

Plain Python (no Dagster). Two uses: the size of each component per ``size`` column (text = code and
read-only data, data, bss), and the component of any code address (so a profile of program counters
can be grouped the same way, :mod:`wand_assets.device.profile`).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

MAP_SUFFIX = ".map"  # the firmware build writes <elf>.map beside the ELF

# Components, in the order tables list them. The model's dispatches are not in the firmware: they are
# embedded ELFs inside the uploaded .vmfb (or, EmitC, inside the linked-in C module's rodata), loaded
# into the heap at run time.
MODEL = "model dispatches"
MODEL_MODULE = "model VM module as C (EmitC: code, weights, dispatch ELFs)"  # src/module_emitc.c
VM = "IREE VM"
HAL = "IREE HAL"
IREE_BASE = "IREE base"
LIBC = "libc + libgcc"
MEM = "memset/memcpy"
PROTOCOL = "firmware: protocol + UART"
FIRMWARE = "firmware: runtime glue + board"
OTHER = "other"
RESERVED = "reserved by the linker script + padding"  # e.g. the trap stack: no input section
COMPONENTS = (MODEL, MODEL_MODULE, VM, HAL, IREE_BASE, LIBC, MEM, PROTOCOL, FIRMWARE, OTHER, RESERVED)

# Which `size` column an output section counts in (Berkeley format: text = allocated read-only).
_TEXT = {".text", ".rodata", ".srodata", ".init", ".fini", ".rela.dyn"}
_DATA = {".data", ".sdata", ".got", ".got.plt", ".tdata"}
_BSS = {".bss", ".sbss", ".tbss", ".tbss_space", ".trap_stack"}  # .tbss_space: the TLS block of the one thread
_KIND = {**dict.fromkeys(_TEXT, "text"), **dict.fromkeys(_DATA, "data"), **dict.fromkeys(_BSS, "bss")}

_MEM_FUNCTIONS = {"memset", "memcpy", "memmove"}
_PROTOCOL_SOURCES = ("protocol.c", "uart.c", "iospec.c", "log.c")

_OUTPUT = re.compile(r"^(\.[\w.]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)")
_OUTPUT_REST = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)$")
_INPUT_ONE_LINE = re.compile(r"^ (\.[^\s*]\S*)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_INPUT_NAME = re.compile(r"^ (\.[^\s*]\S*)$")
_INPUT_REST = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


@dataclass(frozen=True)
class InputSection:
    output: str  # the output section, e.g. .text
    name: str  # the input section, e.g. .text.iree_vm_invoke
    address: int
    size: int
    source: str  # object file or archive(member)

    @property
    def component(self) -> str:
        return component_of(self.source, self.name)


def component_of(source: str, section: str) -> str:
    """The component an input section belongs to, from the object or archive it came from."""
    function = section.rsplit(".", 1)[-1]
    if function in _MEM_FUNCTIONS and (source.endswith("mem.c.obj") or "libc.a" in source):
        return MEM
    if "/wand_firmware.dir/" in source and source.endswith("module_emitc.c.obj"):
        return MODEL_MODULE
    if "/wand_firmware.dir/" in source:
        return PROTOCOL if source.endswith(tuple(f"{s}.obj" for s in _PROTOCOL_SOURCES)) else FIRMWARE
    if "libiree_vm_" in source or "libflatcc" in source:
        return VM
    if "libiree_hal_" in source or "libiree_modules_hal_" in source or "libiree_io_" in source:
        return HAL
    if "libiree_base_" in source or "libprintf" in source:
        return IREE_BASE
    if re.search(r"lib(c|m|gcc)\.a\(", source):
        return LIBC
    return OTHER


@dataclass(frozen=True)
class LinkerMap:
    sections: list[InputSection]  # allocated input sections, as placed
    output_sizes: dict[str, int]  # allocated output section -> its size


def parse_map(path: Path) -> LinkerMap:
    """The allocated input and output sections of a GNU ld map (after "Linker script and memory map")."""
    lines = Path(path).read_text(errors="replace").splitlines()
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        raise ValueError(f"{path} is not a GNU ld map file (no 'Linker script and memory map')") from None
    sections: list[InputSection] = []
    outputs: dict[str, int] = {}
    output = ""
    pending: str | None = None
    output_pending = False
    for line in lines[start + 1 :]:
        if match := _OUTPUT.match(line):
            output, pending, output_pending = match.group(1), None, False
            outputs[output] = outputs.get(output, 0) + int(match.group(2), 16)
            continue
        if line and not line[0].isspace():
            output, pending, output_pending = line.split()[0], None, True  # a long name alone on its line
            continue
        if output_pending:
            output_pending = False
            if rest := _OUTPUT_REST.match(line):
                outputs[output] = outputs.get(output, 0) + int(rest.group(1), 16)
                continue
        if pending is not None:
            rest = _INPUT_REST.match(line)
            pending_name, pending = pending, None
            if rest:
                _add(sections, output, pending_name, rest.group(1), rest.group(2), rest.group(3))
                continue
        if match := _INPUT_ONE_LINE.match(line):
            _add(sections, output, *match.groups())
        elif match := _INPUT_NAME.match(line):
            pending = match.group(1)
    return LinkerMap(sections, {name: size for name, size in outputs.items() if name in _KIND})


def _add(sections: list[InputSection], output: str, name: str, address: str, size: str, source: str) -> None:
    if output in _KIND and int(size, 16) > 0:
        sections.append(InputSection(output, name, int(address, 16), int(size, 16), source.strip()))


def size_breakdown(linker_map: LinkerMap) -> list[dict]:
    """Bytes per component and `size` column (text, data, bss), components in :data:`COMPONENTS` order,
    plus a total row. What an output section holds beyond its input sections (reserved space, padding)
    is its own row. Merged string constants are counted before merging, so a component's text can be
    a little above what it occupies."""
    sums: dict[str, dict[str, int]] = {}
    placed: dict[str, int] = {}
    for s in linker_map.sections:
        row = sums.setdefault(s.component, {"text": 0, "data": 0, "bss": 0})
        row[_KIND[s.output]] += s.size
        placed[s.output] = placed.get(s.output, 0) + s.size
    for name, size in linker_map.output_sizes.items():
        if (extra := size - placed.get(name, 0)) > 0:
            row = sums.setdefault(RESERVED, {"text": 0, "data": 0, "bss": 0})
            row[_KIND[name]] += extra
    rows = [{"component": c, **sums[c]} for c in COMPONENTS if c in sums]
    rows.append({"component": "total", **{k: sum(r[k] for r in sums.values()) for k in ("text", "data", "bss")}})
    return rows


class CodeMap:
    """Which input section (so: which component and function) holds a code address."""

    def __init__(self, sections: list[InputSection]):
        code = sorted((s for s in sections if s.output == ".text"), key=lambda s: s.address)
        self._starts = [s.address for s in code]
        self._sections = code

    def section_at(self, address: int) -> InputSection | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._sections[i].address + self._sections[i].size:
            return self._sections[i]
        return None

    def bounds(self) -> tuple[int, int]:
        """The firmware's code range [start, end)."""
        if not self._sections:
            return (0, 0)
        last = self._sections[-1]
        return self._starts[0], last.address + last.size
