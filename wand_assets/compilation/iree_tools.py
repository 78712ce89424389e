"""Keras → SavedModel → StableHLO (iree-import-tf) → .vmfb (iree-compile), with the pinned IREE 3.11.

The TFLite importer does not work with TF 2.21, so the model is wrapped in a ``tf.Module`` with a
fixed ``[1,128,3,1]`` float32 signature and imported from a SavedModel instead.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from wand_assets.compilation import emitc, inline_ir
from wand_assets.core.procs import run_tool
from wand_assets.core.targets import Target
from wand_assets.training.model import INPUT_SHAPE

IREE_DISTRIBUTIONS = ("iree-base-compiler", "iree-base-runtime")  # pinned, to one release, in pyproject.toml


def installed_iree_release() -> str:
    """The IREE release (X.Y.Z) of the installed compiler and runtime wheels, which must agree.

    pyproject.toml is the one place that names it; the firmware's runtime source must be the same
    release, or the device cannot load what the compiler writes.
    """
    versions = {}
    for name in IREE_DISTRIBUTIONS:
        try:
            full = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(
                f"{name} is not installed in {sys.executable}; install the pinned packages (scripts/setup.sh)"
            ) from None
        match = re.match(r"\d+\.\d+\.\d+", full)
        versions[name] = match.group(0) if match else full
    if len(set(versions.values())) != 1:
        found = ", ".join(f"{k}=={v}" for k, v in versions.items())
        raise RuntimeError(f"the IREE compiler and runtime must be one release, found {found}; reinstall (scripts/setup.sh)")
    return versions[IREE_DISTRIBUTIONS[0]]


IREE_VERSION = installed_iree_release()  # named once, by the pins in pyproject.toml
EXPORTED_FUNCTION = "main"  # becomes "module.main" in the .vmfb, the seed's entry_func

# Measured on IREE 3.11 (PLATFORM_FACTS): keeps convolutions as convolutions so the CPU backend can
# vectorise them (conv1 334 k → 54 k instructions), and unrolls the small remaining loops. Outputs
# stay within 5e-10 of the host. "experimental": re-check on every IREE upgrade.
OPTIMISATION_FLAGS: tuple[str, ...] = (
    "--iree-global-opt-experimental-disable-conv-generalization",
    "--iree-llvmcpu-loop-unrolling=true",
)
COMMON_FLAGS: tuple[str, ...] = (
    "--iree-input-type=stablehlo_xla",
    "--iree-llvmcpu-debug-symbols=false",
    "--iree-vm-bytecode-module-strip-source-map=true",
    "--iree-vm-emit-polyglot-zip=false",
)


def tool_path(name: str) -> str:
    """An IREE tool from the running interpreter's environment (where the pinned wheels put it)."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"{name} not found next to {sys.executable} or on PATH; install the pinned "
            f"iree-base-compiler=={IREE_VERSION} and iree-tools-tf into this environment"
        )
    return found


def compiler_version() -> str:
    from importlib.metadata import version

    return version("iree-base-compiler")


def export_saved_model(keras_model_path: Path, out_dir: Path) -> None:
    """SavedModel whose ``main`` takes one float32 [1,128,3,1] window and returns [1,4] scores."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(keras_model_path)

    class Exported(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec(list(INPUT_SHAPE), tf.float32)])
        def main(self, x):
            return self.model(x, training=False)

    tf.saved_model.save(Exported(model), str(out_dir))


def import_to_stablehlo(saved_model_dir: Path, out_mlir: Path, *, log: Callable[[str], None], timeout_s: float = 600) -> None:
    run_tool(
        [
            tool_path("iree-import-tf"),
            "--tf-import-type=savedmodel_v2",
            f"--tf-savedmodel-exported-names={EXPORTED_FUNCTION}",
            saved_model_dir,
            "-o",
            out_mlir,
        ],
        what="iree-import-tf",
        timeout_s=timeout_s,
        log=log,
    )


def compile_flags(target: Target, optimise: bool = True) -> list[str]:
    return [*COMMON_FLAGS, *target.iree_compile_flags(), *(OPTIMISATION_FLAGS if optimise and target.iree_optimise else ())]


def compile_vmfb(
    mlir: Path, target: Target, out_vmfb: Path, *, optimise: bool = True, log: Callable[[str], None], timeout_s: float = 900
) -> list[list[str]]:
    """Compile ``mlir`` for ``target``; returns the exact commands used (one, or three for an inline
    target, four for an EmitC one). Diagnostics go to ``log``.

    For an EmitC target (``target.is_emitc``) the same module is also written as C next to the .vmfb
    (:data:`emitc.C_MODULE_NAME`): the last stage once more with ``--output-format=vm-c``, its
    identifiers made C by :func:`emitc.sanitize_identifiers`."""
    flags = compile_flags(target, optimise)
    if target.is_inline:
        return _compile_inline_staged(mlir, target, flags, out_vmfb, log=log, timeout_s=timeout_s)
    args = [tool_path("iree-compile"), *flags, str(mlir), "-o", str(out_vmfb)]
    run_tool(args, what=f"iree-compile for target {target.name}", timeout_s=timeout_s, log=log)
    return [args]


def _compile_inline_staged(
    mlir: Path, target: Target, flags: list[str], out_vmfb: Path, *, log: Callable[[str], None], timeout_s: float
) -> list[list[str]]:
    """inline-dynamic on IREE 3.11: input → stream, rewrite, stream → hal, rewrite, hal → vmfb
    (compilation/inline_ir.py says why). The rewritten stage IRs are kept next to the .vmfb
    (``<name>.stream.mlir``, ``<name>.hal.mlir``) for inspection."""
    compiler = tool_path("iree-compile")
    stream_ir = out_vmfb.with_suffix(".stream.mlir")
    hal_ir = out_vmfb.with_suffix(".hal.mlir")
    stages = [
        (["--compile-to=stream"], mlir, stream_ir, inline_ir.outline_initializer_constants),
        (["--compile-from=stream", "--compile-to=hal"], stream_ir, hal_ir, inline_ir.outline_executable_loads),
        (["--compile-from=hal"], hal_ir, out_vmfb, None),
    ]
    if target.is_emitc:  # the C module from the same hal-stage IR as the .vmfb
        stages.append(
            (["--compile-from=hal", "--output-format=vm-c"], hal_ir, out_vmfb.with_name(emitc.C_MODULE_NAME), _c_module)
        )
    commands = []
    for stage_flags, source, output, rewrite in stages:
        args = [compiler, *flags, *stage_flags, str(source), "-o", str(output)]
        run_tool(args, what=f"iree-compile {' '.join(stage_flags)} for target {target.name}", timeout_s=timeout_s, log=log)
        commands.append(args)
        if rewrite is not None:
            text, count = rewrite(output.read_text())
            output.write_text(text)
            log(f"{output.name}: {rewrite.__name__} rewrote {count} op(s)")
    return commands


def _c_module(text: str) -> tuple[str, int]:
    return emitc.sanitize_identifiers(text)
