#!/usr/bin/env bash
# The part of setup that the package registries cannot provide, fetched from upstream into a cache
# folder and made known to scripts/materialize.sh and scripts/test.sh through an env file:
#
#   - the IREE runtime source at the tag that matches the pinned compiler (commit checked), with
#     the two submodules the bare-metal build needs, unless IREE_SOURCE_DIR is already set;
#   - with WAND_WITH_RENODE=1, the official Renode package (mono, Arch format: what pyrenode3
#     loads from PYRENODE_PKG), unless PYRENODE_PKG, PYRENODE_BUILD_DIR or PYRENODE_BIN is set.
#
# Runs on its own (no apt, no pip). A cache that is present is only checked, without network.
# What cannot be fetched is reported in one line naming the variable that provides it, and the
# script still succeeds (the host half of the pipeline needs neither). It fails (status 1, one line)
# only when upstream is not what was pinned: the IREE tag is at another commit.
#
# Variables: WAND_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/wand), WAND_ENV_FILE (default
# .venv/wand-env.sh), WAND_IREE_GIT_URL, WAND_RENODE_PKG_URL, WAND_FETCH_TIMEOUT (seconds per
# download, default 900), and for tests only WAND_IREE_EXPECTED_COMMIT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

say() { echo "wand setup: $*" >&2; }

# The pins live once: the IREE release in pyproject.toml (the iree-base-compiler pin, which the
# Python side reads back from the installed wheel), the commit of its tag in
# wand_assets/device/firmware_build.py.
IREE_VERSION="$(sed -n 's/^ *"iree-base-compiler==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
IREE_COMMIT="$(sed -n 's/^IREE_SOURCE_COMMIT = "\([^"]*\)".*/\1/p' "$ROOT/wand_assets/device/firmware_build.py" | head -n 1)"
[[ "$IREE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ && "$IREE_COMMIT" =~ ^[0-9a-f]{40}$ ]] \
  || { say "cannot read the iree-base-compiler pin from pyproject.toml / IREE_SOURCE_COMMIT from wand_assets/device/firmware_build.py"; exit 1; }
if [ -n "${WAND_IREE_EXPECTED_COMMIT:-}" ]; then
  [[ "$WAND_IREE_EXPECTED_COMMIT" =~ ^[0-9a-f]{40}$ ]] \
    || { say "WAND_IREE_EXPECTED_COMMIT must be a full 40-digit commit id"; exit 1; }
  say "WAND_IREE_EXPECTED_COMMIT overrides the pinned IREE commit $IREE_COMMIT (for tests only)"
  IREE_COMMIT="$WAND_IREE_EXPECTED_COMMIT"
fi
IREE_TAG="v$IREE_VERSION"
IREE_SUBMODULES=(third_party/flatcc third_party/printf)
IREE_URL="${WAND_IREE_GIT_URL:-https://github.com/iree-org/iree.git}"

RENODE_VERSION="1.15.1"
RENODE_PKG_NAME="renode-$RENODE_VERSION-1-x86_64.pkg.tar.xz"
RENODE_URL="${WAND_RENODE_PKG_URL:-https://github.com/renode/renode/releases/download/v$RENODE_VERSION/$RENODE_PKG_NAME}"

CACHE="${WAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wand}"
ENV_FILE="${WAND_ENV_FILE:-$ROOT/.venv/wand-env.sh}"
TIMEOUT="${WAND_FETCH_TIMEOUT:-900}"
IREE_DIR="$CACHE/iree-$IREE_VERSION"
RENODE_PKG="$CACHE/$RENODE_PKG_NAME"

export GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="${GIT_SSH_COMMAND:-ssh -o BatchMode=yes -o ConnectTimeout=20}"
GIT=(git -c advice.detachedHead=false -c http.lowSpeedLimit=1000 -c http.lowSpeedTime=60)
case "$IREE_URL" in
  file://* | /*) GIT+=(-c protocol.file.allow=always) ;;  # a local stand-in for upstream (tests)
esac

LOG="$(mktemp)"
TMP_TREE=""
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  rm -f "$LOG" "$LOG.refs"
  if [ -n "$TMP_TREE" ]; then rm -rf "$TMP_TREE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What a failed command said, in one line: its first error line, else its last line.
reason() {
  local line
  line="$(grep -m 1 -E '^(fatal|error|curl)[:(]' "$LOG" || sed -e '/^[[:space:]]*$/d' "$LOG" | tail -n 1)"
  line="${line#fatal: }"
  line="${line#error: }"
  line="${line:-no details}"
  echo "${line:0:200}"
}

# --- IREE --------------------------------------------------------------------------------------------

iree_tree_ok() {  # $1: a tree; true when it is the pinned commit with both submodules checked out
  local tree="$1" head status
  [ -e "$tree/.git" ] && [ -f "$tree/runtime/version.json" ] || return 1
  grep -Eq "\"package-version\"[[:space:]]*:[[:space:]]*\"${IREE_VERSION//./\\.}([^0-9]|\")" "$tree/runtime/version.json" \
    || return 1
  head="$(git -C "$tree" rev-parse --verify -q HEAD 2>/dev/null)" || return 1
  [ "$head" = "$IREE_COMMIT" ] || return 1
  status="$(git -C "$tree" submodule status -- "${IREE_SUBMODULES[@]}" 2>/dev/null)" || return 1
  # One line per submodule, each starting with a space: initialised and at the recorded commit.
  [ "$(grep -c '^ ' <<<"$status")" -eq "${#IREE_SUBMODULES[@]}" ]
}

offline_iree() {
  say "could not fetch IREE $IREE_TAG from $IREE_URL ($1); the host half of the pipeline runs without it," \
    "for the firmware set IREE_SOURCE_DIR to an IREE $IREE_TAG source tree with ${IREE_SUBMODULES[*]} (or rerun setup online)"
}

fetch_iree() {
  local remote peeled plain got
  if ! timeout 120 "${GIT[@]}" ls-remote "$IREE_URL" "refs/tags/$IREE_TAG" "refs/tags/$IREE_TAG^{}" >"$LOG.refs" 2>"$LOG"; then
    offline_iree "$(reason)"; rm -f "$LOG.refs"; return 0
  fi
  peeled="$(awk -v r="refs/tags/$IREE_TAG^{}" '$2 == r {print $1}' "$LOG.refs")"
  plain="$(awk -v r="refs/tags/$IREE_TAG" '$2 == r {print $1}' "$LOG.refs")"
  rm -f "$LOG.refs"
  remote="${peeled:-$plain}"
  if [ -z "$remote" ]; then
    offline_iree "no tag $IREE_TAG there"; return 0
  fi
  if [ "$remote" != "$IREE_COMMIT" ]; then
    say "refusing IREE $IREE_TAG from $IREE_URL: the tag is commit $remote, expected $IREE_COMMIT; nothing was" \
      "downloaded; set IREE_SOURCE_DIR to a trusted IREE $IREE_TAG tree"
    return 1
  fi
  say "downloading IREE $IREE_TAG (shallow, with ${IREE_SUBMODULES[*]}) into $IREE_DIR"
  TMP_TREE="$CACHE/.iree-$IREE_VERSION.partial.$$"  # under the lock; never accepted by name
  mkdir "$TMP_TREE"
  if ! timeout "$TIMEOUT" "${GIT[@]}" clone -q --depth 1 --single-branch --branch "$IREE_TAG" "$IREE_URL" "$TMP_TREE" \
    >"$LOG" 2>&1 \
    || ! timeout "$TIMEOUT" "${GIT[@]}" -C "$TMP_TREE" submodule update -q --init --depth 1 -- "${IREE_SUBMODULES[@]}" \
      >"$LOG" 2>&1; then
    offline_iree "$(reason)"; rm -rf "$TMP_TREE"; TMP_TREE=""; return 0
  fi
  got="$(git -C "$TMP_TREE" rev-parse HEAD)"
  if [ "$got" != "$IREE_COMMIT" ] || ! iree_tree_ok "$TMP_TREE"; then
    rm -rf "$TMP_TREE"; TMP_TREE=""
    say "refusing IREE $IREE_TAG from $IREE_URL: the checkout is commit $got, expected $IREE_COMMIT with" \
      "${IREE_SUBMODULES[*]} and version $IREE_VERSION; removed it; set IREE_SOURCE_DIR to a trusted IREE $IREE_TAG tree"
    return 1
  fi
  mv -T "$TMP_TREE" "$IREE_DIR"
  TMP_TREE=""
}

ensure_iree() {
  if [ -e "$IREE_DIR" ] && ! iree_tree_ok "$IREE_DIR"; then
    local aside
    aside="$IREE_DIR.rejected-$(date +%Y%m%d%H%M%S)"
    mv -T "$IREE_DIR" "$aside"
    say "the cached $IREE_DIR is not IREE $IREE_TAG at $IREE_COMMIT with ${IREE_SUBMODULES[*]}; moved it to $aside"
  fi
  if [ ! -e "$IREE_DIR" ]; then
    fetch_iree || return 1
  fi
}

# --- Renode ------------------------------------------------------------------------------------------

renode_pkg_ok() {  # the official mono package: an Arch package with Renode.exe under opt/renode/bin
  [ -s "$1" ] && tar -tJf "$1" 2>/dev/null | grep -Eq '^(\./)?opt/renode/bin/Renode\.exe$'
}

offline_renode() {
  say "could not download Renode $RENODE_VERSION from $1 ($(reason)); the Renode backend stays off: set" \
    "PYRENODE_PKG to the Renode $RENODE_VERSION Arch package ($RENODE_PKG_NAME), or PYRENODE_BUILD_DIR to a Renode" \
    "build with PYRENODE_RUNTIME=mono"
}

ensure_renode() {
  local where="$1" part
  [ -f "$RENODE_PKG" ] && return 0
  part="$RENODE_PKG.partial"
  # First its first byte, quickly: offline, this is all that is tried.
  if ! timeout 120 curl -fsSL --connect-timeout 20 --max-time 100 -r 0-0 -o /dev/null "$where" >"$LOG" 2>&1; then
    offline_renode "$where"; return 0
  fi
  say "downloading Renode $RENODE_VERSION ($RENODE_PKG_NAME) into $CACHE"
  if ! timeout "$TIMEOUT" curl -fsSL --connect-timeout 20 --retry 2 --max-time "$TIMEOUT" -o "$part" "$where" >"$LOG" 2>&1; then
    rm -f "$part"; offline_renode "$where"; return 0
  fi
  if ! renode_pkg_ok "$part"; then
    rm -f "$part"
    say "what $where gave is not a Renode package (no opt/renode/bin/Renode.exe), removed it; the Renode backend" \
      "stays off: set PYRENODE_PKG to the Renode $RENODE_VERSION Arch package, or PYRENODE_BUILD_DIR to a Renode" \
      "build with PYRENODE_RUNTIME=mono"
    return 0
  fi
  mv -f "$part" "$RENODE_PKG"
}

# --- main --------------------------------------------------------------------------------------------

mkdir -p "$CACHE"
exec 9>"$CACHE/.fetch.lock"
flock -w "$TIMEOUT" 9 || { say "another setup holds $CACHE/.fetch.lock"; exit 1; }
rm -rf "$CACHE/.iree-$IREE_VERSION.partial."* "$RENODE_PKG.partial"  # left by an interrupted run

status=0
if [ -z "${IREE_SOURCE_DIR:-}" ]; then
  ensure_iree || status=1
fi
if [ "${WAND_WITH_RENODE:-0}" = 1 ] && [ -z "${PYRENODE_PKG:-}${PYRENODE_BUILD_DIR:-}${PYRENODE_BIN:-}" ]; then
  ensure_renode "$RENODE_URL"
fi

# The env file: defaults only, a variable already set in the environment wins.
mkdir -p "$(dirname "$ENV_FILE")"
{
  echo "# Written by scripts/fetch_upstream.sh; sourced by scripts/materialize.sh and scripts/test.sh."
  echo "# Defaults only: variables already set in the environment win."
  if [ -z "${IREE_SOURCE_DIR:-}" ] && [ -d "$IREE_DIR" ] && iree_tree_ok "$IREE_DIR"; then
    # shellcheck disable=SC2016  # the $ are for the file
    printf 'if [ -z "${IREE_SOURCE_DIR:-}" ]; then export IREE_SOURCE_DIR=%q; fi\n' "$IREE_DIR"
  fi
  if [ -f "$RENODE_PKG" ]; then
    # shellcheck disable=SC2016
    printf 'if [ -z "${PYRENODE_PKG:-}${PYRENODE_BUILD_DIR:-}${PYRENODE_BIN:-}" ]; then export PYRENODE_PKG=%q PYRENODE_RUNTIME=mono; fi\n' \
      "$RENODE_PKG"
  fi
} >"$ENV_FILE.tmp"
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
exit "$status"
