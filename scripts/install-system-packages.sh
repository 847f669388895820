#!/usr/bin/env bash
# Debian packages drillctl uses, in two sets, so `make demo` installs only what a drill needs:
#   demo: libfaketime and faketime (clock.skew runs targets under libfaketime);
#   test: those, plus chromium and chromium-driver (report.html rendered in a headless browser by
#         tests/reporting/test_html_browser.py) and prometheus (the prometheus probe's tests run a real
#         server: tests/fixtures/prometheus.py), prometheus-alertmanager (alert SLAs route pages
#         through a real Alertmanager: tests/fixtures/alerting.py) and postgresql (the PostgreSQL history's
#         tests run a real server: tests/fixtures/postgres.py).
# Usage: install-system-packages.sh [demo|test] (default test). Installs only what is missing; needs
# root (or sudo) the first time.
set -euo pipefail
demo=(libfaketime faketime)
test=("${demo[@]}" chromium chromium-driver prometheus)
test+=(patroni postgresql-15 etcd-server nats-server)  # stateful drills (issue 14): demo/stateful/, tests/stateful/
test+=(prometheus-alertmanager)  # alert SLAs (issue 15): tests/fixtures/alerting.py, drills/examples/detection.yaml
test+=(postgresql)  # history on PostgreSQL: tests/fixtures/postgres.py runs initdb and postgres
# The real node of the test cluster (issue 16): scripts/k8s/node.sh runs containerd and runc, a loopback-only
# pod network (the CNI loopback plugin), and builds its images with buildah (busybox, a debootstrap rootfs).
test+=(containerd runc containernetworking-plugins buildah debootstrap busybox-static)
case "${1:-test}" in
  demo) packages=("${demo[@]}") ;;
  test) packages=("${test[@]}") ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
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
