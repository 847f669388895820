#!/usr/bin/env bash
# Installs the pinned Toxiproxy server as $DRILLCTL_BIN/toxiproxy-server (default .tools/bin).
# Skips the build when the binary there already reports the pinned version.
set -euo pipefail
VERSION="v2.12.0"
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir="${DRILLCTL_BIN:-$here/.tools/bin}"
target="$bin_dir/toxiproxy-server"

if [ -x "$target" ] && "$target" -version 2>/dev/null | grep -q "${VERSION#v}"; then
  exit 0
fi
command -v go >/dev/null || { echo "install-toxiproxy: Go is required (go install github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION)" >&2; exit 1; }
mkdir -p "$bin_dir"
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
echo "install-toxiproxy: building toxiproxy-server $VERSION (first time only)" >&2
GOBIN="$gobin" GOFLAGS=-buildvcs=false go install -trimpath -ldflags="-s -w -X github.com/Shopify/toxiproxy/v2.Version=${VERSION#v}" "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION"
mv "$gobin/server" "$target"
"$target" -version >&2
