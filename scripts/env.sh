# Sourced by the run scripts (materialize.sh, ui.sh, test.sh) after setup.sh: what setup fetched (IREE
# source, Renode package) as defaults, and the one place that says where run history lives. The
# artifact root follows it ($DAGSTER_HOME/wand-artifacts unless WAND_ARTIFACT_ROOT is set), so the
# command line and the web UI always see the same runs and files. Variables already set win.
# shellcheck source=/dev/null
source "${WAND_ENV_FILE:-.venv/wand-env.sh}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
# An empty dagster.yaml means "everything under DAGSTER_HOME"; without one Dagster warns on every start.
[ -e "$DAGSTER_HOME/dagster.yaml" ] || : >"$DAGSTER_HOME/dagster.yaml"
