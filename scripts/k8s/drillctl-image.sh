#!/usr/bin/env bash
# Build drillctl's own image from the repository's Dockerfile without a registry, and import it into the
# real node's containerd: buildah builds the Dockerfile with its base images given as build arguments,
# local images made from the cached Debian root filesystem (scripts/k8s/node.sh):
#   drillctl.local/python:1  Debian's python3 (3.11), venv, libfaketime: for PYTHON_IMAGE
#   drillctl.local/go:1      the same with this machine's Go toolchain (Debian's is too old): for GO_IMAGE
# The build's RUN steps reach the package registries (Go module proxy, PyPI, Debian) on the host's network,
# with the host's CA bundle in both base images. The image is cached by a hash of what the Dockerfile copies;
# buildah's storage keeps the bases, the toxiproxy stage (which no source change touches) and the last image.
#
# Usage: bash scripts/k8s/drillctl-image.sh    # prints the image reference as its last line
# Needs a running cluster with the real node (up.sh) in $DRILLCTL_K8S_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$K8S_SCRIPTS_DIR/../.." && pwd)
STORAGE=$NODE_CACHE/buildah
BUILDAH=(buildah --root "$STORAGE/root" --runroot "$STORAGE/run" --storage-driver overlay)
PYTHON_BASE=drillctl.local/python:1
GO_BASE=drillctl.local/go:1
TOXIPROXY_STAGE=drillctl.local/drillctl-toxiproxy-stage:cache
GO_ROOT=$(go env GOROOT 2>/dev/null) || die "no go on PATH (the Go base image copies its toolchain)"

# context_stamp: what the Dockerfile copies (see .dockerignore), and the Dockerfile itself.
context_stamp() {
  (cd "$REPO" && find Dockerfile pyproject.toml README.md orchestrator drills runbooks demo -type f \
    -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

base_stamp() { echo "$(rootfs_stamp) $(sha256sum </etc/ssl/certs/ca-certificates.crt) $("$GO_ROOT/bin/go" version) v1" | sha256sum | cut -c1-16; }

# base_images: the two bases in buildah's storage, from the cached root filesystem.
base_images() {
  local stamp c
  stamp=$(base_stamp)
  [[ -f $STORAGE/.base.stamp && $(<"$STORAGE/.base.stamp") == "$stamp" ]] && return 0
  debian_rootfs
  log "making the base images $PYTHON_BASE and $GO_BASE"
  c=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$c" "$NODE_CACHE/rootfs.tar" / >/dev/null
  "${BUILDAH[@]}" copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd '["python3"]' "$c"
  "${BUILDAH[@]}" commit -q --rm "$c" "$PYTHON_BASE" >/dev/null
  c=$("${BUILDAH[@]}" from "$PYTHON_BASE")
  "${BUILDAH[@]}" copy "$c" "$GO_ROOT" /usr/local/go >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOTOOLCHAIN=local --cmd '["go"]' "$c"
  "${BUILDAH[@]}" commit -q --rm "$c" "$GO_BASE" >/dev/null
  echo "$stamp" >"$STORAGE/.base.stamp"
}

# prune REF: every image but the bases, the toxiproxy stage and REF (earlier builds, their layers).
prune() {
  local name
  { "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^drillctl.local/drillctl:' | grep -vxF "$1" || true; } |
    while read -r name; do "${BUILDAH[@]}" rmi "$name" >/dev/null; done
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
}

main() {
  [[ -f $STATE_DIR/node.json ]] || die "no real node in $STATE_DIR (start the cluster with scripts/k8s/up.sh)"
  mkdir -p "$STORAGE" "$NODE_CACHE/images"
  exec 8>"$NODE_CACHE/.drillctl-image.lock"
  flock -w 3600 8 || die "could not lock $NODE_CACHE/.drillctl-image.lock"
  local stamp ref archive start=$SECONDS
  stamp=$(context_stamp)
  ref=drillctl.local/drillctl:$stamp
  archive=$NODE_CACHE/images/drillctl.tar
  if ! [[ -f $archive && -f $NODE_CACHE/images/.drillctl.stamp && $(<"$NODE_CACHE/images/.drillctl.stamp") == "$stamp" ]]; then
    base_images
    log "building $ref from $REPO/Dockerfile (GO_IMAGE=$GO_BASE PYTHON_IMAGE=$PYTHON_BASE)"
    local bud=("${BUILDAH[@]}" bud --quiet --layers --isolation chroot --pull=false
      --build-arg "GO_IMAGE=$GO_BASE" --build-arg "PYTHON_IMAGE=$PYTHON_BASE" -f "$REPO/Dockerfile")
    # The toxiproxy stage tagged, so that pruning keeps it as the next build's cache.
    "${bud[@]}" --target toxiproxy -t "$TOXIPROXY_STAGE" "$REPO" >&2 || die "buildah bud of the toxiproxy stage failed"
    "${bud[@]}" -t "$ref" "$REPO" >&2 || die "buildah bud of $REPO/Dockerfile failed"
    prune "$ref"
    rm -f "$archive.new"
    "${BUILDAH[@]}" push -q "$ref" "oci-archive:$archive.new:$ref"
    mv -f "$archive.new" "$archive"
    echo "$stamp" >"$NODE_CACHE/images/.drillctl.stamp"
    log "built $ref in $((SECONDS - start))s"
  fi
  if ! ctr_ images ls -q | grep -qxF "$ref"; then
    ctr_ images import "$archive" >/dev/null || die "importing $archive into $CONTAINERD_SOCK failed"
    log "imported $ref into the real node"
  fi
  local old
  for old in $(ctr_ images ls -q | grep '^drillctl.local/drillctl:' | grep -vxF "$ref" || true); do
    ctr_ images rm "$old" >/dev/null
  done
  echo "$ref"
}

main
