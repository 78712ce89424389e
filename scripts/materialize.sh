#!/usr/bin/env bash
# The main command: installs what is missing, then materializes the whole pipeline (every asset, every
# target partition) with run history kept in $DAGSTER_HOME so the web UI shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/python -m wand_assets materialize "$@"
