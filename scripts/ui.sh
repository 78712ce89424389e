#!/usr/bin/env bash
# The web UI (Dagster's webserver and daemon: schedules, sensors and automation run while it is up) on
# 127.0.0.1, over the same run history and artifact root as scripts/materialize.sh. Works offline.
# Port: WAND_UI_PORT (default 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${WAND_UI_PORT:-3000}" "$@"
