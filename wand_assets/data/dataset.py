"""Getting the raw Magic Wand recordings: from a folder, a local ``data.tar.gz`` or the official URL.

Archives are checked against the official SHA-1 before a single byte is extracted, and extraction
refuses anything that could write outside the destination (absolute paths, ``..``, links, devices).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from wand_assets.core.artifacts import sha256_file
from wand_assets.data.official_manifest import OFFICIAL_FILE_SHA256

OFFICIAL_URL = "http://download.tensorflow.org/models/tflite/magic_wand/data.tar.gz"
OFFICIAL_SHA1 = "5f130f7a65db62e17e7de62d635ab7ae0f929047"
CLASSES: tuple[str, ...] = ("wing", "ring", "slope", "negative")
DATASET_ENV = "WAND_DATASET"
MAX_ARCHIVE_BYTES = 64 << 20  # the official archive is 0.45 MB; anything near this is not it
MAX_EXTRACTED_BYTES = 256 << 20


class DatasetError(RuntimeError):
    """The dataset source is missing, corrupt, unsafe or not the expected data."""


@dataclass
class AcquiredDataset:
    """Raw files copied into ``raw_dir`` as ``<class>/<file>.txt``."""

    raw_dir: Path
    source: str
    source_kind: str  # "folder" | "archive" | "url"
    archive_sha1: str | None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    skipped_members: list[str] = field(default_factory=list)

    @property
    def is_official(self) -> bool:
        return self.files == OFFICIAL_FILE_SHA256


def resolve_source(configured: str | None) -> str:
    """The configured source, else ``$WAND_DATASET``, else the official URL."""
    return configured or os.environ.get(DATASET_ENV) or OFFICIAL_URL


def acquire(
    source: str,
    dest_raw_dir: Path,
    *,
    expected_sha1: str = OFFICIAL_SHA1,
    verify_files: bool = True,
    download_timeout_s: float = 60.0,
    log: Callable[[str], None] = lambda _msg: None,
) -> AcquiredDataset:
    """Copy or extract the recordings from ``source`` into ``dest_raw_dir`` (which must not exist).

    ``verify_files`` (folders only) requires the exact official files; archives are verified by SHA-1.
    """
    if source.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="wand-download-") as tmp:
            archive = Path(tmp) / "data.tar.gz"
            _download(source, archive, download_timeout_s, log)
            result = _from_archive(archive, dest_raw_dir, expected_sha1, log)
        result.source, result.source_kind = source, "url"
        return result
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path, dest_raw_dir, verify_files, log)
    if path.is_file():
        return _from_archive(path, dest_raw_dir, expected_sha1, log)
    raise DatasetError(
        f"dataset source {source!r} does not exist. Set {DATASET_ENV} to a folder of raw recordings "
        f"(<class>/*.txt), a local data.tar.gz, or leave it unset to download {OFFICIAL_URL}"
    )


def _download(url: str, target: Path, timeout_s: float, log: Callable[[str], None]) -> None:
    log(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(target, "wb") as out:
            copied = 0
            while chunk := response.read(1 << 16):
                copied += len(chunk)
                if copied > MAX_ARCHIVE_BYTES:
                    raise DatasetError(f"{url} is larger than {MAX_ARCHIVE_BYTES} bytes; not the Magic Wand archive")
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DatasetError(
            f"could not download the dataset from {url} ({exc}). Without network access, set "
            f"{DATASET_ENV} to a local copy: a folder of raw recordings or the data.tar.gz archive"
        ) from exc
    log(f"downloaded {target.stat().st_size} bytes")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _class_relpath(parts: tuple[str, ...]) -> str | None:
    """``<class>/<file>.txt`` for a data member at any depth, or None for anything that is not data."""
    if len(parts) < 2 or not parts[-1].endswith(".txt"):
        return None
    if any(p.startswith("._") or p == ".ipynb_checkpoints" or p == "__MACOSX" for p in parts):
        return None
    if parts[-2] not in CLASSES:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def _from_archive(archive: Path, dest: Path, expected_sha1: str, log: Callable[[str], None]) -> AcquiredDataset:
    actual = _sha1(archive)
    if expected_sha1 and actual != expected_sha1.lower():
        raise DatasetError(
            f"checksum mismatch for {archive}: expected SHA-1 {expected_sha1}, got {actual}. "
            "The file is not the official Magic Wand archive (or is damaged); re-download it"
        )
    log(f"archive SHA-1 {actual} verified")
    dest.mkdir(parents=True)
    files: dict[str, str] = {}
    skipped: list[str] = []
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member_is_safe(member)
            for member in members:
                if member.isdir():
                    continue
                rel = _class_relpath(PurePosixPath(member.name).parts)
                if rel is None:
                    skipped.append(member.name)
                    continue
                total += member.size
                if total > MAX_EXTRACTED_BYTES:
                    raise DatasetError(f"{archive} expands beyond {MAX_EXTRACTED_BYTES} bytes; refusing")
                source = tar.extractfile(member)
                assert source is not None  # regular file, checked above
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                files[rel] = sha256_file(target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(f"{archive} is not a readable tar.gz archive: {exc}") from exc
    return _finish(dest, str(archive), "archive", actual, files, skipped)


def _check_member_is_safe(member: tarfile.TarInfo) -> None:
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise DatasetError(f"unsafe archive member {name!r}: absolute path")
    if ".." in path.parts:
        raise DatasetError(f"unsafe archive member {name!r}: '..' escapes the destination")
    if member.issym() or member.islnk():
        raise DatasetError(f"unsafe archive member {name!r}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise DatasetError(f"unsafe archive member {name!r}: devices, fifos and other special files are not allowed")


def _from_folder(folder: Path, dest: Path, verify_files: bool, log: Callable[[str], None]) -> AcquiredDataset:
    dest.mkdir(parents=True)
    files: dict[str, str] = {}
    skipped: list[str] = []
    for cls in CLASSES:
        class_dir = folder / cls
        if not class_dir.is_dir():
            raise DatasetError(f"{folder} has no '{cls}' folder; expected one folder per class: {', '.join(CLASSES)}")
        for entry in sorted(class_dir.iterdir()):
            rel = _class_relpath((cls, entry.name))
            if rel is None or not entry.is_file() or entry.is_symlink():
                skipped.append(f"{cls}/{entry.name}")
                continue
            (dest / cls).mkdir(exist_ok=True)
            shutil.copyfile(entry, dest / rel)
            files[rel] = sha256_file(dest / rel)
    if verify_files and files != OFFICIAL_FILE_SHA256:
        missing = sorted(set(OFFICIAL_FILE_SHA256) - set(files))
        extra = sorted(set(files) - set(OFFICIAL_FILE_SHA256))
        changed = sorted(k for k in files if k in OFFICIAL_FILE_SHA256 and files[k] != OFFICIAL_FILE_SHA256[k])
        raise DatasetError(
            f"{folder} is not the official Magic Wand data: missing {missing[:5]}, unexpected {extra[:5]}, "
            f"changed {changed[:5]}. Point {DATASET_ENV} at an unmodified copy, or turn verification off "
            "(verify_files=False) to use your own recordings"
        )
    log(f"copied {len(files)} files from {folder}" + (" (official checksums verified)" if verify_files else ""))
    return _finish(dest, str(folder), "folder", None, files, skipped)


def _finish(dest, source, kind, sha1, files, skipped) -> AcquiredDataset:
    for cls in CLASSES:
        if not any(rel.startswith(cls + "/") for rel in files):
            raise DatasetError(f"the dataset from {source} has no recordings for class '{cls}'")
    return AcquiredDataset(dest, source, kind, sha1, dict(sorted(files.items())), skipped)
