"""The inline-dynamic work-arounds (compilation/inline_ir.py) on real output of the pinned iree-compile.

The program is a small StableHLO function with a 1 KB weights constant: it reproduces both IREE 3.11
compiler bugs the rewrites are for (the dropped weights store and the initializer-inlining failure).
"""

import random
from pathlib import Path

import pytest

from wand_assets.compilation import iree_tools
from wand_assets.compilation.inline_ir import (
    CONSTANT_FUNC_PREFIX,
    LOADER_FUNC_PREFIX,
    NEVER_INLINE,
    InlineIRError,
    outline_executable_loads,
    outline_initializer_constants,
)
from wand_assets.core.procs import ToolError, run_tool
from wand_assets.core.targets import INLINE_DYNAMIC, get_target

INLINE = get_target("rv32imf_zve32f_vlen512_inline")
WEIGHTS_GLOBAL = "@__constant_tensor_256xf32"


def _program(path: Path) -> Path:
    rng = random.Random(7)
    values = ", ".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(256))
    path.write_text(
        "func.func @main(%x: tensor<256xf32>) -> tensor<256xf32> {\n"
        f"  %w = stablehlo.constant dense<[{values}]> : tensor<256xf32>\n"
        "  %y = stablehlo.multiply %x, %w : tensor<256xf32>\n"
        "  %z = stablehlo.add %y, %w : tensor<256xf32>\n"
        "  return %z : tensor<256xf32>\n"
        "}\n"
    )
    return path


def _compile(source: Path, out: Path, *stage_flags: str) -> Path:
    args = [iree_tools.tool_path("iree-compile"), *iree_tools.compile_flags(INLINE), *stage_flags, str(source), "-o", str(out)]
    run_tool(args, what="iree-compile", timeout_s=300, log=lambda _m: None)
    return out


@pytest.fixture(scope="module")
def stream_ir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("inline_ir")
    return _compile(_program(tmp / "small.mlir"), tmp / "small.stream.mlir", "--compile-to=stream")


def test_the_inline_target_is_vlen512_with_the_inline_execution_model():
    plain = get_target("rv32imf_zve32f_vlen512")
    assert INLINE.execution_model == INLINE_DYNAMIC and INLINE.is_inline and not plain.is_inline
    assert INLINE.iree_compile_flags() == [*plain.iree_compile_flags(), "--iree-execution-model=inline-dynamic"]
    assert (INLINE.gcc_march, INLINE.vlen, INLINE.board) == (plain.gcc_march, plain.vlen, plain.board)


def test_an_unknown_execution_model_is_refused():
    from dataclasses import replace

    with pytest.raises(ValueError, match="execution_model 'inline-static' is not one of"):
        replace(INLINE, execution_model="inline-static")


def test_without_the_rewrites_3_11_drops_the_weights_and_fails_to_compile(stream_ir, tmp_path):
    """The two bugs the rewrites work around; when an IREE upgrade fixes them, this fails and the
    work-arounds can go."""
    hal = _compile(stream_ir, tmp_path / "hal.mlir", "--compile-from=stream", "--compile-to=hal")
    assert f"util.global.store %0, {WEIGHTS_GLOBAL}" not in hal.read_text()  # the weights' store is gone
    with pytest.raises(ToolError, match="failed to inline into combined initializer"):
        _compile(hal, tmp_path / "out.vmfb", "--compile-from=hal")


def test_the_rewrites_keep_the_weights_and_the_module_compiles(stream_ir, tmp_path):
    rewritten, count = outline_initializer_constants(stream_ir.read_text())
    assert count == 1
    never_inlined = f"util.func private @{CONSTANT_FUNC_PREFIX}0() -> !util.buffer {NEVER_INLINE} {{"
    assert never_inlined in rewritten and NEVER_INLINE == "attributes {inlining_policy = #util.inline.never}"
    (tmp_path / "stream.mlir").write_text(rewritten)
    hal = _compile(tmp_path / "stream.mlir", tmp_path / "hal.mlir", "--compile-from=stream", "--compile-to=hal").read_text()
    assert f"util.global.store %0, {WEIGHTS_GLOBAL}" in hal  # kept
    hal, count = outline_executable_loads(hal)
    assert count == 1 and f"util.call @{LOADER_FUNC_PREFIX}0() : () -> ()" in hal
    (tmp_path / "hal.mlir").write_text(hal)
    vmfb = _compile(tmp_path / "hal.mlir", tmp_path / "out.vmfb", "--compile-from=hal")
    assert b"IREE" in vmfb.read_bytes()[:16]  # a (size-prefixed) flatbuffer with IREE's file identifier


def test_compile_vmfb_compiles_an_inline_target_in_three_stages(tmp_path):
    lines: list[str] = []
    commands = iree_tools.compile_vmfb(_program(tmp_path / "small.mlir"), INLINE, tmp_path / "model.vmfb", log=lines.append)
    stage_flags = [[a for a in c if a.startswith(("--compile-to", "--compile-from"))] for c in commands]
    assert stage_flags == [["--compile-to=stream"], ["--compile-from=stream", "--compile-to=hal"], ["--compile-from=hal"]]
    assert all("--iree-execution-model=inline-dynamic" in c for c in commands)
    assert (tmp_path / "model.vmfb").stat().st_size > 0
    assert f"@{LOADER_FUNC_PREFIX}0" in (tmp_path / "model.hal.mlir").read_text()
    assert any("outline_initializer_constants rewrote 1" in line for line in lines)


def test_a_default_target_compiles_in_one_command(tmp_path):
    commands = iree_tools.compile_vmfb(
        _program(tmp_path / "small.mlir"), get_target("rv32imf_zve32f_vlen512"), tmp_path / "m.vmfb", log=lambda _m: None
    )
    assert len(commands) == 1 and not any(a.startswith("--compile-") or "execution-model" in a for a in commands[0])


def test_rewrites_refuse_ir_they_were_not_written_for(stream_ir):
    text = stream_ir.read_text()
    once, _ = outline_initializer_constants(text)
    with pytest.raises(InlineIRError, match=r"rewritten before"):
        outline_initializer_constants(once)
    with pytest.raises(InlineIRError, match=r"no util.initializer contains hal_loader.executable.load"):
        outline_executable_loads(text)  # stream-stage IR has no loader yet
    with pytest.raises(InlineIRError, match=r"no top-level util.initializer"):
        outline_initializer_constants("module {\n  util.func public @main() {\n    util.return\n  }\n}\n")
    cut = text[: text.index("#util.composite<") + 40]  # the weights' value cut off mid-way
    with pytest.raises(InlineIRError, match=r"no closing|runs to the end|runs past"):
        outline_initializer_constants(cut)
    no_constant = text.replace("util.buffer.constant", "util.buffer.constant_renamed")
    with pytest.raises(InlineIRError, match=r"no util.buffer.constant in any util.initializer"):
        outline_initializer_constants(no_constant)
