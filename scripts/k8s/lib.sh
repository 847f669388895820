# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for scripts/k8s/up.sh and scripts/k8s/down.sh.
# Sourced, not executed.

# ---- pinned versions --------------------------------------------------------
# K8S_VERSION and the staging modules (v0.35.4) are pinned in gobuild/go.mod;
# ETCD_VERSION is the go.etcd.io/etcd/server/v3 version that k8s.io/kubernetes
# v1.35.4 itself requires (gobuild/go.mod, go.sum). Change them together.
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.5
KWOK_VERSION=v0.7.0
# Oldest Go that builds k8s.io/kubernetes v1.35 (its go.mod says go 1.25.0).
GO_MIN_MINOR=25
# Toolchain fetched from the Go module proxy if the local Go is older.
GO_FALLBACK_TOOLCHAIN=go1.26.8

K8S_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Not "build/": the repository .gitignore ignores every build/ directory.
BUILD_DIR=$K8S_SCRIPTS_DIR/gobuild
STATE_DIR=${DRILLCTL_K8S_DIR:-/tmp/drillctl-k8s}
CACHE_DIR=${DRILLCTL_CACHE:-$HOME/.cache/drillctl}
BIN_DIR=$CACHE_DIR/k8s/$K8S_VERSION/bin
STATE_MARKER=.drillctl-k8s-state

# Components in start order; down.sh stops them in reverse order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# alive PID: the process exists and is not a zombie.
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

log() { printf '[k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid_of NAME: the pid recorded for NAME if that process is still alive and
# is still our binary (guards against pid reuse); empty otherwise.
pid_of() {
  local name=$1 pidfile=$STATE_DIR/pids/$1.pid pid exe
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  alive "$pid" || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ ${exe##*/} == "$name" || ${exe##*/} == "$name (deleted)" ]] || return 0
  printf '%s\n' "$pid"
}

# stop_component NAME [GRACE_SECONDS]: TERM, wait, then KILL.
stop_component() {
  local name=$1 grace=${2:-20} pid deadline
  pid=$(pid_of "$name")
  if [[ -n $pid ]]; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
      log "$name did not stop in ${grace}s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    fi
  fi
  rm -f "$STATE_DIR/pids/$name.pid"
}

stop_all() {
  local i
  stop_node
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "${COMPONENTS[i]}"
  done
}

# shellcheck source-path=SCRIPTDIR source=node.sh
source "$K8S_SCRIPTS_DIR/node.sh"
