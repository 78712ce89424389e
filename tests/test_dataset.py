import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from wand_assets.data import dataset
from wand_assets.data.dataset import DatasetError, acquire


def make_archive(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return hashlib.sha1(path.read_bytes()).hexdigest()


def dataset_archive(tmp_path: Path, dataset_dir: Path, extra: dict[str, bytes] | None = None, **kw) -> tuple[Path, str]:
    members = {f"data/{p.relative_to(dataset_dir)}": p.read_bytes() for p in sorted(dataset_dir.rglob("*.txt"))}
    members.update(extra or {})
    path = tmp_path / "data.tar.gz"
    return path, make_archive(path, members, **kw)


def test_official_folder_is_verified_and_copied(tmp_path, dataset_dir):
    result = acquire(str(dataset_dir), tmp_path / "raw")
    assert result.is_official
    assert len(result.files) == 38
    assert (tmp_path / "raw" / "wing" / "output_wing_hyw.txt").read_bytes() == (
        dataset_dir / "wing" / "output_wing_hyw.txt"
    ).read_bytes()


def test_modified_folder_is_refused_while_verification_is_on(tmp_path, writable_dataset):
    (writable_dataset / "ring" / "output_ring_hyw.txt").write_text("1,2,3\n")
    with pytest.raises(DatasetError, match=r"changed.*ring/output_ring_hyw\.txt"):
        acquire(str(writable_dataset), tmp_path / "raw")


def test_archive_extracts_data_and_skips_macos_stubs(tmp_path, dataset_dir):
    archive, sha1 = dataset_archive(
        tmp_path,
        dataset_dir,
        extra={"data/wing/._output_wing_hyw.txt": b"\0\5\26\7", "data/slope/.ipynb_checkpoints/x.txt": b"1,2,3"},
    )
    result = acquire(str(archive), tmp_path / "raw", expected_sha1=sha1)
    assert len(result.files) == 38
    assert set(result.skipped_members) >= {"data/wing/._output_wing_hyw.txt", "data/slope/.ipynb_checkpoints/x.txt"}
    assert not list((tmp_path / "raw").rglob("._*"))


def test_checksum_mismatch_names_expected_and_actual(tmp_path, dataset_dir):
    archive, sha1 = dataset_archive(tmp_path, dataset_dir)
    with pytest.raises(DatasetError) as err:
        acquire(str(archive), tmp_path / "raw")  # default: the official SHA-1
    assert dataset.OFFICIAL_SHA1 in str(err.value) and sha1 in str(err.value)
    assert not (tmp_path / "raw").exists()


def test_corrupt_archive_is_reported_as_unreadable(tmp_path):
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    sha1 = hashlib.sha1(archive.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match=r"not a readable tar\.gz"):
        acquire(str(archive), tmp_path / "raw", expected_sha1=sha1)


@pytest.mark.parametrize("evil", ["../escape.txt", "data/../../escape.txt", "/tmp/wand-absolute.txt"])
def test_member_escaping_the_destination_is_refused_before_anything_is_written(tmp_path, evil):
    archive = tmp_path / "evil.tar.gz"
    sha1 = make_archive(archive, {"wing/output_wing_a.txt": b"1,2,3\n", evil: b"pwned"})
    with pytest.raises(DatasetError, match="unsafe archive member"):
        acquire(str(archive), tmp_path / "out" / "raw", expected_sha1=sha1)
    assert not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/wand-absolute.txt").exists()
    assert not list((tmp_path / "out").rglob("*.txt"))


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    sha1 = make_archive(archive, {"wing/output_wing_a.txt": b"1,2,3\n"}, symlinks={"ring/output_ring_a.txt": "/etc/passwd"})
    with pytest.raises(DatasetError, match="links are not allowed"):
        acquire(str(archive), tmp_path / "raw", expected_sha1=sha1)


def test_empty_class_folder_is_refused(tmp_path, writable_dataset):
    for f in (writable_dataset / "slope").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="no recordings for class 'slope'"):
        acquire(str(writable_dataset), tmp_path / "raw", verify_files=False)


def test_missing_local_source_names_the_variable(tmp_path):
    with pytest.raises(DatasetError, match="WAND_DATASET"):
        acquire(str(tmp_path / "nowhere"), tmp_path / "raw")


def test_unreachable_download_names_the_variable(tmp_path):
    # Port 9 on loopback: nothing listens, so this is "no network" without touching the network.
    with pytest.raises(DatasetError, match="WAND_DATASET"):
        acquire("http://127.0.0.1:9/data.tar.gz", tmp_path / "raw", download_timeout_s=5)
    assert not (tmp_path / "raw").exists()


def test_source_defaults_to_env_then_official_url(monkeypatch):
    monkeypatch.delenv("WAND_DATASET", raising=False)
    assert dataset.resolve_source(None) == dataset.OFFICIAL_URL
    monkeypatch.setenv("WAND_DATASET", "/data/mw")
    assert dataset.resolve_source(None) == "/data/mw"
    assert dataset.resolve_source("/explicit") == "/explicit"
