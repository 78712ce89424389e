"""scripts/fetch_upstream.sh: what setup fetches from upstream (IREE source, Renode package).

The upstream IREE repository is a tiny local stand-in (file:// URL) built here: a
``runtime/version.json``, an annotated tag v3.11.0 and the two submodules, themselves tiny local
repositories (flatcc pinned below its tip, as upstream pins it). Its tag cannot be the real commit,
so the tests that accept it set WAND_IREE_EXPECTED_COMMIT. No apt, no pip, no network.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from wand_assets.device.firmware_build import (
    IREE_SOURCE_COMMIT,
    IREE_SOURCE_VERSION,
    check_iree_source,
)
from wand_assets.device.renode import renode_environment

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "fetch_upstream.sh"
TREE_NAME = f"iree-{IREE_SOURCE_VERSION}"
RENODE_PKG_NAME = "renode-1.15.1-1-x86_64.pkg.tar.xz"
UNREACHABLE = ["file:///nonexistent/iree.git", "http://127.0.0.1:9/iree.git"]
GIT_ISOLATION = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ISOLATION}
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=wand test",
            "-c",
            "user.email=test@wand.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _small_repo(path: Path, files: dict[str, str]) -> list[str]:
    """A repository with two commits (the files, then one more); returns both commit ids."""
    path.mkdir(parents=True)
    _git("init", "-q", str(path), cwd=path.parent)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    _git("add", ".", cwd=path)
    _git("commit", "-q", "-m", "first", cwd=path)
    (path / "later.txt").write_text("after the pinned commit\n")
    _git("add", ".", cwd=path)
    _git("commit", "-q", "-m", "second", cwd=path)
    return [_git("rev-parse", "HEAD~1", cwd=path), _git("rev-parse", "HEAD", cwd=path)]


@pytest.fixture
def upstream(tmp_path) -> dict:
    """A local stand-in for github.com/iree-org/iree at tag v3.11.0 with flatcc and printf."""
    root = tmp_path / "upstream"
    flatcc = _small_repo(root / "flatcc", {"include/flatcc/flatcc.h": "/* flatcc */\n"})
    printf = _small_repo(root / "printf", {"src/printf/printf.c": "/* printf */\n"})
    iree = root / "iree"
    _small_repo(iree, {"runtime/version.json": f'{{"package-version": "{IREE_SOURCE_VERSION}"}}\n'})
    _git("submodule", "add", "-q", (root / "flatcc").as_uri(), "third_party/flatcc", cwd=iree)
    _git("submodule", "add", "-q", (root / "printf").as_uri(), "third_party/printf", cwd=iree)
    _git("checkout", "-q", flatcc[0], cwd=iree / "third_party" / "flatcc")  # pinned below the tip
    _git("add", ".", cwd=iree)
    _git("commit", "-q", "-m", "submodules", cwd=iree)
    _git("tag", "-a", f"v{IREE_SOURCE_VERSION}", "-m", "release", cwd=iree)
    (iree / "after-the-tag.txt").write_text("not in the release\n")
    _git("add", ".", cwd=iree)
    _git("commit", "-q", "-m", "after the release", cwd=iree)
    commit = _git("rev-parse", f"v{IREE_SOURCE_VERSION}^{{commit}}", cwd=iree)
    return {"url": iree.as_uri(), "commit": commit, "flatcc": flatcc[0], "printf": printf[1]}


def _run(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    """The fetch script with a clean environment: nothing of the caller's IREE/Renode/WAND settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WAND_", "PYRENODE_", "GIT_", "XDG_")) and k != "IREE_SOURCE_DIR"
    }
    env.update(GIT_ISOLATION)
    env.update(HOME=str(tmp_path / "home"), WAND_CACHE_DIR=str(tmp_path / "cache"), WAND_ENV_FILE=str(tmp_path / "env.sh"))
    env.update(variables)
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", str(SCRIPT)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def _sourced(env_file: Path, name: str, **preset: str) -> str:
    """What ``name`` is after ``source env_file`` in a shell where only ``preset`` is set."""
    env = {"PATH": os.environ["PATH"], **preset}
    done = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "$1"; printf %s "${{{name}:-}}"', "bash", str(env_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_fetches_the_tag_with_both_submodules_and_the_env_file_names_it(tmp_path, upstream):
    xdg = tmp_path / "xdg"
    env = {"WAND_IREE_GIT_URL": upstream["url"], "WAND_IREE_EXPECTED_COMMIT": upstream["commit"], "XDG_CACHE_HOME": str(xdg)}
    done = _run(tmp_path, **env, WAND_CACHE_DIR="")  # empty: the default under XDG_CACHE_HOME
    assert done.returncode == 0, done.stderr
    tree = xdg / "wand" / TREE_NAME

    source = check_iree_source(tree)
    assert source.version == IREE_SOURCE_VERSION
    assert source.commit == upstream["commit"]
    assert not (tree / "after-the-tag.txt").exists()
    assert (tree / "third_party/flatcc/include/flatcc/flatcc.h").is_file()
    assert (tree / "third_party/printf/src/printf/printf.c").is_file()
    assert _git("rev-parse", "HEAD", cwd=tree / "third_party/flatcc") == upstream["flatcc"]
    assert _git("rev-parse", "HEAD", cwd=tree / "third_party/printf") == upstream["printf"]
    assert _git("rev-parse", "--is-shallow-repository", cwd=tree) == "true"
    assert _git("rev-parse", "--is-shallow-repository", cwd=tree / "third_party/flatcc") == "true"
    assert not list((xdg / "wand").glob(".iree-*partial*"))

    env_file = tmp_path / "env.sh"
    assert _sourced(env_file, "IREE_SOURCE_DIR") == str(tree)
    assert _sourced(env_file, "IREE_SOURCE_DIR", IREE_SOURCE_DIR="/chosen/by/the/user") == "/chosen/by/the/user"


def test_refuses_a_tag_at_another_commit_and_keeps_nothing(tmp_path, upstream):
    done = _run(tmp_path, WAND_IREE_GIT_URL=upstream["url"])  # the real pin: the stand-in's tag is not it
    assert done.returncode == 1
    lines = _lines(done)
    assert len(lines) == 1, lines
    assert "refusing" in lines[0] and upstream["commit"] in lines[0] and IREE_SOURCE_COMMIT in lines[0]
    assert "IREE_SOURCE_DIR" in lines[0]
    cache = tmp_path / "cache"
    assert sorted(p.name for p in cache.iterdir() if p.name != ".fetch.lock") == []
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == ""

    # A later run that would accept the stand-in's commit finds nothing cached to accept.
    later = _run(tmp_path, WAND_IREE_GIT_URL=UNREACHABLE[0], WAND_IREE_EXPECTED_COMMIT=upstream["commit"])
    assert later.returncode == 0
    assert any("could not fetch" in line for line in _lines(later)), _lines(later)
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == ""


def test_a_cached_tree_at_another_commit_is_moved_aside(tmp_path, upstream):
    first = _run(tmp_path, WAND_IREE_GIT_URL=upstream["url"], WAND_IREE_EXPECTED_COMMIT=upstream["commit"])
    assert first.returncode == 0, first.stderr
    tree = tmp_path / "cache" / TREE_NAME
    assert tree.is_dir()

    other = "1" * 40
    done = _run(tmp_path, WAND_IREE_GIT_URL=UNREACHABLE[0], WAND_IREE_EXPECTED_COMMIT=other)
    assert done.returncode == 0, done.stderr
    assert not tree.exists()
    aside = list((tmp_path / "cache").glob(f"{TREE_NAME}.rejected-*"))
    assert len(aside) == 1 and (aside[0] / "runtime" / "version.json").is_file()
    assert any(f"moved it to {aside[0]}" in line for line in _lines(done)), _lines(done)
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == ""


@pytest.mark.parametrize("url", UNREACHABLE)
def test_without_network_one_line_names_iree_source_dir_and_setup_goes_on(tmp_path, url):
    started = time.monotonic()
    done = _run(tmp_path, WAND_IREE_GIT_URL=url)
    assert time.monotonic() - started < 60
    assert done.returncode == 0, done.stderr
    lines = _lines(done)
    assert len(lines) == 1, lines
    assert "could not fetch IREE" in lines[0] and url in lines[0] and "IREE_SOURCE_DIR" in lines[0]
    assert not (tmp_path / "cache" / TREE_NAME).exists()
    assert (tmp_path / "env.sh").is_file()
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == ""


def test_a_second_run_only_checks_and_needs_no_network(tmp_path, upstream):
    pin = {"WAND_IREE_EXPECTED_COMMIT": upstream["commit"]}
    first = _run(tmp_path, WAND_IREE_GIT_URL=upstream["url"], **pin)
    assert first.returncode == 0, first.stderr
    tree = tmp_path / "cache" / TREE_NAME
    marker = tree / "runtime" / "version.json"
    before = marker.stat().st_mtime_ns

    for url in UNREACHABLE:
        again = _run(tmp_path, WAND_IREE_GIT_URL=url, **pin)
        assert again.returncode == 0, again.stderr
        lines = _lines(again)
        assert [line for line in lines if "WAND_IREE_EXPECTED_COMMIT" not in line] == [], lines
    assert marker.stat().st_mtime_ns == before
    assert check_iree_source(tree).commit == upstream["commit"]
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == str(tree)


def test_a_set_iree_source_dir_is_used_as_is(tmp_path):
    done = _run(tmp_path, IREE_SOURCE_DIR=str(tmp_path / "mine"), WAND_IREE_GIT_URL=UNREACHABLE[0])
    assert done.returncode == 0, done.stderr
    assert _lines(done) == []
    assert not (tmp_path / "cache" / TREE_NAME).exists()
    assert _sourced(tmp_path / "env.sh", "IREE_SOURCE_DIR") == ""


# --- Renode (WAND_WITH_RENODE=1) ----------------------------------------------------------------------


def _arch_package(path: Path, with_renode: bool = True) -> Path:
    """A stand-in for the official mono Arch package: opt/renode/bin/Renode.exe, as pyrenode3 unpacks it."""
    content = path.parent / "pkgroot"
    bin_dir = content / "opt" / "renode" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / ("Renode.exe" if with_renode else "Other.exe")).write_bytes(b"MZ")
    (content / ".PKGINFO").write_text("pkgname = renode\npkgver = 1.15.1-1\n")
    with tarfile.open(path, "w:xz") as tar:
        for item in (".PKGINFO", "opt"):
            tar.add(content / item, arcname=item)
    return path


def test_with_renode_downloads_the_package_and_names_it_as_pyrenode_pkg(tmp_path):
    package = _arch_package(tmp_path / "served" / RENODE_PKG_NAME)
    done = _run(tmp_path, IREE_SOURCE_DIR="/given", WAND_WITH_RENODE="1", WAND_RENODE_PKG_URL=package.as_uri())
    assert done.returncode == 0, done.stderr
    cached = tmp_path / "cache" / RENODE_PKG_NAME
    assert cached.read_bytes() == package.read_bytes()
    env_file = tmp_path / "env.sh"
    assert _sourced(env_file, "PYRENODE_PKG") == str(cached)
    assert _sourced(env_file, "PYRENODE_RUNTIME") == "mono"
    assert renode_environment({"PYRENODE_PKG": _sourced(env_file, "PYRENODE_PKG")}) == {"PYRENODE_PKG": str(cached)}
    # A build directory chosen by the user wins: pyrenode3 refuses both at once.
    assert _sourced(env_file, "PYRENODE_PKG", PYRENODE_BUILD_DIR="/renode/build") == ""

    again = _run(tmp_path, IREE_SOURCE_DIR="/given", WAND_WITH_RENODE="1", WAND_RENODE_PKG_URL=UNREACHABLE[1])
    assert again.returncode == 0 and _lines(again) == [], _lines(again)
    assert _sourced(env_file, "PYRENODE_PKG") == str(cached)


def test_with_renode_and_a_build_dir_downloads_nothing(tmp_path):
    package = _arch_package(tmp_path / "served" / RENODE_PKG_NAME)
    done = _run(
        tmp_path,
        IREE_SOURCE_DIR="/given",
        WAND_WITH_RENODE="1",
        WAND_RENODE_PKG_URL=package.as_uri(),
        PYRENODE_BUILD_DIR=str(tmp_path),
        PYRENODE_RUNTIME="mono",
    )
    assert done.returncode == 0, done.stderr
    assert _lines(done) == []
    assert not (tmp_path / "cache" / RENODE_PKG_NAME).exists()
    assert _sourced(tmp_path / "env.sh", "PYRENODE_PKG") == ""


@pytest.mark.parametrize("served", ["unreachable", "not a Renode package"])
def test_with_renode_but_no_package_one_line_names_the_variables(tmp_path, served):
    if served == "unreachable":
        url = UNREACHABLE[1]
    else:
        url = _arch_package(tmp_path / "served" / RENODE_PKG_NAME, with_renode=False).as_uri()
    done = _run(tmp_path, IREE_SOURCE_DIR="/given", WAND_WITH_RENODE="1", WAND_RENODE_PKG_URL=url)
    assert done.returncode == 0, done.stderr
    lines = _lines(done)
    if served == "unreachable":
        assert len(lines) == 1, lines
    else:  # it was reachable: the download was announced, then refused
        assert len(lines) == 2 and "downloading Renode" in lines[0], lines
    assert "PYRENODE_PKG" in lines[-1] and "PYRENODE_BUILD_DIR" in lines[-1]
    assert not list((tmp_path / "cache").glob("renode-*"))
    assert _sourced(tmp_path / "env.sh", "PYRENODE_PKG") == ""
