#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${WAND_DATASET:-}" ] && [ -d ../shared/data/magic_wand ]; then
  export WAND_DATASET="$(cd ../shared/data/magic_wand && pwd)"
fi
exec .venv/bin/python -m pytest -q -rs "$@"
