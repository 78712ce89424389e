"""The target registry: the one place that spells ISA, ABI, IREE CPU features, simulator CPU settings
and the board's memory map.

A mismatch between how the model is compiled, how the firmware is built and which CPU the simulator
emulates gives silently wrong numbers (zvl512b code on a VLEN=128 CPU runs and answers garbage), so
every other module asks a :class:`Target` instead of writing these strings itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

UART_NS16550 = "ns16550"
UART_PL011 = "pl011"
LOG_SEMIHOSTING_OR_UART = "semihosting_or_uart"  # semihosting under QEMU, the log UART under Renode
LOG_SIMPRINT = "simprint"  # Springbok's custom instruction: lines land in Renode's log


@dataclass(frozen=True)
class RenodePlatform:
    """A board whose Renode description the user supplies (e.g. Kenning's Springbok files): which
    files make it and how the pipeline drives it. The files themselves are never in this repository;
    the simulator resource points at the folder that holds them."""

    resc: str  # file name of the script; the other files are exposed as $<name lower-cased, dots as _>
    dependencies: tuple[str, ...]
    uart_pty: str  # the pty path the script creates (each run gets a rewritten copy, see renode/plan.py)
    post_start_commands: tuple[str, ...]  # e.g. releasing a CPU the script leaves halted
    script_enables_opcode_counting: bool  # enabling it a second time is an error in Renode 1.15.1


@dataclass(frozen=True)
class Board:
    """The memory map and peripherals the firmware is built for and the simulators provide.

    One definition: CMake gets it as cache variables (the generated linker memory map and
    ``firmware/src/board.h`` take it from there) and the wand board's Renode platform is rendered
    from it. ``QEMU_VIRT`` describes QEMU's ``virt`` machine as far as the firmware uses it; QEMU maps
    more RAM than ``ram_size`` (128 MiB by default) and the firmware uses the first ``ram_size`` bytes,
    which is all the Renode board maps. A board with ``code_base`` set keeps code in its own memory
    (instruction RAM) and everything else in RAM.
    """

    name: str
    qemu_machine: str  # the -M of qemu-system-riscv32; empty: QEMU does not emulate this board
    ram_base: int
    ram_size: int  # the firmware's stack sits at the top of it
    clint_base: int  # CLINT (mtime at +0xBFF8)
    mtime_hz: int  # the CLINT timer's frequency
    uart0_base: int  # the protocol UART
    log_uart_base: int  # NS16550A: the firmware's log when semihosting is absent (0: none)
    test_device_base: int  # SiFive test device: exit status (0: none)
    plic_base: int = 0  # PLIC: wakes the firmware's wfi (machine external interrupt, context 0 = hart 0 M-mode); 0: none
    uart0_irq: int = 0  # uart0's PLIC source (QEMU virt: VIRT_UART0_IRQ = 10); 0: no UART interrupt
    # Goldfish RTC, whose alarm runs on the host clock: bounds the in-frame wait where a sleep on a CLINT
    # deadline is not free (QEMU -icount sleep=off; firmware/README.md, "Waiting inside a frame"). The
    # Renode wand board has none: the firmware's boot-time probe finds a CLINT sleep free there and never
    # touches the RTC (it polls inside a frame in Renode). 0: none.
    rtc_base: int = 0
    rtc_irq: int = 0  # its PLIC source (QEMU virt: VIRT_RTC_IRQ = 11)
    uart_driver: str = UART_NS16550
    log_channel: str = LOG_SEMIHOSTING_OR_UART
    code_base: int = 0  # 0: code shares RAM with the data
    code_size: int = 0
    renode_platform: RenodePlatform | None = None  # None: the wand board rendered from this definition

    @property
    def runs_on_qemu(self) -> bool:
        return bool(self.qemu_machine)


QEMU_VIRT = Board(
    name="qemu_virt",
    qemu_machine="virt",
    ram_base=0x8000_0000,
    ram_size=16 << 20,
    clint_base=0x0200_0000,
    mtime_hz=10_000_000,
    uart0_base=0x1000_0000,
    log_uart_base=0x1000_1000,
    test_device_base=0x0010_0000,
    plic_base=0x0C00_0000,
    uart0_irq=10,
    rtc_base=0x0010_1000,
    rtc_irq=11,
)

# Antmicro's Springbok, the seed's simulated device, as its Renode files describe it (Kenning's
# kenning-bare-metal-iree-runtime sim/config/ and iree-rv32-springbok's SpringbokRiscV32.cs).
SPRINGBOK = Board(
    name="springbok",
    qemu_machine="",
    code_base=0x3200_0000,  # instruction RAM, 1 MiB; the .resc starts the CPU here
    code_size=1 << 20,
    ram_base=0x3400_0000,  # data RAM, 16 MiB
    ram_size=16 << 20,
    clint_base=0x0200_0000,
    mtime_hz=24_000_000,
    uart0_base=0x4000_0000,
    log_uart_base=0,
    test_device_base=0,
    uart_driver=UART_PL011,
    log_channel=LOG_SIMPRINT,
    renode_platform=RenodePlatform(
        resc="springbok.resc",
        dependencies=("springbok.repl", "SpringbokRiscV32.cs"),
        uart_pty="/tmp/uart",
        post_start_commands=("sysbus.vec_controlblock WriteDoubleWord 0xc 0",),
        script_enables_opcode_counting=True,
    ),
)


# IREE execution models (--iree-execution-model). async-internal: the full HAL with a local-sync
# device (command buffers, fences, queues). inline-dynamic: the small hal_inline + hal_loader modules and
# the embedded-ELF loader, no HAL device; on IREE 3.11 it needs the staged compile with the IR rewrites of
# compilation/inline_ir.py and the runtime's vm/buffer.c fix (firmware/cmake/iree_runtime.cmake).
ASYNC_INTERNAL = "async-internal"
INLINE_DYNAMIC = "inline-dynamic"
EXECUTION_MODELS = (ASYNC_INTERNAL, INLINE_DYNAMIC)

# How the firmware gets the model's VM module. bytecode: the .vmfb that MODEL uploads, run by IREE's
# bytecode interpreter. emitc: the same module compiled to C (iree-compile --output-format=vm-c,
# compilation/emitc.py) and linked into the firmware, no interpreter; MODEL still uploads the .vmfb, and
# the firmware accepts only the one compiled alongside (its SHA-256 is built in), so the protocol and the
# evaluation stay as they are. The firmware is then built from one compiled model (device/assets.py).
BYTECODE = "bytecode"
EMITC = "emitc"
MODULE_FORMATS = (BYTECODE, EMITC)


@dataclass(frozen=True)
class Target:
    """Everything that must agree for one device variant."""

    name: str
    description: str
    # IREE llvm-cpu code generation for the model's dispatches.
    llvm_triple: str
    llvm_cpu: str
    llvm_cpu_features: str
    llvm_abi: str | None
    # Bare-metal firmware (None for the host reference target).
    gcc_march: str | None = None
    gcc_mabi: str | None = None
    # Simulated CPU: vector register length in bits (0 = no vector unit).
    vlen: int = 0
    elen: int = 0
    # The board the firmware runs on (None for the host reference target).
    board: Board | None = None
    # True: compile with the project's optimisation flags (compilation/iree_tools.OPTIMISATION_FLAGS);
    # False: with IREE's defaults, the baseline those flags are measured against.
    iree_optimise: bool = True
    # How the compiled module drives the runtime (one of EXECUTION_MODELS); the firmware links the
    # matching runtime (the CMake cache variable WAND_EXECUTION_MODEL).
    execution_model: str = ASYNC_INTERNAL
    # How the firmware gets the VM module (one of MODULE_FORMATS; the CMake cache variable
    # WAND_MODULE_FORMAT).
    module_format: str = BYTECODE

    def __post_init__(self) -> None:
        if self.execution_model not in EXECUTION_MODELS:
            raise ValueError(f"target {self.name!r}: execution_model {self.execution_model!r} is not one of {EXECUTION_MODELS}")
        if self.module_format not in MODULE_FORMATS:
            raise ValueError(f"target {self.name!r}: module_format {self.module_format!r} is not one of {MODULE_FORMATS}")
        if self.module_format == EMITC and not (self.is_device and self.is_inline):
            # Measured on IREE 3.11 (firmware/README.md): the full HAL's C module passes hal.fence.join's
            # variadic fences at an 8-byte-aligned offset, where the rv32 runtime's argument struct has
            # them at a 4-byte-aligned one ("ref type mismatch" at the first invoke).
            raise ValueError(
                f"target {self.name!r}: module_format {EMITC!r} needs a device target with execution_model "
                f"{INLINE_DYNAMIC!r} (IREE 3.11's C module of the full HAL misplaces variadic arguments on rv32)"
            )

    @property
    def is_inline(self) -> bool:
        """True when the module uses IREE's inline HAL (hal_inline + hal_loader) instead of the full HAL."""
        return self.execution_model == INLINE_DYNAMIC

    def identity(self) -> dict:
        """This target's fields for fingerprints: ``asdict``, without ``module_format`` while it is the
        default (bytecode), so the entries of the targets made before the field existed stay valid."""
        fields = asdict(self)
        if self.module_format == BYTECODE:
            del fields["module_format"]
        return fields

    @property
    def is_emitc(self) -> bool:
        """True when the firmware links the VM module compiled to C instead of interpreting the .vmfb."""
        return self.module_format == EMITC

    @property
    def is_device(self) -> bool:
        """True for targets that run as firmware on a simulated microcontroller."""
        return self.gcc_march is not None

    @property
    def has_vector(self) -> bool:
        return self.vlen > 0

    @property
    def device_board(self) -> Board:
        """The board of a device target; raises :class:`ValueError` for the host reference."""
        if self.board is None:
            raise ValueError(f"target {self.name!r} is the host reference; it has no board")
        return self.board

    def iree_compile_flags(self) -> list[str]:
        """iree-compile flags that select this target's code generation."""
        flags = [
            "--iree-hal-target-device=local",
            "--iree-hal-local-target-device-backends=llvm-cpu",
            f"--iree-llvmcpu-target-triple={self.llvm_triple}",
            f"--iree-llvmcpu-target-cpu={self.llvm_cpu}",
        ]
        if self.llvm_cpu_features:
            flags.append(f"--iree-llvmcpu-target-cpu-features={self.llvm_cpu_features}")
        if self.llvm_abi:
            flags.append(f"--iree-llvmcpu-target-abi={self.llvm_abi}")
        if self.is_device:
            # Bare metal has no dynamic loader: dispatches are embedded ELFs the runtime loads itself.
            flags.append("--iree-llvmcpu-link-embedded=true")
        if self.execution_model != ASYNC_INTERNAL:  # the default stays off the command line
            flags.append(f"--iree-execution-model={self.execution_model}")
        return flags

    def qemu_cpu(self) -> str:
        """The ``-cpu`` argument for qemu-system-riscv32."""
        self._require_device("QEMU")
        self.require_qemu()
        if not self.has_vector:
            return "rv32,v=false"
        return f"rv32,v=true,vext_spec=v1.0,vlen={self.vlen},elen={self.elen}"

    def renode_cpu_type(self) -> str:
        """The ``cpuType`` of Renode's ``CPU.RiscV32`` (Renode wants zicsr spelled out)."""
        self._require_device("Renode")
        assert self.gcc_march is not None  # is_device means gcc_march is set
        base = self.gcc_march.split("_")[0]  # e.g. rv32imf
        if self.has_vector:
            base += "v"
        return f"{base}_zicsr_zifencei"

    def require_qemu(self) -> None:
        """Raises :class:`ValueError` saying so when QEMU does not emulate this target's board."""
        board = self.device_board
        if not board.runs_on_qemu:
            raise ValueError(
                f"target {self.name!r} runs on the {board.name} board, which QEMU does not emulate; "
                "evaluate it in Renode (the simulator resource's backend: renode)"
            )

    def _require_device(self, simulator: str) -> None:
        if not self.is_device:
            raise ValueError(f"target {self.name!r} is the host reference; it has no {simulator} CPU")


_RV32_TRIPLE = "riscv32-pc-linux-elf"


def _rv32imf_zve32f(
    vlen: int,
    *,
    name: str = "",
    description: str = "",
    iree_optimise: bool = True,
    board: Board = QEMU_VIRT,
    execution_model: str = ASYNC_INTERNAL,
    module_format: str = BYTECODE,
) -> Target:
    """RV32IMF + Zve32f with a VLEN of ``vlen`` bits: ``+zvl<vlen>b`` in the compiled code and the
    firmware, the same VLEN in both simulators (code built for a longer VLEN gives wrong outputs on a
    shorter one, so each VLEN is its own target)."""
    return Target(
        name=name or f"rv32imf_zve32f_vlen{vlen}",
        description=description or f"RV32IMF + Zve32f vector unit, VLEN {vlen}",
        llvm_triple=_RV32_TRIPLE,
        llvm_cpu="generic-rv32",
        llvm_cpu_features=f"+m,+f,+zvl{vlen}b,+zve32x,+zve32f",
        llvm_abi="ilp32f",
        gcc_march=f"rv32imf_zicsr_zve32f_zvl{vlen}b",
        gcc_mabi="ilp32f",
        vlen=vlen,
        elen=32,
        board=board,
        iree_optimise=iree_optimise,
        execution_model=execution_model,
        module_format=module_format,
    )


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="host",
            description="x86-64 host, IREE local-sync: the parity reference",
            llvm_triple="x86_64-unknown-linux-gnu",
            llvm_cpu="generic",
            llvm_cpu_features="",
            llvm_abi=None,
        ),
        Target(
            name="rv32imf",
            description="RV32IMF scalar microcontroller",
            llvm_triple=_RV32_TRIPLE,
            llvm_cpu="generic-rv32",
            llvm_cpu_features="+m,+f",
            llvm_abi="ilp32f",
            gcc_march="rv32imf_zicsr",
            gcc_mabi="ilp32f",
            board=QEMU_VIRT,
        ),
        _rv32imf_zve32f(128),
        _rv32imf_zve32f(256),
        _rv32imf_zve32f(512, description="RV32IMF + Zve32f vector unit, VLEN 512 (Springbok-like)"),
        _rv32imf_zve32f(1024),
        _rv32imf_zve32f(
            512,
            name="rv32imf_zve32f_vlen512_iree_defaults",
            description="RV32IMF + Zve32f, VLEN 512, compiled with IREE's default flags (the baseline of the project's flags)",
            iree_optimise=False,
        ),
        _rv32imf_zve32f(
            512,
            name="rv32imf_zve32f_vlen512_springbok",
            description="RV32IMF + Zve32f, VLEN 512 on Antmicro's Springbok in Renode (the seed's platform files)",
            board=SPRINGBOK,
        ),
        _rv32imf_zve32f(
            512,
            name="rv32imf_zve32f_vlen512_inline",
            description="RV32IMF + Zve32f, VLEN 512, IREE's inline execution model (hal_inline + hal_loader, no HAL device)",
            execution_model=INLINE_DYNAMIC,
        ),
        _rv32imf_zve32f(
            512,
            name="rv32imf_zve32f_vlen512_inline_emitc",
            description=(
                "RV32IMF + Zve32f, VLEN 512, inline execution model, the VM module compiled to C and linked in "
                "(no bytecode interpreter)"
            ),
            execution_model=INLINE_DYNAMIC,
            module_format=EMITC,
        ),
    )
}

DEVICE_TARGETS: list[str] = [name for name, t in TARGETS.items() if t.is_device]
HOST_TARGET = "host"  # the x86-64 parity reference, the one target that is not a device


def unrunnable_targets(backend: str) -> list[str]:
    """The device targets simulator ``backend`` ("qemu" or "renode") cannot evaluate: QEMU does not
    emulate every board (Springbok)."""
    return [t for t in DEVICE_TARGETS if backend == "qemu" and not get_target(t).device_board.runs_on_qemu]


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        known = ", ".join(TARGETS)
        raise KeyError(f"unknown target {name!r}; known targets: {known}") from None
