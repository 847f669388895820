# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# The real node of the test cluster: a kubelet (built from gobuild/node, the same k8s.io/kubernetes
# release as the control plane) on Debian's containerd and runc, beside the KWOK nodes.
# Sourced by lib.sh, not executed. docs/kubernetes-test-cluster.md says what it needs and why.
#
# Everything it owns is under $NODE_DIR (containerd's root and state, runc's root, network
# namespaces, the kubelet's root dir and pod logs) and the cgroup $NODE_CGROUP of every v1
# hierarchy, so it clashes neither with a system containerd nor with another test cluster.

NODE_DIR=$STATE_DIR/node
NODE_CACHE=$CACHE_DIR/k8s/node
NODE_BUILD_DIR=$BUILD_DIR/node
IMAGES_DIR=$K8S_SCRIPTS_DIR/images
# The kubelet refuses a loopback --node-ip, but a node name that is an IP becomes the node's
# InternalIP unchecked: the API server then reaches the kubelet on loopback, and hostNetwork pods
# get 127.0.0.1 as their IP.
NODE_NAME=127.0.0.1
NODE_LABEL=drillctl.io/real-node
# Only pods that tolerate this taint land on the real node: the tests written for KWOK nodes
# (images that do not exist, hundreds of pods) never do.
NODE_TAINT=$NODE_LABEL=true:NoSchedule
NODE_CGROUP=drillctl-k8s-$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-8)
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
NODE_COMPONENTS=(containerd kubelet)
# Images the real node runs, built locally (no registry): name:tag -> $NODE_CACHE/images/NAME.tar.
PAUSE_IMAGE=drillctl.local/pause:1
HELPER_IMAGE=drillctl.local/helper:1
TARGET_IMAGE=drillctl.local/target:1
NODE_IMAGES=(pause helper target)
# Set by the kubelet at start (protectKernelDefaults false) and put back by stop_node. Several test clusters
# may run real nodes at once: the first to start saves the machine's values, each registers its kubelet, and
# the last to stop (no other registered kubelet alive) puts them back. On tmpfs: gone at reboot, as they are.
NODE_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
SYSCTLS_DIR=/run/drillctl-k8s-sysctls
CGROUP_V1_HIERARCHIES=(cpu cpuacct cpuset memory devices freezer blkio pids systemd)
# runc also puts each container in the cgroup v2 hierarchy of a hybrid host (/sys/fs/cgroup/unified).
CGROUP_DIRS=("${CGROUP_V1_HIERARCHIES[@]}" unified)

# node_wanted: the real node is part of clusters started now (DRILLCTL_K8S_REAL_NODE, default 1).
node_wanted() { [[ ${DRILLCTL_K8S_REAL_NODE:-1} == 1 ]]; }
# node_in_state: the cluster in $STATE_DIR was started with the real node.
node_in_state() { [[ -f $STATE_DIR/node.enabled ]]; }

ctr_() { timeout 60 ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# ---- stopping (down.sh, and up.sh before it starts afresh) -----------------

# node_processes: pids in the node's cgroup (every pod's processes), in any hierarchy.
node_processes() {
  local h
  for h in "${CGROUP_DIRS[@]}"; do
    [[ -d /sys/fs/cgroup/$h/$NODE_CGROUP ]] || continue
    find "/sys/fs/cgroup/$h/$NODE_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# node_shims: pids of containerd shims serving our containerd (their command line names its socket).
node_shims() {
  local d
  for d in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF -- "-address $CONTAINERD_SOCK " && echo "${d#/proc/}"
  done
  return 0
}

# kill_until_gone WHAT PIDS_FUNCTION: SIGKILL what the function lists until it lists nothing.
kill_until_gone() {
  local what=$1 list=$2 pids deadline=$((SECONDS + 30))
  while pids=$($list) && [[ -n $pids ]]; do
    if ((SECONDS >= deadline)); then
      log "WARNING: $what still running after 30s: $(tr '\n' ' ' <<<"$pids")"
      return 1
    fi
    # shellcheck disable=SC2086  # a list of pids
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
}

# unmount_under DIR: every mount at or below DIR, deepest first (container rootfs, network
# namespaces, the kubelet's volumes), so that removing DIR never reaches into a mounted filesystem.
unmount_under() {
  local dir=$1 m
  [[ -d $dir ]] || return 0
  dir=$(realpath "$dir")
  # field 5 of mountinfo is the mount point (octal escapes for spaces: none under our state dir)
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r -u |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "WARNING: could not unmount $m"; done
}

remove_node_cgroups() {
  local h
  for h in "${CGROUP_DIRS[@]}"; do
    [[ -d /sys/fs/cgroup/$h/$NODE_CGROUP ]] || continue
    find "/sys/fs/cgroup/$h/$NODE_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null ||
      log "WARNING: could not remove every cgroup under /sys/fs/cgroup/$h/$NODE_CGROUP"
  done
}

# with_sysctls_lock COMMAND...: run a function under the machine-wide lock of the saved sysctls.
with_sysctls_lock() {
  mkdir -p "$SYSCTLS_DIR/holders"
  (
    exec 7>"$SYSCTLS_DIR/.lock"
    flock -w 60 7 || die "could not lock $SYSCTLS_DIR/.lock"
    "$@"
  )
}

# hold_sysctls PID: save the machine's values unless a running node saved them, and register PID (up.sh
# while it starts the kubelet, then the kubelet).
hold_sysctls() {
  local name
  if [[ ! -f $SYSCTLS_DIR/saved ]]; then
    for name in "${NODE_SYSCTLS[@]}"; do echo "$name $(<"/proc/sys/$name")"; done >"$SYSCTLS_DIR/saved"
  fi
  echo "$1" >"$SYSCTLS_DIR/holders/$NODE_CGROUP"
}

# release_sysctls: unregister; if no other registered kubelet is alive, put the saved values back.
release_sysctls() {
  local holder pid name value
  rm -f "$SYSCTLS_DIR/holders/$NODE_CGROUP"
  for holder in "$SYSCTLS_DIR"/holders/*; do
    [[ -f $holder ]] || continue
    pid=$(<"$holder")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) =~ /(kubelet|bash)( \(deleted\))?$ ]]; then
      log "sysctls left as the kubelet of another test cluster needs them (pid $pid)"
      return 0
    fi
    rm -f "$holder"
  done
  [[ -f $SYSCTLS_DIR/saved ]] || return 0
  while read -r name value; do
    [[ $(<"/proc/sys/$name") == "$value" ]] || { echo "$value" >"/proc/sys/$name" && log "restored $name=$value"; }
  done <"$SYSCTLS_DIR/saved"
  rm -f "$SYSCTLS_DIR/saved"
}

# stop_node: the kubelet, every pod's processes, the shims, containerd; then mounts, cgroups, sysctls.
stop_node() {
  [[ -d $NODE_DIR ]] || return 0
  stop_component kubelet
  kill_until_gone "pod processes in cgroup $NODE_CGROUP" node_processes || true
  kill_until_gone "containerd shims of $CONTAINERD_SOCK" node_shims || true
  stop_component containerd
  unmount_under "$NODE_DIR"
  remove_node_cgroups
  with_sysctls_lock release_sysctls
}

# ---- building (cached like the control plane) --------------------------------

node_stamp() {
  cat "$NODE_BUILD_DIR/go.mod" "$NODE_BUILD_DIR/go.sum" "$NODE_BUILD_DIR/pause/main.go" <(echo "$K8S_LDFLAGS") |
    sha256sum | cut -c1-16
}

# node_modules_agree: every module both build modules require (or replace) is at one version.
node_modules_agree() {
  python3 - "$BUILD_DIR/go.mod" "$NODE_BUILD_DIR/go.mod" <<'EOF'
import re, sys
def versions(path):
    text = open(path).read()
    return dict(re.findall(r"^\s+(\S+) (v\S+)(?: // indirect)?$", text, re.M)) | {
        "replace " + k: v for k, v in re.findall(r"^\s+(\S+) => \S+ (v\S+)$", text, re.M)}
a, b = (versions(p) for p in sys.argv[1:])
bad = [f"{k}: {a[k]} in {sys.argv[1]}, {b[k]} in {sys.argv[2]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
if bad:
    sys.exit("the control plane and the node are built from different module versions:\n  " + "\n  ".join(bad))
EOF
}

# build_node_binaries: kubelet and pause into $BIN_DIR (called under the build lock).
build_node_binaries() {
  local stamp name tmp start todo=()
  stamp=$(node_stamp)
  for name in kubelet pause; do binary_current "$name" "$stamp" || todo+=("$name"); done
  ((${#todo[@]})) || return 0
  node_modules_agree || die "gobuild/go.mod and gobuild/node/go.mod disagree (see above)"
  ensure_go
  mkdir -p "$BIN_DIR"
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"
  log "building ${todo[*]} ($K8S_VERSION) with $(go env GOVERSION); takes 5-15 min on 2 cores after the control plane"
  start=$SECONDS
  local pkgs=()
  for name in "${todo[@]}"; do
    case $name in
      kubelet) pkgs+=(k8s.io/kubernetes/cmd/kubelet) ;;
      pause) pkgs+=(./pause) ;;
    esac
  done
  (cd "$NODE_BUILD_DIR" && timeout "$BUILD_TIMEOUT" go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$tmp/" "${pkgs[@]}") >&2 ||
    { rm -rf "$tmp"; die "go build of ${pkgs[*]} failed"; }
  for name in "${todo[@]}"; do
    mv -f "$tmp/$name" "$BIN_DIR/$name"
    echo "$stamp" >"$BIN_DIR/.$name.stamp"
  done
  rm -rf "$tmp"
  log "built ${todo[*]} in $((SECONDS - start))s"
}

# The suite of the target image's root filesystem: the host's Debian release (its libfaketime).
debian_suite() { . /etc/os-release && echo "${VERSION_CODENAME:-bookworm}"; }
DEBIAN_MIRROR=${DRILLCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3 and libfaketime for the target; venv and python (the Dockerfile's `python -m venv`) for the
# base images of drillctl's own image (scripts/k8s/drillctl-image.sh).
DEBIAN_PACKAGES=python3,libfaketime,python3-venv,python-is-python3

rootfs_stamp() { echo "$(debian_suite) $DEBIAN_PACKAGES minbase v1" | sha256sum | cut -c1-16; }

image_stamp() { # NAME
  case $1 in
    pause) cat "$BIN_DIR/.pause.stamp" ;;
    helper) dpkg-query -W -f='${Version}' busybox-static ;;
    target) rootfs_stamp; cat "$IMAGES_DIR/target/server.py" ;;
  esac | cat - <(echo "$1 v1") | sha256sum | cut -c1-16
}

# debian_rootfs: $NODE_CACHE/rootfs.tar, a minimal Debian (debootstrap) with DEBIAN_PACKAGES, built once.
debian_rootfs() {
  local tar=$NODE_CACHE/rootfs.tar work start=$SECONDS
  [[ -f $tar && -f $NODE_CACHE/.rootfs.stamp && $(<"$NODE_CACHE/.rootfs.stamp") == "$(rootfs_stamp)" ]] && return 0
  work=$(mktemp -d "$NODE_CACHE/.rootfs.XXXXXX")
  log "debootstrap $(debian_suite) with $DEBIAN_PACKAGES from $DEBIAN_MIRROR (2-4 min)"
  if ! timeout "${BUILD_TIMEOUT:-3600}" debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$(debian_suite)" \
    "$work/rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    unmount_under "$work"
    rm -rf --one-file-system "$work"
    die "debootstrap failed"
  fi
  unmount_under "$work"
  rm -rf "$work"/rootfs/var/cache/apt/* "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/{doc,locale,man}/*
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  mv -f "$work/rootfs.tar" "$tar"
  rootfs_stamp >"$NODE_CACHE/.rootfs.stamp"
  rm -rf --one-file-system "$work"
  log "built the Debian root filesystem in $((SECONDS - start))s"
}

image_current() { [[ -f $NODE_CACHE/images/$1.tar && -f $NODE_CACHE/images/.$1.stamp && $(<"$NODE_CACHE/images/.$1.stamp") == "$(image_stamp "$1")" ]]; }

# build_image NAME: an OCI archive at $NODE_CACHE/images/NAME.tar, made with buildah from a root
# filesystem: pause (the static pause program), helper (busybox, what the drillctl loops run
# under), target (Debian's python3 and libfaketime from debian_rootfs, and images/target/server.py).
build_image() {
  local name=$1 work rootfs ref c
  work=$(mktemp -d "$NODE_CACHE/.image-$name.XXXXXX")
  rootfs=$work/rootfs
  mkdir -p "$rootfs"
  local buildah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
  case $name in
    pause)
      ref=$PAUSE_IMAGE
      cp "$BIN_DIR/pause" "$rootfs/pause"
      ;;
    helper)
      ref=$HELPER_IMAGE
      mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,tmp,etc}
      chmod 1777 "$rootfs/tmp"
      cp /bin/busybox "$rootfs/bin/busybox"
      chroot "$rootfs" /bin/busybox --install -s
      ;;
    target)
      ref=$TARGET_IMAGE
      debian_rootfs
      tar -C "$rootfs" -xf "$NODE_CACHE/rootfs.tar"
      mkdir -p "$rootfs/opt/target"
      cp "$IMAGES_DIR/target/server.py" "$rootfs/opt/target/server.py"
      ;;
  esac
  c=$("${buildah[@]}" from scratch)
  "${buildah[@]}" copy "$c" "$rootfs" / >/dev/null
  case $name in
    pause) "${buildah[@]}" config --entrypoint '["/pause"]' "$c" ;;
    helper) "${buildah[@]}" config --cmd '["sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$c" ;;
    target) "${buildah[@]}" config --cmd '["python3", "/opt/target/server.py"]' \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c" ;;
  esac
  "${buildah[@]}" commit -q --rm "$c" "$ref" >/dev/null
  "${buildah[@]}" push -q "$ref" "oci-archive:$work/$name.tar:$ref"
  mv -f "$work/$name.tar" "$NODE_CACHE/images/$name.tar"
  image_stamp "$name" >"$NODE_CACHE/images/.$name.stamp"
  rm -rf --one-file-system "$work"
}

build_node_images() {
  local name start
  mkdir -p "$NODE_CACHE/images"
  for name in "${NODE_IMAGES[@]}"; do
    image_current "$name" && continue
    start=$SECONDS
    build_image "$name"
    log "built image $name in $((SECONDS - start))s"
  done
}

# ---- starting -----------------------------------------------------------------

write_node_configs() {
  local n=$NODE_DIR pki=$STATE_DIR/pki
  mkdir -p "$n"/{containerd,cni,kubelet,pod-logs}
  cat >"$n/containerd/config.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$n/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
EOF
  # Pods without hostNetwork get a network namespace with loopback only: traffic never leaves
  # the machine, and the runtime reports its network ready (which the node's Ready needs).
  cat >"$n/cni/10-loopback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "drillctl-loopback", "plugins": [{"type": "loopback"}]}
EOF
  cat >"$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
# Kubernetes 1.35 refuses cgroup v1 unless told otherwise; these machines have only v1 hierarchies.
failCgroupV1: false
failSwapOn: false
podLogsDir: $n/pod-logs
staticPodPath: ""
resolvConf: /etc/resolv.conf
maxPods: 30
serializeImagePulls: false
shutdownGracePeriod: 0s
nodeStatusUpdateFrequency: 4s
nodeStatusReportFrequency: 20s
syncFrequency: 10s
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

component_healthy_node() {
  case $1 in
    containerd) ctr_ version >/dev/null 2>&1 ;;
    kubelet) [[ $(curl -sS --max-time "$CURL_TIMEOUT" "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" 2>/dev/null) == ok ]] ;;
  esac
}

# node_cgroup_root: the kubelet's --cgroup-root must exist in every hierarchy (cpuset's with cpus and mems).
node_cgroup_root() {
  local h d
  for h in "${CGROUP_V1_HIERARCHIES[@]}"; do
    [[ -d /sys/fs/cgroup/$h ]] || continue
    d=/sys/fs/cgroup/$h/$NODE_CGROUP
    mkdir -p "$d"
    if [[ $h == cpuset ]]; then
      cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$d/cpuset.cpus"
      cat /sys/fs/cgroup/cpuset/cpuset.mems >"$d/cpuset.mems"
    fi
  done
}

node_ready() {
  api_get "/api/v1/nodes/$NODE_NAME" 2>/dev/null | python3 -c '
import json, sys
node = json.load(sys.stdin)
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])) else 1)'
}

# start_node: containerd, the images, the kubelet; waits until the node is Ready.
start_node() {
  local pki=$STATE_DIR/pki name
  ((EUID == 0)) || die "the real node needs root (containerd, cgroups, mounts); DRILLCTL_K8S_REAL_NODE=0 starts the cluster without it"
  [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/pids ]] || die "the real node needs the cgroup v1 hierarchies (found: $(ls /sys/fs/cgroup))"
  write_node_configs
  write_kubeconfig "$NODE_DIR/kubelet.kubeconfig" kubelet-client "system:node:$NODE_NAME"
  log "starting containerd"
  setsid containerd --config "$NODE_DIR/containerd/config.toml" >"$STATE_DIR/logs/containerd.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$STATE_DIR/pids/containerd.pid"
  wait_node_component containerd || return 1
  for name in "${NODE_IMAGES[@]}"; do
    ctr_ images import "$NODE_CACHE/images/$name.tar" >/dev/null || { log "importing image $name failed"; return 1; }
  done
  node_cgroup_root
  with_sysctls_lock hold_sysctls $$
  start kubelet \
    --config="$NODE_DIR/kubelet/config.yaml" --kubeconfig="$NODE_DIR/kubelet.kubeconfig" \
    --root-dir="$NODE_DIR/kubelet" --cert-dir="$NODE_DIR/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-labels="type=real,$NODE_LABEL=true,topology.kubernetes.io/zone=zone-real,topology.kubernetes.io/region=local" \
    --register-with-taints="$NODE_TAINT" \
    --v=1
  with_sysctls_lock hold_sysctls "$(<"$STATE_DIR/pids/kubelet.pid")"
  wait_node_component kubelet || return 1
  wait_until "the real node $NODE_NAME Ready" "$START_TIMEOUT" node_ready || { tail -n 30 "$STATE_DIR/logs/kubelet.log" >&2; return 1; }
  # What tests need to know about the node (tests/fixtures/kube.py reads it).
  cat >"$STATE_DIR/node.json" <<EOF
{"name": "$NODE_NAME", "label": "$NODE_LABEL", "taint": "$NODE_LABEL", "cgroup": "$NODE_CGROUP",
 "images": {"pause": "$PAUSE_IMAGE", "helper": "$HELPER_IMAGE", "target": "$TARGET_IMAGE"},
 "containerd_socket": "$CONTAINERD_SOCK"}
EOF
  touch "$STATE_DIR/node.enabled"
  log "real node $NODE_NAME is Ready (containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'))"
}

wait_node_component() {
  local name=$1 deadline=$((SECONDS + START_TIMEOUT))
  while ! component_healthy_node "$name"; do
    if [[ -z $(pid_of "$name") ]] || ((SECONDS >= deadline)); then
      log "$name did not become healthy; last log lines:"
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
  log "$name is healthy"
}
