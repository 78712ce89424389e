"""Build the bare-metal firmware (``firmware/``) for one device target: CMake + Debian's
riscv64-unknown-elf GCC + picolibc + the IREE runtime from an IREE source tree.

Plain Python (no Dagster). The ISA, ABI, vector switch and board memory map come from
:mod:`wand_assets.core.targets`, the IREE release from the installed wheels; this module passes them
to CMake as cache variables (:func:`cmake_cache_variables`) and never spells them itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from wand_assets.compilation.iree_tools import IREE_VERSION
from wand_assets.core.artifacts import atomic_path, sha256_file, sha256_tree
from wand_assets.core.procs import ToolError, run_tool
from wand_assets.core.targets import Target, get_target
from wand_assets.device import firmware_map

IREE_SOURCE_VERSION = IREE_VERSION  # the firmware's runtime source must be the compiler's release
IREE_SOURCE_COMMIT = "e4a3b0405d7d23554da26403658d0e8c3c5ecf25"  # of that release's tag; scripts/fetch_upstream.sh reads it
MIN_CMAKE_VERSION = (3, 26)
TOOLCHAIN_PREFIX = "riscv64-unknown-elf-"
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
# Documentation beside the sources; editing it must not rebuild every firmware.
_NOT_BUILD_INPUTS = (".md",)
ELF_NAME = "wand_firmware.elf"
MAP_NAME = ELF_NAME + firmware_map.MAP_SUFFIX  # the linker's map (-Wl,-Map), beside the ELF
BUILD_LOG_NAME = "build.log"
_IREE_SUBMODULES = ("third_party/flatcc/include/flatcc", "third_party/printf/src")

LogFn = Callable[[str], None]


def sources_sha256() -> str:
    """Hash of everything under ``firmware/`` the build reads (sources, CMake, linker script)."""
    return sha256_tree(FIRMWARE_DIR, skip_suffixes=_NOT_BUILD_INPUTS)


class IreeSourceError(RuntimeError):
    """IREE_SOURCE_DIR is missing, is not the installed compiler's IREE release, or lacks its submodules."""


class FirmwareBuildError(RuntimeError):
    """The firmware could not be configured or built; the message says what to do next."""


@dataclass(frozen=True)
class LinkedModule:
    """What an EmitC target's firmware links in: the model's VM module as C (compiled_model's
    ``model_emitc.h``) and the SHA-256 of the .vmfb compiled alongside, the one MODEL must upload."""

    c_module: Path
    vmfb_sha256: str


@dataclass(frozen=True)
class IreeSource:
    path: Path
    version: str  # as declared in runtime/version.json, e.g. "<IREE_SOURCE_VERSION>.dev"
    commit: str | None  # git HEAD when the tree is a git checkout/worktree


@dataclass(frozen=True)
class FirmwareBuild:
    target: str
    path: Path
    sha256: str
    size_bytes: int
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    protocol_only: bool  # TEST ONLY firmware (fake runtime, no inference)
    iree_source_version: str | None
    iree_source_commit: str | None
    gcc_version: str
    picolibc_version: str
    cmake_version: str
    # Bytes per component (firmware_map.COMPONENTS) and `size` column, from the linker map.
    size_breakdown: list[dict]

    def as_dict(self) -> dict:
        """JSON-ready record."""
        return {**asdict(self), "path": str(self.path)}


def resolve_iree_source(path: str | os.PathLike | None = None) -> Path:
    """The IREE source tree to build against: ``path`` if given, else ``$IREE_SOURCE_DIR``."""
    chosen = path or os.environ.get("IREE_SOURCE_DIR")
    if not chosen:
        raise IreeSourceError(
            f"IREE_SOURCE_DIR is not set: point it (or the toolchain's iree_source_dir) at an IREE source tree at "
            f"tag v{IREE_SOURCE_VERSION} with third_party/flatcc and third_party/printf (see firmware/README.md)."
        )
    return Path(chosen)


def toolchain_versions() -> dict[str, str]:
    """Versions of the tools that shape the firmware binary: riscv64-unknown-elf GCC, picolibc, CMake."""
    gcc = _require_tool(f"{TOOLCHAIN_PREFIX}gcc")
    return {
        "gcc": _capture([gcc, "-dumpfullversion"]).strip(),
        "picolibc": _picolibc_version(gcc),
        "cmake": _cmake_version(find_cmake()) or "unknown",
    }


def check_iree_source(path: str | os.PathLike | None) -> IreeSource:
    """Check that ``path`` (IREE_SOURCE_DIR) is an IREE source tree of :data:`IREE_SOURCE_VERSION` with its submodules."""
    hint = (
        f"Set IREE_SOURCE_DIR to an IREE source tree at tag v{IREE_SOURCE_VERSION} with the "
        "third_party/flatcc and third_party/printf submodules (see firmware/README.md)."
    )
    if not path:
        raise IreeSourceError(f"IREE_SOURCE_DIR is not set. {hint}")
    root = Path(path)
    version_file = root / "runtime" / "version.json"
    if not version_file.is_file():
        raise IreeSourceError(f"IREE_SOURCE_DIR={root} is not an IREE source tree (no runtime/version.json). {hint}")
    try:
        version = str(json.loads(version_file.read_text())["package-version"])
    except (ValueError, KeyError) as e:
        raise IreeSourceError(f"IREE_SOURCE_DIR={root}: unreadable runtime/version.json ({e}). {hint}") from None
    match = re.match(r"\d+\.\d+\.\d+", version)
    if not match or match.group(0) != IREE_SOURCE_VERSION:
        raise IreeSourceError(
            f"IREE_SOURCE_DIR={root} is IREE {version}, expected {IREE_SOURCE_VERSION} (the runtime must match "
            f"the pinned compiler exactly). {hint}"
        )
    for sub in _IREE_SUBMODULES:
        if not (root / sub).exists():
            raise IreeSourceError(f"IREE_SOURCE_DIR={root} lacks the submodule {sub}. {hint}")
    return IreeSource(path=root, version=version, commit=_git_head(root))


def find_cmake() -> str:
    """A cmake >= 3.26: the one next to sys.executable (pip's ``cmake<4``) first, then PATH."""
    candidates = [Path(sys.executable).with_name("cmake"), shutil.which("cmake")]
    seen: list[str] = []
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        version = _cmake_version(str(candidate))
        seen.append(f"{candidate} ({version or 'unknown version'})")
        if version and _version_tuple(version) >= MIN_CMAKE_VERSION:
            return str(candidate)
    raise FirmwareBuildError(
        f"no cmake >= {'.'.join(map(str, MIN_CMAKE_VERSION))} found (saw: {', '.join(seen) or 'none'}); "
        'install it into this environment with: pip install "cmake>=3.26,<4"'
    )


def build_firmware(
    target: str | Target,
    iree_source_dir: str | os.PathLike | None,
    build_dir: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    host_bin_dir: str | os.PathLike | None = None,
    protocol_only: bool = False,
    linked_module: LinkedModule | None = None,
    log: LogFn = print,
    timeout_s: float = 1800,
) -> FirmwareBuild:
    """Configure and build the firmware for ``target`` and copy the ELF atomically to ``output_path``.

    ``protocol_only`` builds the TEST ONLY firmware (fake runtime, no IREE) used for protocol
    conformance tests; it never runs a model. ``build_dir`` should be one directory per target and
    variant; it is wiped when it was configured differently. An EmitC target (``target.is_emitc``)
    needs ``linked_module``, the compiled model it is built from; no other target takes one.
    """
    t = get_target(target) if isinstance(target, str) else target
    if not t.is_device:
        raise ValueError(f"target {t.name!r} is not a device target; it has no firmware")
    deadline = time.monotonic() + timeout_s

    iree: IreeSource | None = None
    host_bin: Path | None = None
    if not protocol_only:
        iree = check_iree_source(iree_source_dir)
        host_bin = Path(host_bin_dir) if host_bin_dir else Path(sys.executable).parent
        if not (host_bin / "iree-flatcc-cli").exists():
            raise FirmwareBuildError(
                f"host_bin_dir={host_bin} has no iree-flatcc-cli; pass the bin directory of the environment with "
                f"iree-base-compiler=={IREE_SOURCE_VERSION} / iree-base-runtime=={IREE_SOURCE_VERSION}"
            )
    _require_tool(f"{TOOLCHAIN_PREFIX}gcc")
    size_tool = _require_tool(f"{TOOLCHAIN_PREFIX}size")
    cmake = find_cmake()

    build = Path(build_dir)
    if not protocol_only and t.is_emitc != (linked_module is not None):
        raise ValueError(
            f"target {t.name!r}: "
            + (
                "an EmitC target's firmware is built from its compiled model: pass linked_module"
                if t.is_emitc
                else "only an EmitC target links a compiled model in"
            )
        )
    if linked_module is not None and not linked_module.c_module.is_file():
        raise FirmwareBuildError(f"the C module {linked_module.c_module} is missing (compile the model for {t.name} first)")
    cache_vars = cmake_cache_variables(
        t, iree_source=iree.path if iree else None, host_bin_dir=host_bin, linked_module=None if protocol_only else linked_module
    )
    _reset_if_reconfigured(build, cache_vars, log)
    build.mkdir(parents=True, exist_ok=True)

    configure: list[str | os.PathLike[str]] = [cmake, "-S", FIRMWARE_DIR, "-B", build, "-Wno-dev"]
    generator = _ninja()
    if generator:
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={generator}"]
    configure += [f"-D{k}={v}" for k, v in cache_vars.items()]
    run_tool(configure, what=f"cmake configure ({t.name})", timeout_s=_remaining(deadline), log=log)
    jobs = str(os.cpu_count() or 2)
    # ninja itself rather than `cmake --build`: the long-lived process is then our direct child, which
    # the kernel kills when this process dies (core/procs.py); under `cmake --build` ninja would be orphaned.
    build_command: list[str | os.PathLike[str]] = (
        [generator, "-C", build, "-j", jobs, "wand_firmware"]
        if generator
        else [cmake, "--build", build, "--target", "wand_firmware", "--parallel", jobs]
    )
    run_tool(build_command, what=f"firmware build ({t.name})", timeout_s=_remaining(deadline), log=log)
    elf = build / ELF_NAME
    if not elf.is_file():
        raise FirmwareBuildError(f"the build finished but {elf} is missing")

    linker_map = build / MAP_NAME
    if not linker_map.is_file():
        raise FirmwareBuildError(f"the build finished but its linker map {linker_map} is missing")
    out = Path(output_path)
    # The map first: a reader that finds the ELF finds its map.
    with atomic_path(out.with_name(out.name + firmware_map.MAP_SUFFIX)) as tmp:
        shutil.copyfile(linker_map, tmp)
    with atomic_path(out) as tmp:
        shutil.copyfile(elf, tmp)
    text, data_size, bss = _section_sizes(size_tool, out)
    versions = toolchain_versions()
    return FirmwareBuild(
        target=t.name,
        path=out,
        sha256=sha256_file(out),
        size_bytes=out.stat().st_size,
        text_bytes=text,
        data_bytes=data_size,
        bss_bytes=bss,
        protocol_only=protocol_only,
        iree_source_version=iree.version if iree else None,
        iree_source_commit=iree.commit if iree else None,
        gcc_version=versions["gcc"],
        picolibc_version=versions["picolibc"],
        cmake_version=versions["cmake"],
        size_breakdown=firmware_map.size_breakdown(firmware_map.parse_map(linker_map)),
    )


def cmake_cache_variables(
    target: Target,
    *,
    iree_source: Path | None = None,
    host_bin_dir: Path | None = None,
    linked_module: LinkedModule | None = None,
) -> dict[str, str]:
    """The ``-D`` values that configure ``firmware/`` for ``target``: all from the target registry and
    the installed IREE release, none spelled in CMake. Without ``iree_source``: the TEST ONLY
    protocol firmware. ``linked_module``: an EmitC target's C module and .vmfb hash."""
    board = target.device_board
    if target.gcc_march is None or target.gcc_mabi is None:
        raise ValueError(f"target {target.name!r} is the host reference; it has no firmware")
    cache_vars = {
        "CMAKE_TOOLCHAIN_FILE": str(FIRMWARE_DIR / "cmake" / "riscv32-elf-gcc.cmake"),
        "WAND_MARCH": target.gcc_march,
        "WAND_MABI": target.gcc_mabi,
        "WAND_VECTOR": "ON" if target.has_vector else "OFF",
        "WAND_PROTOCOL_ONLY": "OFF" if iree_source else "ON",
        "WAND_RAM_BASE": f"{board.ram_base:#x}",
        "WAND_RAM_SIZE": f"{board.ram_size:#x}",
        "WAND_CLINT_BASE": f"{board.clint_base:#x}",
        "WAND_MTIME_HZ": str(board.mtime_hz),
        "WAND_UART0_BASE": f"{board.uart0_base:#x}",
        "WAND_LOG_UART_BASE": f"{board.log_uart_base:#x}",
        "WAND_TEST_DEVICE_BASE": f"{board.test_device_base:#x}",
        # Code in its own memory (Springbok's instruction RAM), or in RAM with the data (size 0).
        "WAND_CODE_BASE": f"{board.code_base:#x}",
        "WAND_CODE_SIZE": f"{board.code_size:#x}",
        "WAND_UART_DRIVER": board.uart_driver,
        "WAND_LOG_CHANNEL": board.log_channel,
        "WAND_PLIC_BASE": f"{board.plic_base:#x}",
        "WAND_UART0_IRQ": str(board.uart0_irq),
        "WAND_RTC_BASE": f"{board.rtc_base:#x}",
        "WAND_RTC_IRQ": str(board.rtc_irq),
    }
    if iree_source is not None:
        cache_vars["IREE_SOURCE_DIR"] = str(iree_source)
        cache_vars["IREE_HOST_BIN_DIR"] = str(host_bin_dir)
        cache_vars["WAND_IREE_VERSION"] = IREE_SOURCE_VERSION
        cache_vars["WAND_EXECUTION_MODEL"] = target.execution_model
        cache_vars["WAND_MODULE_FORMAT"] = target.module_format
        if linked_module is not None:
            cache_vars["WAND_EMITC_MODULE"] = str(linked_module.c_module)
            cache_vars["WAND_EMITC_VMFB_SHA256"] = linked_module.vmfb_sha256
    return cache_vars


@contextlib.contextmanager
def build_log(path: str | os.PathLike, progress: LogFn) -> Iterator[LogFn]:
    """A log function that keeps every line of the build in ``path`` and tells ``progress`` only the
    milestones: CMake's configure result, about every tenth of Ninja's steps, and failures.

    A cold build prints ~45,000 compiler lines per target; they belong in a file next to the ELF, not
    in the orchestrator's event log.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = re.compile(r"^\[(\d+)/(\d+)\]")
    reported: dict[int, int] = {}  # Ninja's step total -> the last tenth reported for it
    with open(path, "w", encoding="utf-8") as file:

        def log(line: str) -> None:
            file.write(line + "\n")
            if match := step.match(line):
                done, total = int(match.group(1)), int(match.group(2))
                tenth = done * 10 // max(total, 1)
                if tenth > reported.get(total, -1):
                    reported[total] = tenth
                    progress(f"build {done}/{total} steps")
            elif line.startswith(("-- Configuring done", "FAILED:")) or " error: " in line:
                progress(line)

        yield log


# --- helpers -------------------------------------------------------------------------------------


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FirmwareBuildError("firmware build ran out of time (raise timeout_s)")
    return left


def _capture(args: list, timeout_s: float = 60) -> str:
    return run_tool(args, what=str(Path(str(args[0])).name), timeout_s=timeout_s).output


def _require_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise FirmwareBuildError(
            f"{name} not found on PATH; install Debian's gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf"
        )
    return found


def _ninja() -> str | None:
    beside = Path(sys.executable).with_name("ninja")
    return str(beside) if beside.exists() else shutil.which("ninja")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _cmake_version(cmake: str) -> str | None:
    try:
        first = _capture([cmake, "--version"], timeout_s=30).splitlines()[0]
    except (ToolError, OSError, IndexError):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", first)
    return match.group(1) if match else None


def _git_head(root: Path) -> str | None:
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        return _capture(["git", "-C", root, "rev-parse", "HEAD"], timeout_s=30).strip() or None
    except (ToolError, OSError):
        return None


def _picolibc_version(gcc: str) -> str:
    try:
        defines = _capture([gcc, "--specs=picolibc.specs", "-dM", "-E", "-include", "picolibc.h", "-x", "c", os.devnull])
    except (ToolError, OSError):
        return "unknown"
    match = re.search(r'#define __PICOLIBC_VERSION__ "([^"]+)"', defines)
    return match.group(1) if match else "unknown"


def _section_sizes(size_tool: str, elf: Path) -> tuple[int, int, int]:
    """text, data, bss from the Berkeley-format output of riscv64-unknown-elf-size."""
    lines = _capture([size_tool, elf]).splitlines()
    fields = lines[-1].split()
    return int(fields[0]), int(fields[1]), int(fields[2])


def _reset_if_reconfigured(build: Path, cache_vars: dict[str, str], log: LogFn) -> None:
    """CMake keeps the toolchain flags of the first configure: start afresh if any input changed."""
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return
    text = cache.read_text(errors="replace")
    for key, value in cache_vars.items():
        match = re.search(rf"^{re.escape(key)}:[A-Z]+=(.*)$", text, re.MULTILINE)
        if match is None or match.group(1) != value:
            log(f"firmware build dir {build} was configured with a different {key}; starting afresh")
            shutil.rmtree(build)
            return
