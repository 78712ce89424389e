"""libFuzzer harness over the firmware's protocol detection, both frame parsers (legacy and KenningProtocol),
the dispatcher and the state machine (host build)."""

import shutil
import subprocess

import pytest

from wand_assets.core.procs import run_tool
from wand_assets.device.firmware_build import FIRMWARE_DIR

SOURCES = [
    FIRMWARE_DIR / "fuzz" / "frame_fuzzer.c",
    FIRMWARE_DIR / "src" / "protocol.c",
    FIRMWARE_DIR / "src" / "protocol_kenning.c",
    FIRMWARE_DIR / "src" / "protocol_mux.c",
    FIRMWARE_DIR / "src" / "runtime_stats.c",
    FIRMWARE_DIR / "src" / "iospec.c",
    FIRMWARE_DIR / "src" / "runtime_fake.c",
]
SANITIZE = ["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("needs clang with libFuzzer (apt-get install clang libclang-rt-14-dev)")
    out = tmp_path_factory.mktemp("fuzz") / "frame_fuzzer"
    args = [clang, "-g", "-O1", "-Wall", "-Wextra", "-Werror", *SANITIZE, f"-I{FIRMWARE_DIR / 'src'}", *SOURCES, "-o", out]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        if "libclang_rt.fuzzer" in proc.stderr or "cannot find" in proc.stderr:
            pytest.skip(f"clang has no libFuzzer runtime (apt-get install libclang-rt-14-dev): {proc.stderr[-300:]}")
        pytest.fail(f"the fuzz harness does not compile warning-free:\n{proc.stderr}")
    return out


@pytest.mark.slow
def test_frame_fuzzer_runs_clean_for_20_seconds(fuzzer, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = run_tool(
        [fuzzer, "-max_total_time=20", "-max_len=4096", "-rss_limit_mb=2048", "-print_final_stats=1", corpus],
        what="frame_fuzzer",
        timeout_s=180,
        cwd=tmp_path,
    )
    assert "Done" in result.output
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
