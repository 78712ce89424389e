#!/usr/bin/env bash
# The test command: installs what is missing, checks lint, formatting and types (pyproject.toml
# configures all three; any finding fails the command), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# What setup fetched (IREE source, Renode package) as defaults; variables already set win. The suite
# keeps its run history in temporary instances, never in the user's DAGSTER_HOME.
# shellcheck source=/dev/null
source "${WAND_ENV_FILE:-.venv/wand-env.sh}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -rs "$@"
