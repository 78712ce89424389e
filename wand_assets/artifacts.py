"""Content-addressed artifact storage with atomic writes.

Every stage writes its files into ``<root>/<stage>[/<partition>]/<fingerprint>/`` where the fingerprint
hashes everything the output depends on (input hashes, configuration, code version). A stage whose
fingerprint directory already exists has nothing to do, which is what makes a re-run with nothing
changed take seconds. ``current.json`` beside the fingerprint directories names the newest one, so a
downstream stage finds its input without asking the orchestrator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Hash of a directory: every file's relative path and content, in sorted order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(file).encode() + b"\n")
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (configs, upstream hashes, code versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp's 0600 would hide artifacts from other users of a shared root
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_json_atomic(final: str | os.PathLike, obj: Any) -> Path:
    return write_bytes_atomic(final, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; it becomes ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class StageDir:
    """Where one stage (and partition) keeps its fingerprinted outputs."""

    path: Path

    def entry(self, fp: str) -> Path:
        return self.path / fp

    def cached(self, fp: str) -> Path | None:
        """The finished output directory for this fingerprint, if a previous run produced it."""
        entry = self.entry(fp)
        return entry if (entry / "DONE").is_file() else None

    @contextlib.contextmanager
    def produce(self, fp: str) -> Iterator[Path]:
        """A scratch directory that becomes the fingerprint's output when the block succeeds."""
        with atomic_dir(self.entry(fp)) as tmp:
            yield tmp
            (tmp / "DONE").write_text(fp + "\n")
        self.set_current(fp)

    def set_current(self, fp: str) -> None:
        write_json_atomic(self.path / "current.json", {"fingerprint": fp})

    def current(self) -> Path:
        """The newest finished output of this stage; raises if the stage never ran."""
        pointer = self.path / "current.json"
        try:
            fp = json.loads(pointer.read_text())["fingerprint"]
        except FileNotFoundError:
            raise MissingArtifactError(
                f"no output at {self.path}: materialize this stage (and its upstream stages) first"
            ) from None
        entry = self.cached(fp)
        if entry is None:
            raise MissingArtifactError(f"{pointer} names {fp}, which is missing or unfinished; re-materialize")
        return entry


class MissingArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class ArtifactStore:
    root: Path

    def stage(self, name: str, partition: str | None = None) -> StageDir:
        path = self.root / name
        if partition:
            path = path / partition
        return StageDir(path)


def default_artifact_root() -> Path:
    """``$WAND_ARTIFACT_ROOT``, else ``$DAGSTER_HOME/wand-artifacts``, else ``./.wand``."""
    if explicit := os.environ.get("WAND_ARTIFACT_ROOT"):
        return Path(explicit)
    if dagster_home := os.environ.get("DAGSTER_HOME"):
        return Path(dagster_home) / "wand-artifacts"
    return Path(".wand").absolute()
