"""Whether Renode and pyrenode3 are installed and configured, and which Renode it is, without loading mono."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from wand_assets.device.qemu import SimulatorError

ENV_PKG, ENV_BUILD_DIR, ENV_RUNTIME, ENV_BIN = "PYRENODE_PKG", "PYRENODE_BUILD_DIR", "PYRENODE_RUNTIME", "PYRENODE_BIN"
INSTALL_HINT = (
    "Renode is not available to this pipeline. Install Renode (the official package from "
    "https://builds.renode.io, or a build of its source tree, v1.15.1 tested), pythonnet from PyPI and "
    "pyrenode3 from its git repository (pip install 'git+https://github.com/antmicro/pyrenode3'), then set "
    f"{ENV_PKG} to the Renode package file, or {ENV_BUILD_DIR} to the Renode build directory together "
    f"with {ENV_RUNTIME}=mono (or coreclr)."
)


class RenodeUnavailable(SimulatorError):
    """Renode or pyrenode3 is not installed or not configured; the message says what to set."""


def renode_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The pyrenode3 variables that are set; raises :class:`RenodeUnavailable` naming what is missing."""
    source = os.environ if env is None else env
    found = {k: source[k] for k in (ENV_PKG, ENV_BUILD_DIR, ENV_RUNTIME, ENV_BIN) if source.get(k)}
    if ENV_PKG in found or ENV_BIN in found:
        where = found[ENV_PKG] if ENV_PKG in found else found[ENV_BIN]  # the values in found are non-empty
        if not Path(where).exists():
            raise RenodeUnavailable(f"{ENV_PKG if ENV_PKG in found else ENV_BIN}={where} does not exist. {INSTALL_HINT}")
        return found
    if ENV_BUILD_DIR in found:
        if ENV_RUNTIME not in found:
            raise RenodeUnavailable(f"{ENV_BUILD_DIR} is set but {ENV_RUNTIME} is not (mono or coreclr). {INSTALL_HINT}")
        if not Path(found[ENV_BUILD_DIR]).is_dir():
            raise RenodeUnavailable(f"{ENV_BUILD_DIR}={found[ENV_BUILD_DIR]} is not a directory. {INSTALL_HINT}")
        return found
    raise RenodeUnavailable(f"neither {ENV_PKG} nor {ENV_BUILD_DIR} + {ENV_RUNTIME} is set. {INSTALL_HINT}")


def check_renode_available(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment and pyrenode3 present (without loading mono). Returns the pyrenode3 variables."""
    found = renode_environment(env)
    if importlib.util.find_spec("pyrenode3") is None:
        raise RenodeUnavailable(f"the Python package pyrenode3 is not installed in {sys.executable}. {INSTALL_HINT}")
    return found


def renode_version(env: dict[str, str] | None = None) -> str:
    """Renode's version as read from the build tree or the package name (no mono needed)."""
    found = check_renode_available(env)
    if ENV_BUILD_DIR in found:
        version_file = Path(found[ENV_BUILD_DIR]) / "tools" / "version"
        version = version_file.read_text().strip() if version_file.exists() else "unknown version"
        return f"Renode {version} ({found[ENV_RUNTIME]}, source build)"
    name = Path(found.get(ENV_PKG) or found[ENV_BIN]).name
    match = re.search(r"(\d+\.\d+\.\d+[^_/]*?)(?:\.linux|\.tar|\.pkg|$)", name)
    return f"Renode {match.group(1) if match else name} ({name})"
