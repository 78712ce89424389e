import pytest

from wand_assets.artifacts import ArtifactStore, MissingArtifactError, atomic_path, write_bytes_atomic


def test_failed_write_leaves_no_file_behind(tmp_path):
    target = tmp_path / "model.vmfb"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("compiler crashed")
    assert list(tmp_path.iterdir()) == []


def test_failed_stage_keeps_the_previous_output(tmp_path):
    stage = ArtifactStore(tmp_path).stage("compiled_model", "rv32imf")
    with stage.produce("aaa") as out:
        (out / "model.vmfb").write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with stage.produce("bbb") as out:
            (out / "model.vmfb").write_bytes(b"half")
            raise RuntimeError("boom")
    assert stage.current() == stage.entry("aaa")
    assert stage.cached("bbb") is None
    assert sorted(p.name for p in stage.path.iterdir()) == ["aaa", "current.json"]


def test_written_files_are_readable_by_others(tmp_path):
    path = write_bytes_atomic(tmp_path / "x.bin", b"1")
    assert path.stat().st_mode & 0o044 == 0o044


def test_missing_upstream_says_what_to_materialize(tmp_path):
    with pytest.raises(MissingArtifactError, match="materialize"):
        ArtifactStore(tmp_path).stage("trained_model").current()
