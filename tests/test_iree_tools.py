import pytest

from wand_assets.compilation import iree_tools
from wand_assets.core.procs import ToolError
from wand_assets.core.targets import get_target


def test_compiler_is_the_pinned_version():
    assert iree_tools.compiler_version() == iree_tools.IREE_VERSION


def test_compiler_failure_carries_the_compilers_own_diagnostics(tmp_path):
    broken = tmp_path / "broken.mlir"
    broken.write_text("func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> { return %y : tensor<4xf32> }\n")
    lines: list[str] = []
    with pytest.raises(ToolError) as err:
        iree_tools.compile_vmfb(broken, get_target("rv32imf"), tmp_path / "out.vmfb", log=lines.append)
    assert "use of undeclared SSA value" in str(err.value)
    assert any("undeclared" in line for line in lines)  # streamed as it happened, too
    assert not (tmp_path / "out.vmfb").exists()


def test_every_target_compiles_with_the_measured_optimisation_flags():
    for name in ("host", "rv32imf", "rv32imf_zve32f_vlen512"):
        flags = iree_tools.compile_flags(get_target(name))
        assert "--iree-global-opt-experimental-disable-conv-generalization" in flags
        assert "--iree-input-type=stablehlo_xla" in flags
