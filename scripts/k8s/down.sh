#!/usr/bin/env bash
# Stop the test control plane started by scripts/k8s/up.sh and remove its
# state dir (${DRILLCTL_K8S_DIR:-/tmp/drillctl-k8s}). Only processes recorded
# in the state dir's pid files are stopped, and the real node's pods (the processes in its cgroup);
# its mounts are unmounted before anything is removed. The binary and image cache is kept.
#
# Usage: bash scripts/k8s/down.sh [--keep-state]   # --keep-state: logs stay
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep_state=false
case ${1:-} in
  "") ;;
  --keep-state) keep_state=true ;;
  *) die "usage: down.sh [--keep-state]" ;;
esac

if [[ ! -d $STATE_DIR ]]; then
  log "no cluster state in $STATE_DIR; nothing to do"
  exit 0
fi
[[ -f $STATE_DIR/$STATE_MARKER ]] || die "$STATE_DIR is not a drillctl cluster state dir; not touching it"

exec 9>"$STATE_DIR.lock"
flock -w 120 9 || die "could not lock $STATE_DIR.lock (is up.sh running?)"

stop_all
if $keep_state; then
  log "stopped; state kept in $STATE_DIR"
else
  rm -rf --one-file-system "$STATE_DIR"
  rm -f "$STATE_DIR.lock"
  log "stopped and removed $STATE_DIR"
fi
