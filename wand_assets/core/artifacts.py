"""Content-addressed artifact storage with atomic writes.

Every stage writes its files into an entry ``<root>/<stage>[/<partition>]/<fingerprint>/`` where the
fingerprint hashes everything the output depends on (input hashes, configuration, code version). A stage
whose entry already exists has nothing to do, which is what makes a re-run with nothing changed take
seconds. Entries are immutable: an entry appears whole (a rename of a finished folder) or not at all, and
is never replaced or deleted, so a reader never sees half of one and two writers of the same fingerprint
cannot disturb each other (the first rename wins; the same inputs made the same content). Which entry a
stage reads is not this module's business: the orchestrator hands it over (see ``core/handoff.py``).

Temporaries are named ``.<final name>.w<pid>-<writer host>.<random>.tmp``: a writer killed with SIGKILL
cannot clean up after itself, and the name lets :func:`remove_stale_temps` (run at the start of every
materialization) tell a dead writer's leftovers from a live writer's work in progress, even when several
runs share one artifact root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike, skip_suffixes: tuple[str, ...] = ()) -> str:
    """Hash of a directory: every file's relative path and content, in sorted order (files whose name
    ends in one of ``skip_suffixes`` left out)."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(skip_suffixes)):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(file).encode() + b"\n")
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (configs, upstream hashes, code versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _temp_prefix(final: Path) -> str:
    return f".{final.name}.w{os.getpid()}-{writer_host()}."


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=".tmp", dir=final.parent)
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
    """Yield a temporary directory beside ``final``; it becomes ``final`` only if the block succeeds.

    If ``final`` appeared meanwhile (another writer of the same content), it is kept as it is and the
    temporary is discarded: nothing that exists is ever replaced.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)  # fails, instead of replacing, when final is a non-empty directory
        except OSError as exc:
            if not (final / DONE).is_file():
                raise ArtifactError(f"cannot create {final}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- leftovers of killed writers -------------------------------------------------------------------

# A temporary whose writer cannot be checked (it ran on another host sharing the root, or the name is from
# before writer tags) is removed once nothing in it changed for this long.
STALE_TEMP_AGE_S = 24 * 3600.0

# mkstemp/mkdtemp add 8 characters from [a-z0-9_]; the writer tag is "w<pid>-<writer_host()>".
_TAGGED_TEMP = re.compile(r"^\..+\.w(?P<pid>\d+)-(?P<host>[0-9a-f]{10})\.[a-z0-9_]{8}\.tmp$")
_UNTAGGED_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # any temp of atomic_path/atomic_dir, old names too
_PID_REUSE_SLACK_S = 2.0  # /proc/stat's boot time is whole seconds


def writer_host() -> str:
    """A short id of where this process's PID means something: host name + PID namespace.

    Processes with the same id see the same PIDs, so only they check each other's PIDs: containers on one
    host differ by their PID namespace even with the same host name (host names are assumed unique among
    the machines that share an artifact root).
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:10]


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _process_alive_since(pid: int, created_by: float) -> bool:
    """Whether process ``pid`` exists, is not a zombie, and started no later than ``created_by``.

    A process that started after the temporary was last changed cannot have written it: the writer died
    and its PID was reused.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone meanwhile, or no /proc (not Linux): keep the temp, to be safe
    fields = stat.rsplit(")", 1)[1].split()  # the command name in (...) may contain spaces
    if fields[0] in ("Z", "X"):  # zombie: dead, just not reaped by its parent yet
        return False
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime in clock ticks
    return started <= created_by + _PID_REUSE_SLACK_S


def _last_change(path: Path) -> float:
    """Newest inode change time in ``path`` (ctime: unlike mtime, copy2/utime cannot set it back)."""
    newest = path.lstat().st_ctime
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_ctime)
    return newest


def is_stale_temp(
    path: Path, *, max_age_s: float = STALE_TEMP_AGE_S, now: float | None = None, include_own: bool = False
) -> bool:
    """Whether ``path`` is an atomic-write temporary that no live writer will finish.

    Tagged by a writer in this PID namespace: stale as soon as that process is gone (with
    ``include_own``, also when the writer is this process: for a process that is about to exit).
    Otherwise (another host, or an untagged name): stale only once nothing in it changed for ``max_age_s``.
    """
    name = path.name
    try:
        if (m := _TAGGED_TEMP.match(name)) and m["host"] == writer_host():
            if include_own and int(m["pid"]) == os.getpid():
                return True
            # The temp's own ctime is no earlier than its creation, which its writer outlived.
            return not _process_alive_since(int(m["pid"]), path.lstat().st_ctime)
        if _TAGGED_TEMP.match(name) or _UNTAGGED_TEMP.match(name):
            return (time.time() if now is None else now) - _last_change(path) > max_age_s
    except FileNotFoundError:  # renamed into place or removed meanwhile
        return False
    return False


def remove_stale_temps(root: str | os.PathLike, *, max_age_s: float = STALE_TEMP_AGE_S, include_own: bool = False) -> list[Path]:
    """Remove the temporaries of killed writers anywhere under ``root``; return what was removed.

    Safe while other runs write into the same root: a temp whose writer is alive is never touched
    (``include_own``: except this process's own, for a process that is about to exit).
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in [n for n in dirnames if _UNTAGGED_TEMP.match(n)]:
            dirnames.remove(name)  # a temp's contents go with it, or stay with their live writer
            if is_stale_temp(here / name, max_age_s=max_age_s, include_own=include_own):
                shutil.rmtree(here / name, ignore_errors=True)
                removed.append(here / name)
        for name in filenames:
            if _UNTAGGED_TEMP.match(name) and is_stale_temp(here / name, max_age_s=max_age_s, include_own=include_own):
                with contextlib.suppress(FileNotFoundError, PermissionError):
                    (here / name).unlink()
                    removed.append(here / name)
    return removed


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) for the block, across processes; the
    kernel releases it when the holder dies, so a killed run never leaves a stuck lock."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


DONE = "DONE"  # written last into a finished entry, before it is renamed into place


@dataclass(frozen=True)
class StageDir:
    """Where one stage (and partition) keeps its fingerprinted, immutable entries."""

    path: Path

    def entry(self, fp: str) -> Path:
        return self.path / fp

    def cached(self, fp: str) -> Path | None:
        """The finished entry for this fingerprint, if some run produced it."""
        entry = self.entry(fp)
        return entry if (entry / DONE).is_file() else None

    @contextlib.contextmanager
    def produce(self, fp: str) -> Iterator[Path]:
        """A scratch directory that becomes the fingerprint's entry when the block succeeds (unless
        another writer's entry for ``fp`` got there first: then that one stands)."""
        with atomic_dir(self.entry(fp)) as tmp:
            yield tmp
            (tmp / DONE).write_text(fp + "\n")

    @contextlib.contextmanager
    def produce_by_content(self, content_key: Callable[[Path], str]) -> Iterator[ContentEntry]:
        """A scratch folder (``.folder``) whose entry is named after what ends up in it:
        ``content_key(folder)``, computed when the block succeeds (e.g. the hash of a dataset, wherever it
        was read from). Afterwards ``.entry`` is the entry, whoever wrote it first."""
        self.path.mkdir(parents=True, exist_ok=True)
        made = ContentEntry(Path(tempfile.mkdtemp(prefix=_temp_prefix(self.path / "content"), suffix=".tmp", dir=self.path)))
        try:
            yield made
            fp = content_key(made.folder)
            if self.cached(fp) is None:
                with atomic_dir(self.entry(fp)) as tmp:
                    for item in made.folder.iterdir():
                        os.replace(item, tmp / item.name)
                    (tmp / DONE).write_text(fp + "\n")
            made.entry = self.entry(fp)
        finally:
            shutil.rmtree(made.folder, ignore_errors=True)


@dataclass
class ContentEntry:
    folder: Path  # where the block writes
    entry: Path | None = None  # the finished entry, once the block succeeded


class ArtifactError(RuntimeError):
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
