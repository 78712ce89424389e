import pytest

from wand_assets.core.targets import DEVICE_TARGETS, QEMU_VIRT, TARGETS, get_target


def test_device_targets_are_the_rv32_variants():
    assert DEVICE_TARGETS == ["rv32imf", "rv32imf_zve32f_vlen512"]


@pytest.mark.parametrize("name", DEVICE_TARGETS)
def test_simulator_cpu_agrees_with_compiled_vector_length(name):
    target = get_target(name)
    features = target.llvm_cpu_features.split(",")
    if target.has_vector:
        assert f"+zvl{target.vlen}b" in features
        assert f"vlen={target.vlen}" in target.qemu_cpu()
        assert "v" in target.renode_cpu_type().split("_")[0][4:]
    else:
        assert not any(f.startswith("+zv") for f in features)
        assert "v=false" in target.qemu_cpu()


@pytest.mark.parametrize("name", DEVICE_TARGETS)
def test_firmware_abi_matches_model_abi(name):
    target = get_target(name)
    assert target.gcc_mabi == target.llvm_abi
    assert "--iree-llvmcpu-link-embedded=true" in target.iree_compile_flags()


def test_host_target_has_no_simulator_cpu():
    with pytest.raises(ValueError, match="host reference"):
        TARGETS["host"].qemu_cpu()


def test_unknown_target_lists_known_ones():
    with pytest.raises(KeyError, match="rv32imf"):
        get_target("rv64gc")


@pytest.mark.parametrize("name", DEVICE_TARGETS)
def test_device_targets_run_on_the_qemu_virt_board(name):
    assert get_target(name).board is QEMU_VIRT
    assert QEMU_VIRT.qemu_machine == "virt" and QEMU_VIRT.ram_size >= 16 << 20


def test_host_target_has_no_board():
    assert TARGETS["host"].board is None
