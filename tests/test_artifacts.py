import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from wand_assets.core.artifacts import (
    STALE_TEMP_AGE_S,
    ArtifactStore,
    _process_alive_since,
    atomic_path,
    is_stale_temp,
    remove_stale_temps,
    write_bytes_atomic,
    writer_host,
)


def test_failed_write_leaves_no_file_behind(tmp_path):
    target = tmp_path / "model.vmfb"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 - the error is raised inside the context on purpose
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler crashed")
    assert list(tmp_path.iterdir()) == []


def test_failed_stage_keeps_the_previous_output(tmp_path):
    stage = ArtifactStore(tmp_path).stage("compiled_model", "rv32imf")
    with stage.produce("aaa") as out:
        (out / "model.vmfb").write_bytes(b"good")
    with pytest.raises(RuntimeError), stage.produce("bbb") as out:  # noqa: PT012 - the error is raised inside the stage on purpose
        (out / "model.vmfb").write_bytes(b"half")
        raise RuntimeError("boom")
    assert stage.cached("aaa") == stage.entry("aaa")
    assert stage.cached("bbb") is None
    assert sorted(p.name for p in stage.path.iterdir()) == ["aaa"]


def test_written_files_are_readable_by_others(tmp_path):
    path = write_bytes_atomic(tmp_path / "x.bin", b"1")
    assert path.stat().st_mode & 0o044 == 0o044


def test_an_existing_entry_is_never_replaced(tmp_path):
    stage = ArtifactStore(tmp_path).stage("device_evaluation", "rv32imf")
    with stage.produce("aaa") as out:
        (out / "results.parquet").write_bytes(b"first")
    inode = stage.entry("aaa").stat().st_ino
    with stage.produce("aaa") as out:
        (out / "results.parquet").write_bytes(b"second")
    assert (stage.entry("aaa") / "results.parquet").read_bytes() == b"first"
    assert stage.entry("aaa").stat().st_ino == inode
    assert sorted(p.name for p in stage.path.iterdir()) == ["aaa"]


def test_entries_named_by_content_are_one_entry_whoever_writes_them(tmp_path):
    stage = ArtifactStore(tmp_path).stage("magic_wand_archive")
    entries = []
    for source in ("folder", "archive"):
        with stage.produce_by_content(lambda folder: (folder / "key").read_text()) as made:
            (made.folder / "key").write_text("same-content")
            (made.folder / "source").write_text(source)
        entries.append(made.entry)
    assert entries[0] == entries[1] == stage.entry("same-content")
    assert (entries[0] / "source").read_text() == "folder"  # the first writer's entry stands
    assert sorted(p.name for p in stage.path.iterdir()) == ["same-content"]


CONCURRENT_WRITER = """
import sys
from pathlib import Path
from wand_assets.core.artifacts import ArtifactStore

stage = ArtifactStore(Path(sys.argv[1])).stage("compiled_model", "rv32imf")
for round in range(int(sys.argv[2])):
    with stage.produce(f"fp{round % 3}") as out:
        for i in range(20):
            (out / f"part{i}").write_bytes(sys.argv[3].encode() * 1000)
"""

READER = """
import sys, time
from pathlib import Path
from wand_assets.core.artifacts import ArtifactStore

stage = ArtifactStore(Path(sys.argv[1])).stage("compiled_model", "rv32imf")
seen = partial = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    for fp in ("fp0", "fp1", "fp2"):
        entry = stage.cached(fp)
        if entry is None:
            continue
        try:
            names = sorted(p.name for p in entry.iterdir())
            contents = {(entry / n).read_bytes() for n in names if n != "DONE"}
        except FileNotFoundError:
            partial += 1
            continue
        seen += 1
        if names != sorted(["DONE", *(f"part{i}" for i in range(20))]) or len(contents) != 1:
            partial += 1
print(seen, partial)
"""


def test_concurrent_writers_never_show_a_reader_a_partial_entry(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(tmp_path), "30", name], env=env)
        for name in ("a", "b", "c")
    ]
    reader = subprocess.run(
        [sys.executable, "-c", READER, str(tmp_path), "4"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    seen, partial = map(int, reader.stdout.split())
    assert seen > 0 and partial == 0
    stage = ArtifactStore(tmp_path).stage("compiled_model", "rv32imf")
    assert sorted(p.name for p in stage.path.iterdir()) == ["fp0", "fp1", "fp2"]  # no temporaries left behind


WRITER = """
import sys
from pathlib import Path
from wand_assets.core.artifacts import atomic_dir, atomic_path

with atomic_dir(Path(sys.argv[1]) / "entry") as out, atomic_path(Path(sys.argv[1]) / "current.json") as tmp:
    (out / "model.vmfb").write_bytes(b"half")
    tmp.write_text("{")
    print("writing", flush=True)
    sys.stdin.read()
"""


def _writer(folder):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    assert proc.stdout.readline() == "writing\n"
    return proc


def test_temporaries_of_killed_writers_are_removed_and_a_live_writers_kept(tmp_path):
    reaped, zombie, live = (_writer(tmp_path / name) for name in ("reaped", "zombie", "live"))
    reaped.kill()
    reaped.wait()
    zombie.kill()  # not waited for: dead, but its PID still exists until its parent reaps it
    time.sleep(0.5)
    try:
        removed = remove_stale_temps(tmp_path)
        assert sorted(p.parent.name for p in removed) == ["reaped", "reaped", "zombie", "zombie"]
        assert all(p.name.startswith((".entry.", ".current.json.")) for p in removed)
        assert [p.parent.name for p in tmp_path.rglob("*.tmp")] == ["live", "live"]
    finally:
        live.communicate("", timeout=30)
        zombie.wait()
    assert (tmp_path / "live" / "entry" / "model.vmfb").read_bytes() == b"half"
    assert list(tmp_path.rglob("*.tmp")) == []


def test_temporaries_no_pid_check_can_judge_are_removed_only_when_untouched_for_a_day(tmp_path):
    untagged = tmp_path / ".model.vmfb.ab12cd34.tmp"  # a name from before writer tags
    untagged.write_bytes(b"x")
    other_host = tmp_path / ".entry.w12345-0123456789.ab12cd34.tmp"
    (other_host / "sub").mkdir(parents=True)
    not_ours = tmp_path / "notes.tmp"
    not_ours.write_text("a user's file")
    assert remove_stale_temps(tmp_path) == []
    time.sleep(0.05)
    assert sorted(remove_stale_temps(tmp_path, max_age_s=0.01)) == sorted([untagged, other_host])
    assert not_ours.exists()
    assert STALE_TEMP_AGE_S >= 3600


def test_a_reused_pid_does_not_keep_a_dead_writers_temporary(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _process_alive_since(sleeper.pid, time.time())  # started before: may be the writer
        assert not _process_alive_since(sleeper.pid, time.time() - 60)  # started after: the PID was reused
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not _process_alive_since(sleeper.pid, time.time())


def test_temporary_names_carry_the_writer(tmp_path):
    with atomic_path(tmp_path / "model.vmfb") as tmp:
        assert tmp.name.startswith(f".model.vmfb.w{os.getpid()}-{writer_host()}.") and tmp.name.endswith(".tmp")
        assert not is_stale_temp(tmp)
        assert is_stale_temp(tmp, include_own=True)
