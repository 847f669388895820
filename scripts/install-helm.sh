#!/usr/bin/env bash
# Installs the pinned Helm 3 as $DRILLCTL_BIN/helm (default .tools/bin), built with `go install`
# from the Go module proxy. The chart tests (tests/charts/) lint, render and apply charts/drillctl with it.
# Skips the build when the binary there already reports the pinned version.
set -euo pipefail
VERSION="v3.22.0"
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir="${DRILLCTL_BIN:-$here/.tools/bin}"
target="$bin_dir/helm"

if [ -x "$target" ] && "$target" version --template '{{.Version}}' 2>/dev/null | grep -qx "$VERSION"; then
  exit 0
fi
command -v go >/dev/null || { echo "install-helm: Go is required (go install helm.sh/helm/v3/cmd/helm@$VERSION)" >&2; exit 1; }
mkdir -p "$bin_dir"
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
echo "install-helm: building helm $VERSION (first time only, about a few minutes)" >&2
GOBIN="$gobin" GOFLAGS=-buildvcs=false go install -trimpath \
  -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION" "helm.sh/helm/v3/cmd/helm@$VERSION"
mv "$gobin/helm" "$target"
"$target" version --template '{{.Version}}{{"\n"}}' >&2
