"""The linker map's components (size per component) and the QEMU trace reader behind the instruction
profile. The real-IREE firmware's breakdown and profile are checked through Dagster in
test_device_pipeline.py."""

import shutil
from collections import Counter

import pytest

from wand_assets.core.procs import run_tool
from wand_assets.core.targets import DEVICE_TARGETS
from wand_assets.device import firmware_map, profile
from wand_assets.device.firmware_build import MAP_NAME, build_firmware

needs_toolchain = pytest.mark.skipif(
    shutil.which("riscv64-unknown-elf-gcc") is None, reason="Debian's gcc-riscv64-unknown-elf is not installed"
)


@pytest.fixture(scope="module")
def protocol_firmware(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw")
    return build_firmware(DEVICE_TARGETS[0], None, out / "build", out / "fw.elf", protocol_only=True, log=lambda _: None)


@needs_toolchain
def test_the_map_lands_beside_the_elf_and_its_components_add_up_to_size(protocol_firmware):
    linker_map = protocol_firmware.path.with_name(protocol_firmware.path.name + firmware_map.MAP_SUFFIX)
    assert linker_map.is_file() and MAP_NAME.endswith(firmware_map.MAP_SUFFIX)
    rows = {r["component"]: r for r in protocol_firmware.size_breakdown}
    total = rows.pop("total")
    assert set(rows) <= set(firmware_map.COMPONENTS)
    assert {firmware_map.PROTOCOL, firmware_map.FIRMWARE, firmware_map.LIBC} <= set(rows)
    assert firmware_map.VM not in rows  # the protocol-only firmware has no IREE
    for column in ("text", "data", "bss"):
        assert total[column] == sum(r[column] for r in rows.values())
    # Merged string constants are counted before merging: text within 2 % of `size`, the rest exact.
    assert abs(total["text"] - protocol_firmware.text_bytes) <= 0.02 * protocol_firmware.text_bytes
    assert (total["data"], total["bss"]) == (protocol_firmware.data_bytes, protocol_firmware.bss_bytes)


@needs_toolchain
def test_code_addresses_map_to_their_function_and_component(protocol_firmware):
    sections = firmware_map.parse_map(protocol_firmware.path.with_name(protocol_firmware.path.name + ".map")).sections
    nm = run_tool(["riscv64-unknown-elf-nm", protocol_firmware.path], what="nm", timeout_s=30).output
    symbols = {p[2]: int(p[0], 16) for p in map(str.split, nm.splitlines()) if len(p) == 3 and p[1] in "Tt"}
    code = firmware_map.CodeMap(sections)
    for function, component in (("wand_iospec_parse", firmware_map.PROTOCOL), ("memcpy", firmware_map.MEM)):
        section = code.section_at(symbols[function] + 2)
        assert section is not None and profile.function_name(section) == function
        assert section.component == component
    start, end = code.bounds()
    assert code.section_at(end) is None and code.section_at(start - 4) is None


def test_a_file_that_is_not_a_map_is_refused(tmp_path):
    path = tmp_path / "x.map"
    path.write_text("not a map\n")
    with pytest.raises(ValueError, match="not a GNU ld map"):
        firmware_map.parse_map(path)


def _trace(*blocks_and_runs: str) -> list[str]:
    return "\n".join(blocks_and_runs).splitlines()


def _block(*addresses: int) -> str:
    return "----------------\nIN: \n" + "\n".join(f"0x{a:08x}:  00000013          nop" for a in addresses)


def _run(pc: int, budget: int = 0) -> str:
    return f"Trace 0: 0x7f0000000000 [00000000/{pc:08x}/00109003/ff02{budget:04x}] "


CALLER = firmware_map.InputSection(".text", ".text.wand_runtime_invoke", 0x100, 0x20, "runtime_iree.c.obj")


def test_trace_counts_the_last_invoke_with_each_blocks_budget():
    lines = _trace(
        _block(0x100, 0x104),  # the caller before the call
        _run(0x100),
        _block(0x200, 0x204, 0x208),  # the invoked function
        _run(0x200),
        _block(0x110),
        _run(0x110),  # back in the caller: the first invoke ends
        _run(0x200),  # the second invoke: the whole block, then a block cut to 2 instructions by -icount
        _run(0x200, budget=2),
        _block(0x900, 0x904),  # dispatch code outside the firmware
        _run(0x900),
        _run(0x110),
    )
    counts = profile.last_invoke_counts(lines, 0x200, CALLER)
    assert counts == Counter({0x200: 2, 0x204: 2, 0x208: 1, 0x900: 1, 0x904: 1})


def _io_run(pc: int) -> str:
    return f"Trace 0: 0x7f0000000000 [00000000/{pc:08x}/00109003/ff038201] "


def test_a_block_stopped_by_an_io_access_counts_up_to_the_access():
    lines = _trace(
        _block(0x200, 0x204, 0x208, 0x20C),
        _block(0x208),  # QEMU re-translates the access alone (CF_LAST_IO, budget 1)
        _run(0x200),  # the access at 0x208 stops the block: 0x200 and 0x204 ran
        _io_run(0x208),
        _block(0x20C),
        _run(0x20C),
        _run(0x110),
    )
    counts = profile.last_invoke_counts(lines, 0x200, CALLER)
    assert counts == Counter({0x200: 1, 0x204: 1, 0x208: 1, 0x20C: 1})


def test_trace_without_a_complete_invoke_is_refused():
    lines = _trace(_block(0x200), _run(0x200))
    with pytest.raises(ValueError, match="no complete call"):
        profile.last_invoke_counts(lines, 0x200, CALLER)
