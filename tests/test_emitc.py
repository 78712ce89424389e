"""The pieces of the EmitC variant that need no simulator: the identifier fix for the generated C,
the target rule, the firmware's SHA-256 against hashlib, and the firmware build's inputs."""

import hashlib
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from wand_assets.compilation.emitc import EmitCError, sanitize_identifiers
from wand_assets.core.targets import EMITC, INLINE_DYNAMIC, Target, get_target
from wand_assets.device import firmware_build
from wand_assets.device.firmware_build import FIRMWARE_DIR, LinkedModule, build_firmware, cmake_cache_variables

EMITC_TARGET = "rv32imf_zve32f_vlen512_inline_emitc"

GENERATED = """#include "iree/vm/api.h"
iree_status_t module_create(iree_vm_instance_t* v1, iree_allocator_t v2, iree_vm_module_t** v3);
#if defined(EMITC_IMPLEMENTATION)
static iree_status_t module_global$vars.__sm_node68__model._layers.2._kernel$get(iree_vm_stack_t* v1);
static const iree_vm_native_export_descriptor_t module_exports_[] = {
  {{"global$vars.__sm_node68__model._layers.2._kernel$get", 52}, {"0v_r", 4}, 0, NULL},};
typedef struct { int x; } module_global$vars.a$get_result_t;
  v5 = v4.field; v6 = 1.5f; v7 = 'a';
#endif
"""


def test_generated_identifiers_become_c_and_the_export_names_stay():
    text, renamed = sanitize_identifiers(GENERATED)
    assert renamed == 2
    assert "static iree_status_t module_global_vars___sm_node68__model__layers_2__kernel_get(" in text
    assert "module_global_vars_a_get_result_t;" in text
    # The runtime resolves exports by these strings: unchanged. Member access and literals too.
    assert '{"global$vars.__sm_node68__model._layers.2._kernel$get", 52}' in text
    assert "v5 = v4.field; v6 = 1.5f; v7 = 'a';" in text


def test_identifier_fix_refuses_what_it_was_not_written_for():
    with pytest.raises(EmitCError, match="module_create"):
        sanitize_identifiers("int main(void) { return 0; }")
    clash = GENERATED.replace("#endif", "int module_global_vars_a_get_result_t;\n#endif")
    with pytest.raises(EmitCError, match="clash"):
        sanitize_identifiers(clash)
    twins = GENERATED.replace("#endif", "int module_a.b; int module_a$b;\n#endif")
    with pytest.raises(EmitCError, match="both become"):
        sanitize_identifiers(twins)


def test_the_emitc_target_is_the_inline_variant_with_the_module_as_c():
    emitc, inline = get_target(EMITC_TARGET), get_target("rv32imf_zve32f_vlen512_inline")
    assert emitc.is_emitc and emitc.module_format == EMITC and emitc.execution_model == INLINE_DYNAMIC
    assert not inline.is_emitc
    # The .vmfb is compiled exactly as the inline variant's; only the firmware differs.
    assert emitc.iree_compile_flags() == inline.iree_compile_flags()
    assert (emitc.gcc_march, emitc.qemu_cpu()) == (inline.gcc_march, inline.qemu_cpu())
    # Entries made before module_format existed keep their fingerprints.
    assert "module_format" not in inline.identity() and emitc.identity()["module_format"] == EMITC


def test_emitc_with_the_full_hal_is_refused():
    with pytest.raises(ValueError, match="inline-dynamic"):
        replace(get_target("rv32imf_zve32f_vlen512"), name="x", module_format=EMITC)
    with pytest.raises(ValueError, match="module_format"):
        replace(get_target("rv32imf_zve32f_vlen512"), name="x", module_format="wasm")


def emitc_variant_of(name: str) -> Target:
    return replace(get_target(name), name=f"{name}_emitc_probe", module_format=EMITC)


def test_emitc_firmware_is_configured_from_its_compiled_model(tmp_path):
    target = emitc_variant_of("rv32imf_zve32f_vlen512_inline")
    linked = LinkedModule(c_module=tmp_path / "model_emitc.h", vmfb_sha256="ab" * 32)
    cache_vars = cmake_cache_variables(target, iree_source=tmp_path, host_bin_dir=tmp_path, linked_module=linked)
    assert cache_vars["WAND_MODULE_FORMAT"] == "emitc"
    assert cache_vars["WAND_EMITC_MODULE"] == str(linked.c_module) and cache_vars["WAND_EMITC_VMFB_SHA256"] == "ab" * 32
    plain = cmake_cache_variables(get_target("rv32imf_zve32f_vlen512_inline"), iree_source=tmp_path, host_bin_dir=tmp_path)
    assert plain["WAND_MODULE_FORMAT"] == "bytecode" and "WAND_EMITC_MODULE" not in plain


def test_emitc_firmware_build_needs_the_compiled_model_and_no_other_takes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(firmware_build, "check_iree_source", lambda path: None)  # fail before CMake either way
    (tmp_path / "iree-flatcc-cli").touch()
    args = {"iree_source_dir": tmp_path, "build_dir": tmp_path / "b", "output_path": tmp_path / "o.elf", "host_bin_dir": tmp_path}
    with pytest.raises(ValueError, match="pass linked_module"):
        build_firmware(emitc_variant_of("rv32imf_zve32f_vlen512_inline"), **args)
    with pytest.raises(ValueError, match="only an EmitC target"):
        build_firmware("rv32imf_zve32f_vlen512", linked_module=LinkedModule(tmp_path / "m.h", "00" * 32), **args)


@pytest.fixture(scope="module")
def sha256_tool(tmp_path_factory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("needs a host C compiler (gcc or clang) for the firmware's SHA-256")
    out = tmp_path_factory.mktemp("sha") / "sha256"
    main = out.with_suffix(".c")
    main.write_text(
        '#include <stdio.h>\n#include <stdlib.h>\n#include "sha256.h"\n'
        "int main(void) { static uint8_t buf[1 << 20]; size_t n = fread(buf, 1, sizeof(buf), stdin);\n"
        "  uint8_t d[WAND_SHA256_BYTES]; wand_sha256(buf, n, d);\n"
        '  for (int i = 0; i < WAND_SHA256_BYTES; ++i) printf("%02x", d[i]);\n  return 0; }\n'
    )
    flags = ["-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined", "-fno-sanitize-recover=all"]
    proc = subprocess.run(
        [compiler, *flags, f"-I{FIRMWARE_DIR / 'src'}", main, FIRMWARE_DIR / "src" / "sha256.c", "-o", out],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"firmware/src/sha256.c does not compile warning-free on the host:\n{proc.stderr}"
    return out


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 33_352])
def test_firmware_sha256_matches_hashlib(sha256_tool, size):
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    proc = subprocess.run([sha256_tool], input=data, capture_output=True, timeout=60, check=True)
    assert proc.stdout.decode() == hashlib.sha256(data).hexdigest()
