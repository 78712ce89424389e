#!/usr/bin/env bash
# Installs everything wand needs on a fresh Debian 12 machine: the RISC-V toolchain, QEMU and the
# fuzzing compiler from apt, then a Python 3.11 virtualenv in .venv with the pinned packages, then
# what no registry has (scripts/fetch_upstream.sh): the IREE runtime source, unless IREE_SOURCE_DIR
# is set. With WAND_WITH_RENODE=1 also mono (apt), pythonnet (PyPI) and pyrenode3 (from the folder
# WAND_PYRENODE3_SOURCE, else its git repository) and, unless PYRENODE_PKG / PYRENODE_BUILD_DIR is
# set, the official Renode package. With WAND_WITH_SERVERS=1 also PostgreSQL and Redis (apt) and the
# optional extras postgres + celery (dagster-postgres, dagster-celery): a shared instance and the Celery
# workers (tests start private servers on loopback; nothing is started here). Idempotent: a second run
# only checks (no network).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc ninja-build clang libclang-rt-14-dev chromium chromium-driver fonts-liberation)
WITH_RENODE="${WAND_WITH_RENODE:-0}"
if [ "$WITH_RENODE" = 1 ]; then APT_PACKAGES+=(mono-complete); fi
WITH_SERVERS="${WAND_WITH_SERVERS:-0}"
EXTRAS="dev"
if [ "$WITH_SERVERS" = 1 ]; then APT_PACKAGES+=(postgresql redis-server); EXTRAS="dev,postgres,celery"; fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "wand setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${WAND_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "wand setup: Python 3.11 is required (set WAND_PYTHON)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.wand-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) [$EXTRAS]"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "wand setup: installing Python packages into .venv (first time: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

if [ "$WITH_RENODE" = 1 ]; then
  has() { .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' "$1"; }
  if ! has pythonnet; then
    echo "wand setup: installing pythonnet into .venv"
    .venv/bin/python -m pip install -q "pythonnet>=3.0.1,<4"
  fi
  if ! has pyrenode3; then
    pyrenode3_from="${WAND_PYRENODE3_SOURCE:-git+https://github.com/antmicro/pyrenode3}"
    pip_log="$(mktemp)"
    if GIT_TERMINAL_PROMPT=0 timeout 900 .venv/bin/python -m pip install -q "$pyrenode3_from" >"$pip_log" 2>&1; then
      echo "wand setup: installed pyrenode3 into .venv from $pyrenode3_from"
    else
      why="$(grep -m 1 -E 'fatal:|ERROR:' "$pip_log" || grep -m 1 -i error "$pip_log" || tail -n 1 "$pip_log")"
      why="$(echo "$why" | sed -e 's/^[[:space:]]*//' -e 's/^fatal: //')"
      echo "wand setup: could not install pyrenode3 from $pyrenode3_from (${why:0:160}); the Renode backend" \
        "stays off: set WAND_PYRENODE3_SOURCE to a pyrenode3 source folder" >&2
    fi
    rm -f "$pip_log"
  fi
fi

WAND_WITH_RENODE="$WITH_RENODE" bash scripts/fetch_upstream.sh
