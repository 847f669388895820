#!/usr/bin/env bash
# Installs the pinned Prometheus Pushgateway as $DRILLCTL_BIN/pushgateway (default .tools/bin), built from
# the Go module proxy. tests/test_pushgateway.py starts it on a free loopback port and reads
# back what `drillctl run --pushgateway` pushed. Skips the build when the binary there reports the pinned version.
set -euo pipefail
VERSION="v1.11.1"
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir="${DRILLCTL_BIN:-$here/.tools/bin}"
target="$bin_dir/pushgateway"

if [ -x "$target" ] && "$target" --version 2>&1 | grep -q "version ${VERSION#v} "; then
  exit 0
fi
command -v go >/dev/null || {
  echo "install-pushgateway: Go is required (go install github.com/prometheus/pushgateway@$VERSION)" >&2
  exit 1
}
mkdir -p "$bin_dir"
echo "install-pushgateway: building pushgateway $VERSION (first time only, about a minute)" >&2
# `go install github.com/prometheus/pushgateway@VERSION` would be the one-liner, but it also asks the proxy for
# the module's version list (to check deprecation), which the proxy refuses for this module (403). So: fetch the
# pinned version by its exact name, then build it inside its own module, with its own go.mod and go.sum.
dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/pushgateway@$VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || { echo "install-pushgateway: download of $VERSION failed" >&2; exit 1; }
(cd "$dir" && GOFLAGS=-buildvcs=false go build -trimpath \
  -ldflags="-s -w -X github.com/prometheus/common/version.Version=${VERSION#v}" -o "$target.tmp" .)
mv "$target.tmp" "$target"
"$target" --version >&2
