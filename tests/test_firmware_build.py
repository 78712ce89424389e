"""The firmware builds per target; a missing or wrong IREE source tree fails clearly.

The protocol-only (TEST ONLY, fake runtime) firmware needs no IREE. The full firmware, built with the
IREE v3.11.0 runtime through Dagster, is checked in test_device_pipeline.py.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import shutil
import struct
import tomllib
from pathlib import Path

import pytest

from wand_assets.compilation.iree_tools import IREE_DISTRIBUTIONS
from wand_assets.core.procs import ToolError, run_tool
from wand_assets.core.targets import DEVICE_TARGETS, QEMU_VIRT, get_target
from wand_assets.device import firmware_build
from wand_assets.device.firmware_build import (
    FIRMWARE_DIR,
    IREE_SOURCE_VERSION,
    IreeSourceError,
    build_firmware,
    check_iree_source,
    cmake_cache_variables,
    find_cmake,
)

needs_toolchain = pytest.mark.skipif(
    shutil.which("riscv64-unknown-elf-gcc") is None,
    reason="needs Debian's gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf",
)

RISCV_MACHINE = 0xF3


def assert_rv32_elf(path: Path) -> None:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    assert head[4] == 1, "ELFCLASS32"
    assert int.from_bytes(head[18:20], "little") == RISCV_MACHINE


def fake_iree_tree(root: Path, version: str) -> Path:
    (root / "runtime").mkdir(parents=True)
    (root / "runtime" / "version.json").write_text(json.dumps({"package-version": version}))
    for sub in ("third_party/flatcc/include/flatcc", "third_party/printf/src"):
        (root / sub).mkdir(parents=True)
    return root


@needs_toolchain
@pytest.mark.parametrize("target", DEVICE_TARGETS)
def test_protocol_only_firmware_builds_without_iree(tmp_path, target):
    lines: list[str] = []
    out = tmp_path / "out" / f"{target}.elf"
    fw = build_firmware(target, None, tmp_path / "build", out, protocol_only=True, log=lines.append)
    assert fw.path == out and fw.protocol_only
    assert_rv32_elf(out)
    assert fw.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert fw.size_bytes == out.stat().st_size
    assert fw.text_bytes > 0 and fw.bss_bytes > 1_310_720  # the static receive buffer
    assert fw.iree_source_version is None
    assert fw.gcc_version and fw.picolibc_version != "unknown" and fw.cmake_version
    assert list(out.parent.glob("*.tmp")) == []
    assert any("wand_firmware" in line for line in lines)  # the build log was streamed


def load_addresses_and_symbols(elf: Path) -> tuple[list[int], dict[str, int]]:
    """The virtual addresses of an ELF32's non-empty PT_LOAD segments and its symbol table (from nm)."""
    data = elf.read_bytes()
    (phoff,) = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    loads = []
    for i in range(phnum):
        p_type, _, p_vaddr, _, _, p_memsz = struct.unpack_from("<6I", data, phoff + i * phentsize)
        if p_type == 1 and p_memsz:  # PT_LOAD
            loads.append(p_vaddr)
    nm = run_tool(["riscv64-unknown-elf-nm", elf], what="nm", timeout_s=30).output
    symbols = {parts[2]: int(parts[0], 16) for parts in map(str.split, nm.splitlines()) if len(parts) == 3}
    return loads, symbols


@needs_toolchain
def test_firmware_is_linked_for_the_targets_board(tmp_path):
    board = dataclasses.replace(QEMU_VIRT, ram_base=0x9000_0000, ram_size=32 << 20)
    target = dataclasses.replace(get_target(DEVICE_TARGETS[0]), board=board)
    fw = build_firmware(target, None, tmp_path / "build", tmp_path / "fw.elf", protocol_only=True, log=lambda _: None)
    loads, symbols = load_addresses_and_symbols(fw.path)
    assert min(loads) == board.ram_base
    assert symbols["__stack_top"] == board.ram_base + board.ram_size


@needs_toolchain
def test_firmware_fingerprint_follows_its_sources_not_its_documentation(tmp_path, monkeypatch):
    copy = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, copy)
    monkeypatch.setattr(firmware_build, "FIRMWARE_DIR", copy)
    before = firmware_build.sources_sha256()
    (copy / "README.md").write_text("edited\n")
    (copy / "PROTOCOL.md").unlink()
    assert firmware_build.sources_sha256() == before
    main_c = copy / "src" / "main.c"
    main_c.write_text(main_c.read_text() + "\n")
    assert firmware_build.sources_sha256() != before
    main_c.rename(copy / "src" / "main2.c")
    assert firmware_build.sources_sha256() != before


def test_cmake_without_the_board_refuses_to_guess(tmp_path):
    cache_vars = cmake_cache_variables(get_target(DEVICE_TARGETS[0]))
    del cache_vars["WAND_UART0_BASE"]
    args = [find_cmake(), "-S", FIRMWARE_DIR, "-B", tmp_path / "build", *(f"-D{k}={v}" for k, v in cache_vars.items())]
    with pytest.raises(ToolError) as e:
        run_tool(args, what="cmake configure", timeout_s=120)
    assert "WAND_UART0_BASE='' is not a number" in e.value.tail


@needs_toolchain
def test_build_dir_configured_for_another_target_is_rebuilt(tmp_path):
    first, second = DEVICE_TARGETS[:2]
    build = tmp_path / "build"
    build_firmware(first, None, build, tmp_path / "a.elf", protocol_only=True, log=lambda _: None)
    lines: list[str] = []
    fw = build_firmware(second, None, build, tmp_path / "b.elf", protocol_only=True, log=lines.append)
    assert fw.target == second
    assert any("starting afresh" in line for line in lines)


def test_missing_iree_source_dir_names_the_variable(tmp_path):
    with pytest.raises(IreeSourceError, match="IREE_SOURCE_DIR") as e:
        check_iree_source(tmp_path / "nowhere")
    assert IREE_SOURCE_VERSION in str(e.value)
    with pytest.raises(IreeSourceError, match="IREE_SOURCE_DIR is not set"):
        check_iree_source(None)


def test_wrong_iree_version_is_refused(tmp_path):
    tree = fake_iree_tree(tmp_path / "iree", "3.12.0.dev")
    with pytest.raises(IreeSourceError, match=r"IREE_SOURCE_DIR=.* is IREE 3\.12\.0\.dev, expected 3\.11\.0"):
        check_iree_source(tree)


def test_iree_tree_without_submodules_is_refused(tmp_path):
    tree = fake_iree_tree(tmp_path / "iree", f"{IREE_SOURCE_VERSION}.dev")
    shutil.rmtree(tree / "third_party" / "printf")
    with pytest.raises(IreeSourceError, match="third_party/printf"):
        check_iree_source(tree)


def test_matching_iree_tree_is_accepted(tmp_path):
    tree = fake_iree_tree(tmp_path / "iree", f"{IREE_SOURCE_VERSION}.dev")
    source = check_iree_source(tree)
    assert source.version == f"{IREE_SOURCE_VERSION}.dev" and source.commit is None


def test_full_build_without_iree_source_fails_before_cmake(tmp_path):
    with pytest.raises(IreeSourceError, match="IREE_SOURCE_DIR"):
        build_firmware(DEVICE_TARGETS[0], None, tmp_path / "build", tmp_path / "fw.elf")
    assert not (tmp_path / "build").exists()


@needs_toolchain
def test_cmake_itself_names_iree_source_dir_and_version(tmp_path):
    """Users calling CMake directly get the same clear error (no Python pre-check involved)."""
    t = get_target(DEVICE_TARGETS[0])
    tree = fake_iree_tree(tmp_path / "iree", "3.10.0.dev")
    cache_vars = cmake_cache_variables(t, iree_source=tree, host_bin_dir=tmp_path)
    args = [find_cmake(), "-S", FIRMWARE_DIR, "-B", tmp_path / "build", *(f"-D{k}={v}" for k, v in cache_vars.items())]
    with pytest.raises(ToolError) as e:
        run_tool(args, what="cmake configure", timeout_s=120)
    assert "IREE_SOURCE_DIR" in e.value.tail and IREE_SOURCE_VERSION in e.value.tail


@needs_toolchain
def test_cmake_without_the_iree_release_refuses_to_guess(tmp_path):
    t = get_target(DEVICE_TARGETS[0])
    tree = fake_iree_tree(tmp_path / "iree", f"{IREE_SOURCE_VERSION}.dev")
    cache_vars = cmake_cache_variables(t, iree_source=tree, host_bin_dir=tmp_path)
    del cache_vars["WAND_IREE_VERSION"]
    args = [find_cmake(), "-S", FIRMWARE_DIR, "-B", tmp_path / "build", *(f"-D{k}={v}" for k, v in cache_vars.items())]
    with pytest.raises(ToolError) as e:
        run_tool(args, what="cmake configure", timeout_s=120)
    assert "WAND_IREE_VERSION='' is not an IREE release" in e.value.tail


def test_iree_release_is_the_installed_compilers_and_the_pyproject_pin():
    pins = tomllib.loads((FIRMWARE_DIR.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    for distribution in IREE_DISTRIBUTIONS:
        assert f"{distribution}=={IREE_SOURCE_VERSION}" in pins
        assert importlib.metadata.version(distribution).startswith(IREE_SOURCE_VERSION)


def test_find_cmake_returns_a_new_enough_cmake():
    version = run_tool([find_cmake(), "--version"], what="cmake", timeout_s=30).output.split()[2]
    assert tuple(int(p) for p in version.split(".")[:2]) >= (3, 26)


def test_resolve_iree_source_uses_the_environment(tmp_path, monkeypatch):
    from wand_assets.device.firmware_build import resolve_iree_source

    monkeypatch.setenv("IREE_SOURCE_DIR", str(tmp_path))
    assert resolve_iree_source() == tmp_path
    assert resolve_iree_source(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("IREE_SOURCE_DIR")
    with pytest.raises(IreeSourceError, match="IREE_SOURCE_DIR is not set"):
        resolve_iree_source()


@needs_toolchain
def test_build_record_is_json_ready(tmp_path):
    fw = build_firmware(DEVICE_TARGETS[0], None, tmp_path / "b", tmp_path / "fw.elf", protocol_only=True, log=lambda _: None)
    record = json.loads(json.dumps(fw.as_dict()))
    assert record["text_bytes"] == fw.text_bytes and record["gcc_version"] == fw.gcc_version
    assert record["iree_source_version"] is None and record["protocol_only"] is True
