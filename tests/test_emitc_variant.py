"""The VM module compiled to C as a target variant, through Dagster: rv32imf_zve32f_vlen512_inline_emitc
compiled once more to C (EmitC), its firmware built from that compiled model (the C module linked in, no
bytecode interpreter), evaluated in QEMU over the same protocol (MODEL still uploads the .vmfb, which
the firmware checks by SHA-256) behind the same blocking parity gate; and a wrong .vmfb refused.

The variant is materialized into a copy of the suite's pipeline, so the suite's own targets stay as
they are; its outputs are compared with the bytecode firmware's (rv32imf_zve32f_vlen512, same kernels).
"""

import hashlib
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import DEVICE_WINDOWS, Materialized, with_variant
from test_device_pipeline import check_evaluations, summary

from wand_assets.compilation.emitc import C_MODULE_NAME
from wand_assets.core.handoff import latest_entry
from wand_assets.core.targets import get_target
from wand_assets.data.dataset import CLASSES
from wand_assets.device import firmware_build, qemu
from wand_assets.device.protocol import DeviceClient, RequestFailed

pytestmark = pytest.mark.slow

EMITC = "rv32imf_zve32f_vlen512_inline_emitc"
BYTECODE = "rv32imf_zve32f_vlen512"  # the same kernels, the .vmfb interpreted, in the suite's pipeline


@pytest.fixture(scope="module")
def emitc_pipeline(device_pipeline_copy, dataset_dir) -> Materialized:
    return with_variant(device_pipeline_copy, dataset_dir, EMITC)


def test_emitc_variant_gives_the_bytecode_variants_outputs_bit_for_bit(emitc_pipeline):
    assert summary(emitc_pipeline.instance, EMITC)["windows"] == DEVICE_WINDOWS
    (gate,) = check_evaluations(emitc_pipeline.results, "device_matches_host", partition=EMITC)
    assert gate.passed, gate.metadata
    columns = [f"device_{c}" for c in CLASSES]
    emitc, bytecode = (
        pd.read_parquet(latest_entry(emitc_pipeline.instance, "device_evaluation", target) / "results.parquet")
        for target in (EMITC, BYTECODE)
    )
    assert len(emitc) == len(bytecode) == DEVICE_WINDOWS
    assert emitc[columns].to_numpy(np.float32).tobytes() == bytecode[columns].to_numpy(np.float32).tobytes()


def test_emitc_firmware_links_the_compiled_models_c_module_and_no_interpreter(emitc_pipeline):
    compiled = latest_entry(emitc_pipeline.instance, "compiled_model", EMITC)
    commands = json.loads((compiled / "compile.json").read_text())["commands"]
    assert len(commands) == 4 and "--output-format=vm-c" in commands[-1]
    assert (compiled / C_MODULE_NAME).is_file()
    firmware = latest_entry(emitc_pipeline.instance, "firmware", EMITC)
    build_log = (firmware / firmware_build.BUILD_LOG_NAME).read_text()
    vmfb_sha256 = hashlib.sha256((compiled / "model.vmfb").read_bytes()).hexdigest()
    # Built from this compiled model: its C module, and its .vmfb's hash for the MODEL check.
    expected = f"wand: EmitC module {compiled / C_MODULE_NAME} linked in; MODEL accepts only the .vmfb with SHA-256 {vmfb_sha256}"
    assert expected in build_log
    symbols = subprocess.run(
        [f"{firmware_build.TOOLCHAIN_PREFIX}nm", str(firmware / firmware_build.ELF_NAME)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert " module_create" in symbols and "wand_sha256" in symbols
    assert "iree_vm_bytecode_module_create" not in symbols and "iree_vm_bytecode_dispatch" not in symbols


def test_emitc_variant_runs_fewer_instructions_in_less_text_than_the_bytecode_firmware(emitc_pipeline):
    emitc, bytecode = (summary(emitc_pipeline.instance, t) for t in (EMITC, BYTECODE))
    assert 0 < emitc["instructions_per_inference_median"] < bytecode["instructions_per_inference_median"]
    text = {
        t: json.loads((latest_entry(emitc_pipeline.instance, "firmware", t) / "build.json").read_text())["text_bytes"]
        for t in (EMITC, BYTECODE)
    }
    assert text[EMITC] < text[BYTECODE]  # although it holds the model, which the others receive over the UART
    assert 0 < emitc["final_stats"]["heap_bytes_peak"] < bytecode["final_stats"]["heap_bytes_peak"]


def test_emitc_firmware_refuses_any_vmfb_but_its_own(emitc_pipeline, tmp_path):
    compiled = latest_entry(emitc_pipeline.instance, "compiled_model", EMITC)
    own = (compiled / "model.vmfb").read_bytes()
    other = (latest_entry(emitc_pipeline.instance, "compiled_model", BYTECODE) / "model.vmfb").read_bytes()
    flipped = bytearray(own)
    flipped[len(own) // 2] ^= 0x01  # one bit of the weights or code
    elf = latest_entry(emitc_pipeline.instance, "firmware", EMITC) / firmware_build.ELF_NAME
    window = np.random.default_rng(5).normal(size=384).astype(np.float32).tobytes()
    with qemu.start_qemu(elf, get_target(EMITC), tmp_path) as session:
        client = DeviceClient(session.port)
        client.load_iospec((compiled / "model.iospec.bin").read_bytes())
        for wrong in (other, bytes(flipped), own[:-1]):
            with pytest.raises(RequestFailed, match="MODEL"):
                client.load_model(wrong)
            with pytest.raises(RequestFailed, match="DATA"):  # no model is loaded
                client.send_input(window)
        client.load_model(own)
        client.send_input(window)
        client.run_inference()
        assert len(client.read_output()) == 16
        log = session.log_text()
    refusals = [line for line in log.splitlines() if "MODEL refused" in line]
    assert len(refusals) == 3, log
    assert hashlib.sha256(own).hexdigest() in refusals[0] and hashlib.sha256(other).hexdigest() in refusals[0]


def test_report_variants_table_names_the_module_format(emitc_pipeline):
    markdown = (latest_entry(emitc_pipeline.instance, "evaluation_report") / "report.md").read_text()
    variants = markdown.split("### Variants", 1)[1].split("\n#", 1)[0]  # up to the next heading
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in variants.splitlines() if line.startswith("|")]
    column = next(i for i, name in enumerate(lines[0]) if name.startswith("VM module"))
    formats = {cells[0]: cells[column] for cells in lines[2:]}
    assert formats[EMITC] == "emitc" and formats[BYTECODE] == "bytecode"
