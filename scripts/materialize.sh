#!/usr/bin/env bash
# The main command: installs what is missing, then materializes the whole pipeline (every asset, every
# target partition) with run history kept in $DAGSTER_HOME so the web UI shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# What setup fetched (IREE source, Renode package) as defaults; variables already set win.
# shellcheck source=/dev/null
source "${WAND_ENV_FILE:-.venv/wand-env.sh}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
exec .venv/bin/python -m wand_assets materialize "$@"
