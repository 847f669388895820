#!/usr/bin/env bash
# Debian packages the faults and their tests use: libfaketime (clock.skew); chromium and
# chromium-driver (report.html rendered in a headless browser by tests/reporting/test_html_browser.py);
# prometheus (the prometheus probe's tests run a real server: tests/fixtures/prometheus.py).
# Installs only what is missing; needs root (or sudo) the first time.
set -euo pipefail
packages=(libfaketime faketime chromium chromium-driver prometheus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "install-system-packages: install ${missing[*]} with your package manager" >&2; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-system-packages: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
