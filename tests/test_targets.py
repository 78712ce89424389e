import pytest

from wand_assets.core.targets import DEVICE_TARGETS, QEMU_VIRT, SPRINGBOK, TARGETS, get_target

VLENS = [128, 256, 512, 1024]


def test_device_targets_are_the_rv32_variants():
    assert DEVICE_TARGETS == [
        "rv32imf",
        "rv32imf_zve32f_vlen128",
        "rv32imf_zve32f_vlen256",
        "rv32imf_zve32f_vlen512",
        "rv32imf_zve32f_vlen1024",
        "rv32imf_zve32f_vlen512_iree_defaults",
        "rv32imf_zve32f_vlen512_springbok",
        "rv32imf_zve32f_vlen512_inline",
        "rv32imf_zve32f_vlen512_inline_emitc",
    ]


def test_the_original_targets_keep_their_names_and_settings():
    scalar, vector = get_target("rv32imf"), get_target("rv32imf_zve32f_vlen512")
    assert (scalar.llvm_cpu_features, scalar.gcc_march, scalar.vlen) == ("+m,+f", "rv32imf_zicsr", 0)
    assert vector.llvm_cpu_features == "+m,+f,+zvl512b,+zve32x,+zve32f"
    assert (vector.gcc_march, vector.vlen, vector.elen) == ("rv32imf_zicsr_zve32f_zvl512b", 512, 32)
    assert scalar.iree_optimise and vector.iree_optimise


@pytest.mark.parametrize("name", DEVICE_TARGETS)
def test_simulator_cpu_agrees_with_compiled_vector_length(name):
    target = get_target(name)
    features = target.llvm_cpu_features.split(",")
    assert target.gcc_march is not None  # a device target
    if target.has_vector:
        assert f"+zvl{target.vlen}b" in features
        assert [f for f in features if f.startswith("+zvl")] == [f"+zvl{target.vlen}b"]
        assert target.gcc_march.split("_")[-1] == f"zvl{target.vlen}b"
        if target.device_board.runs_on_qemu:  # else the board's own Renode files set the CPU (test below)
            assert f"vlen={target.vlen}" in target.qemu_cpu()
            assert "v" in target.renode_cpu_type().split("_")[0][4:]
    else:
        assert not any(f.startswith("+zv") for f in features)
        assert "zv" not in target.gcc_march
        assert "v=false" in target.qemu_cpu()


def test_one_vector_target_per_vlen_with_the_projects_flags():
    optimised = [
        get_target(t)
        for t in DEVICE_TARGETS
        if get_target(t).has_vector
        and get_target(t).iree_optimise
        and get_target(t).board is QEMU_VIRT
        and not get_target(t).is_inline
    ]
    assert sorted(t.vlen for t in optimised) == VLENS
    assert all("+zve32f" in t.llvm_cpu_features.split(",") and t.elen == 32 for t in optimised)


def test_iree_defaults_variant_differs_from_its_twin_only_in_the_flags():
    plain, tuned = get_target("rv32imf_zve32f_vlen512_iree_defaults"), get_target("rv32imf_zve32f_vlen512")
    assert not plain.iree_optimise
    assert plain.iree_compile_flags() == tuned.iree_compile_flags()
    assert (plain.gcc_march, plain.qemu_cpu(), plain.renode_cpu_type()) == (
        tuned.gcc_march,
        tuned.qemu_cpu(),
        tuned.renode_cpu_type(),
    )


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


@pytest.mark.parametrize("name", [t for t in DEVICE_TARGETS if "springbok" not in t])
def test_device_targets_run_on_the_qemu_virt_board(name):
    assert get_target(name).board is QEMU_VIRT
    assert QEMU_VIRT.qemu_machine == "virt" and QEMU_VIRT.ram_size >= 16 << 20


def test_springbok_target_has_the_vlen512_kernels_on_the_seeds_board(springbok_dir):
    springbok, twin = get_target("rv32imf_zve32f_vlen512_springbok"), get_target("rv32imf_zve32f_vlen512")
    assert springbok.board is SPRINGBOK
    assert springbok.iree_compile_flags() == twin.iree_compile_flags()
    assert (springbok.gcc_march, springbok.vlen, springbok.elen) == (twin.gcc_march, twin.vlen, twin.elen)
    # The platform facts of the seed's Renode files.
    assert (SPRINGBOK.code_base, SPRINGBOK.ram_base, SPRINGBOK.uart0_base) == (0x3200_0000, 0x3400_0000, 0x4000_0000)
    assert (SPRINGBOK.mtime_hz, SPRINGBOK.uart_driver, SPRINGBOK.log_channel) == (24_000_000, "pl011", "simprint")
    with pytest.raises(ValueError, match="QEMU does not emulate"):
        springbok.qemu_cpu()
    # The platform's own CPU class fixes VLEN and ELEN: they must be the compiled ones.
    cpu = (springbok_dir / "SpringbokRiscV32.cs").read_text()
    assert f"VectorRegisterLength = {springbok.vlen};" in cpu and f"VectorElementMaxWidth = {springbok.elen};" in cpu
    repl = (springbok_dir / "springbok.repl").read_text()
    assert f"frequency: {SPRINGBOK.mtime_hz}" in repl and f"uart0: UART.PL011 @ sysbus {SPRINGBOK.uart0_base:#x}" in repl


def test_host_target_has_no_board():
    assert TARGETS["host"].board is None


def test_iree_defaults_variant_compiles_without_the_projects_flags():
    from wand_assets.compilation import iree_tools

    plain = iree_tools.compile_flags(get_target("rv32imf_zve32f_vlen512_iree_defaults"))
    tuned = iree_tools.compile_flags(get_target("rv32imf_zve32f_vlen512"))
    assert set(iree_tools.OPTIMISATION_FLAGS) <= set(tuned)
    assert not set(iree_tools.OPTIMISATION_FLAGS) & set(plain)


def test_the_default_chain_leaves_out_what_qemu_cannot_run():
    from wand_assets.pipeline import plan_stages

    def partitions(stages):
        return {s.partition for s in stages if s.partition}

    assert "rv32imf_zve32f_vlen512_springbok" not in partitions(plan_stages())
    assert "rv32imf_zve32f_vlen512_springbok" in partitions(plan_stages(backend="renode"))
    assert "rv32imf_zve32f_vlen512_springbok" in partitions(plan_stages(device_stages=False))  # its .vmfb still
    assert partitions(plan_stages(["rv32imf_zve32f_vlen512_springbok"])) == {"rv32imf_zve32f_vlen512_springbok"}
