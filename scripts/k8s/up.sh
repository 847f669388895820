#!/usr/bin/env bash
# Start a real Kubernetes control plane on loopback for tests:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built from
#   pinned sources through the Go module proxy) and KWOK simulating nodes/pods,
#   and one real node: a kubelet (same sources) on Debian's containerd and runc
#   (scripts/k8s/node.sh).
#
# Usage: bash scripts/k8s/up.sh           # start (or reuse) the cluster
#        bash scripts/k8s/up.sh --check   # exit 0 iff the cluster is healthy
#        eval "$(bash scripts/k8s/up.sh)" # start and export KUBECONFIG
#
# Progress goes to stderr; the last line on stdout is `export KUBECONFIG=...`.
#
# Environment:
#   DRILLCTL_K8S_DIR      state dir (certs, kubeconfigs, logs, pids, etcd data)
#                         default /tmp/drillctl-k8s
#   DRILLCTL_CACHE        binary cache root, default ~/.cache/drillctl
#                         (binaries in $DRILLCTL_CACHE/k8s/<version>/bin)
#   DRILLCTL_K8S_POD_READY_DELAY_MS
#                         delay before KWOK marks a scheduled pod Running and
#                         Ready (default 1000); a pod can override it with the
#                         annotation pod-ready.stage.kwok.x-k8s.io/delay: "3s"
#   DRILLCTL_K8S_NODES    number of KWOK nodes (default 4)
#   DRILLCTL_K8S_REAL_NODE  1 (default): also the real node (needs root and cgroup
#                         v1 hierarchies); 0: KWOK nodes only
#   DRILLCTL_DEBIAN_MIRROR  Debian mirror of the target image's debootstrap
#                         (default http://deb.debian.org/debian)
#   DRILLCTL_K8S_START_TIMEOUT  seconds to wait for the cluster (default 300)
#   DRILLCTL_K8S_BUILD_TIMEOUT  seconds allowed for the Go builds (default 3600)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POD_READY_DELAY_MS=${DRILLCTL_K8S_POD_READY_DELAY_MS:-1000}
NUM_NODES=${DRILLCTL_K8S_NODES:-4}
START_TIMEOUT=${DRILLCTL_K8S_START_TIMEOUT:-300}
BUILD_TIMEOUT=${DRILLCTL_K8S_BUILD_TIMEOUT:-3600}
[[ $POD_READY_DELAY_MS =~ ^[0-9]+$ ]] || die "DRILLCTL_K8S_POD_READY_DELAY_MS must be an integer (ms)"
[[ $NUM_NODES =~ ^[0-9]+$ ]] || die "DRILLCTL_K8S_NODES must be an integer"

KUBECONFIG_PATH=$STATE_DIR/kubeconfig
CURL_TIMEOUT=5

# ---- health ------------------------------------------------------------------

# api_get PATH: GET from the API server as admin; prints the body.
api_get() {
  curl -sS --fail --max-time "$CURL_TIMEOUT" \
    --cacert "$STATE_DIR/pki/ca.crt" --cert "$STATE_DIR/pki/admin.crt" --key "$STATE_DIR/pki/admin.key" \
    "https://127.0.0.1:$API_PORT$1"
}

# api_send METHOD PATH JSON: prints the HTTP status code.
api_send() {
  curl -sS -o "$STATE_DIR/last-response.json" -w '%{http_code}' --max-time "$CURL_TIMEOUT" \
    --cacert "$STATE_DIR/pki/ca.crt" --cert "$STATE_DIR/pki/admin.crt" --key "$STATE_DIR/pki/admin.key" \
    -X "$1" -H 'Content-Type: application/json' --data-binary "$3" \
    "https://127.0.0.1:$API_PORT$2" || true
}

component_healthy() {
  case $1 in
    etcd) curl -sS --fail --max-time "$CURL_TIMEOUT" "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' ;;
    kube-apiserver) [[ $(api_get /readyz 2>/dev/null) == ok ]] ;;
    kube-controller-manager) [[ $(curl -sS -k --max-time "$CURL_TIMEOUT" "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null) == ok ]] ;;
    kube-scheduler) [[ $(curl -sS -k --max-time "$CURL_TIMEOUT" "https://127.0.0.1:$SCHED_PORT/healthz" 2>/dev/null) == ok ]] ;;
    kwok) [[ $(curl -sS --max-time "$CURL_TIMEOUT" "http://127.0.0.1:$KWOK_PORT/healthz" 2>/dev/null) == ok ]] ;;
    *) component_healthy_node "$1" ;;
  esac
}

# cluster_healthy: every component runs (from its pid file) and answers.
cluster_healthy() {
  [[ -f $STATE_DIR/$STATE_MARKER && -f $STATE_DIR/ports.env && -f $KUBECONFIG_PATH ]] || return 1
  # shellcheck disable=SC1091
  source "$STATE_DIR/ports.env"
  local c components=("${COMPONENTS[@]}")
  if node_in_state; then
    components+=("${NODE_COMPONENTS[@]}")
  elif node_wanted; then
    return 1
  fi
  for c in "${components[@]}"; do
    [[ -n $(pid_of "$c") ]] || return 1
    component_healthy "$c" || return 1
  done
}

# wait_until DESCRIPTION TIMEOUT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
  local what=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

if [[ ${1:-} == --check ]]; then
  cluster_healthy
  exit
fi
[[ $# -eq 0 ]] || die "usage: up.sh [--check]"

# ---- prerequisites -----------------------------------------------------------

ensure_packages() {
  local missing=() cmd
  for cmd in curl:curl openssl:openssl flock:util-linux setsid:util-linux python3:python3 awk:gawk; do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
  done
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  if node_wanted; then
    local p
    for p in containerd runc containernetworking-plugins buildah debootstrap busybox-static; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
  fi
  if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing tools (${missing[*]}) and no apt-get"
    log "installing Debian packages: ${missing[*]}"
    local sudo=
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# go_minor: minor version of the go command on PATH (0 if none).
go_minor() {
  local v
  v=$(go env GOVERSION 2>/dev/null) || { echo 0; return; }
  v=${v#go1.}
  echo "${v%%[.a-z]*}"
}

ensure_go() {
  if ! command -v go >/dev/null 2>&1; then
    log "no go on PATH; installing Debian's golang-go"
    local sudo=
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends golang-go git >&2
  fi
  if (($(go_minor) < GO_MIN_MINOR)); then
    # Go >= 1.21 downloads the named toolchain from the Go module proxy.
    log "go $(go env GOVERSION) is older than go1.$GO_MIN_MINOR; using toolchain $GO_FALLBACK_TOOLCHAIN"
    export GOTOOLCHAIN=$GO_FALLBACK_TOOLCHAIN
    (($(go_minor) >= GO_MIN_MINOR)) || die "could not get a Go toolchain >= 1.$GO_MIN_MINOR"
  fi
}

# ---- build -------------------------------------------------------------------

K8S_LDFLAGS="-s -w"
for pkgpath in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkgpath.gitVersion=$K8S_VERSION -X $pkgpath.gitMajor=1"
  K8S_LDFLAGS+=" -X $pkgpath.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $pkgpath.gitTreeState=clean"
done

# A binary is reused only if its stamp matches what would be built now.
k8s_stamp() {
  cat "$BUILD_DIR/go.mod" "$BUILD_DIR/go.sum" "$BUILD_DIR/etcd/main.go" <(echo "$K8S_LDFLAGS") | sha256sum | cut -c1-16
}
kwok_stamp() { echo "kwok $KWOK_VERSION -s -w" | sha256sum | cut -c1-16; }

binary_current() { # NAME STAMP
  [[ -x $BIN_DIR/$1 && -f $BIN_DIR/.$1.stamp && $(<"$BIN_DIR/.$1.stamp") == "$2" ]]
}

build_binaries() {
  local stamp_k8s stamp_kwok todo=() pkgs=() name tmp start
  stamp_k8s=$(k8s_stamp)
  stamp_kwok=$(kwok_stamp)
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    binary_current "$name" "$stamp_k8s" || todo+=("$name")
  done
  binary_current kwok "$stamp_kwok" || todo+=(kwok)
  ((${#todo[@]})) || return 0

  ensure_go
  mkdir -p "$BIN_DIR"
  tmp=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
  # Static binaries; go.mod/go.sum are never rewritten by a build.
  export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"

  for name in "${todo[@]}"; do
    case $name in
      etcd) pkgs+=(./etcd) ;;
      kube-*) pkgs+=("k8s.io/kubernetes/cmd/$name") ;;
    esac
  done
  if ((${#pkgs[@]})); then
    log "building ${pkgs[*]} ($K8S_VERSION, etcd $ETCD_VERSION) with $(go env GOVERSION); first build takes 15-30 min on 2 cores"
    start=$SECONDS
    (cd "$BUILD_DIR" && timeout "$BUILD_TIMEOUT" go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$tmp/" "${pkgs[@]}") >&2 \
      || { rm -rf "$tmp"; die "go build of ${pkgs[*]} failed"; }
    for name in "${todo[@]}"; do
      [[ $name == kwok ]] && continue
      mv -f "$tmp/$name" "$BIN_DIR/$name"
      echo "$stamp_k8s" >"$BIN_DIR/.$name.stamp"
    done
    log "built ${pkgs[*]} in $((SECONDS - start))s"
  fi
  if [[ " ${todo[*]} " == *" kwok "* ]]; then
    log "building sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    start=$SECONDS
    # kwok's go.mod has no replace directives, so `go install pkg@version`
    # builds exactly the module graph pinned by its own go.mod/go.sum.
    (cd "$tmp" && GOBIN=$tmp GOFLAGS=-buildvcs=false timeout "$BUILD_TIMEOUT" \
      go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
      "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") >&2 \
      || { rm -rf "$tmp"; die "go install of kwok $KWOK_VERSION failed"; }
    mv -f "$tmp/kwok" "$BIN_DIR/kwok"
    echo "$stamp_kwok" >"$BIN_DIR/.kwok.stamp"
    log "built kwok in $((SECONDS - start))s"
  fi
  rm -rf "$tmp"
}

# ---- state: ports, certificates, kubeconfigs ---------------------------------

pick_ports() {
  # Ask the kernel for free loopback ports (bound then released).
  read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
  )
  cat >"$STATE_DIR/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
KUBELET_PORT=$KUBELET_PORT
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT
EOF
}

gen_certs() {
  local pki=$STATE_DIR/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=drillctl-k8s-ca" -days 3650 -sha256 -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    # service-account token signing key
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # aggregation layer (front proxy) CA, as kubeadm sets it up
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-ca.key 2>/dev/null
    openssl req -x509 -new -key front-proxy-ca.key -subj "/CN=drillctl-k8s-front-proxy-ca" -days 3650 -sha256 \
      -out front-proxy-ca.crt -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    # sign NAME SUBJECT USAGE [SAN] [CA]
    sign() {
      local ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$3"
      [[ -n ${4:-} ]] && ext+="
subjectAltName=$4"
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      openssl x509 -req -in "$1.csr" -CA "${5:-ca}.crt" -CAkey "${5:-ca}.key" -CAcreateserial -days 365 -sha256 \
        -extfile <(echo "$ext") -out "$1.crt" 2>/dev/null
      rm -f "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver" serverAuth \
      "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=admin" clientAuth
    sign kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
    sign kube-scheduler "/CN=system:kube-scheduler" clientAuth
    # KWOK updates status of every node/pod it manages, like a fleet of kubelets.
    sign kwok "/O=system:masters/CN=kwok-controller" clientAuth
    sign front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
    # The real node: the kubelet's client (Node authorizer, NodeRestriction) and serving
    # certificates, and the API server's client certificate for exec, logs and port-forward.
    sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    sign kubelet "/CN=$NODE_NAME" serverAuth "IP:$NODE_NAME"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    chmod 0644 ./*.crt sa.pub
  )
}

# write_kubeconfig FILE CERT_NAME USER
write_kubeconfig() {
  local pki=$STATE_DIR/pki
  (umask 077 && cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: drillctl
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
contexts:
- name: drillctl
  context:
    cluster: drillctl
    user: $3
current-context: drillctl
EOF
  )
}

write_kwok_config() {
  # Pod stages: KWOK's pod-fast stages (ready, complete for Job pods, delete)
  # with a delay on the ready stage; a running container has an ID, as a kubelet reports. Node stages: KWOK's defaults
  # (node-initialize + heartbeat), used because none are given here.
  cat >"$1" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.1/16
  nodeIP: 10.250.0.1
  nodeLeaseDurationSeconds: 40
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
  delay:
    durationMilliseconds: $POD_READY_DELAY_MS
    durationFrom:
      expressionFrom: '.metadata.annotations["pod-ready.stage.kwok.x-k8s.io/delay"]'
  next:
    event:
      type: Normal
      reason: Started
      message: Started container (simulated by KWOK)
    statusTemplate: |
      {{ \$now := Now }}

      conditions:
      - lastTransitionTime: {{ \$now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ \$now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ \$now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ \$now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        containerID: {{ printf "kwok://%s-%s" \$.metadata.uid .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ \$now | Quote }}
      {{ end }}

      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        {{ if eq .restartPolicy "Always" }}
        started: true
        state:
          running:
            startedAt: {{ \$now | Quote }}
        {{ else }}
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ \$now | Quote }}
            reason: Completed
            startedAt: {{ \$now | Quote }}
        {{ end }}
      {{ end }}

      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ \$now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
  next:
    statusTemplate: |
      {{ \$now := Now }}
      {{ \$root := . }}
      containerStatuses:
      {{ range \$index, \$item := .spec.containers }}
      {{ \$origin := index \$root.status.containerStatuses \$index }}
      - image: {{ \$item.image | Quote }}
        name: {{ \$item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ \$now | Quote }}
            reason: Completed
            startedAt: {{ \$now | Quote }}
      {{ end }}
      phase: Succeeded
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
EOF
}

# ---- processes ---------------------------------------------------------------

# start NAME ARGS...: run $BIN_DIR/NAME detached, log to logs/NAME.log.
start() {
  local name=$1
  shift
  log "starting $name"
  # fd 8/9 hold up.sh's locks: the daemons must not inherit them.
  setsid "$BIN_DIR/$name" "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$STATE_DIR/pids/$name.pid"
}

# wait_component NAME: until healthy, failing early if the process died.
wait_component() {
  local name=$1 deadline=$((SECONDS + START_TIMEOUT))
  while ! component_healthy "$name"; do
    if [[ -z $(pid_of "$name") ]]; then
      log "$name exited; last log lines:"
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not healthy after ${START_TIMEOUT}s; last log lines:"
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "$name is healthy"
}

start_control_plane() {
  local s=$STATE_DIR pki=$STATE_DIR/pki
  start etcd \
    --name=drillctl --data-dir="$s/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="drillctl=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync --quota-backend-bytes=2147483648 --log-level=warn
  wait_component etcd

  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --endpoint-reconciler-type=none \
    --allow-privileged=true --profiling=false --v=1
  wait_component kube-apiserver

  start kube-controller-manager \
    --kubeconfig="$s/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$s/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$s/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --profiling=false --v=1
  start kube-scheduler \
    --kubeconfig="$s/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$s/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$s/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
    --leader-elect=false --profiling=false --v=1
  start kwok \
    --kubeconfig="$s/kwok.kubeconfig" --config="$s/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$KWOK_PORT"
  wait_component kube-controller-manager
  wait_component kube-scheduler
  wait_component kwok
}

# ---- nodes -------------------------------------------------------------------

ZONES=(zone-a zone-b zone-c)

# create_nodes: create the KWOK nodes that do not exist (existing ones are left
# as they are); sets NODES_CREATED.
create_nodes() {
  local i name zone taints code
  NODES_CREATED=0
  for ((i = 0; i < NUM_NODES; i++)); do
    name=kwok-node-$i
    zone=${ZONES[i % ${#ZONES[@]}]}
    taints='[]'
    # The last node is reserved for infra workloads.
    ((i == NUM_NODES - 1 && NUM_NODES > 1)) && taints='[{"key":"dedicated","value":"infra","effect":"NoSchedule"}]'
    code=$(api_send POST /api/v1/nodes "$(cat <<EOF
{"apiVersion":"v1","kind":"Node",
 "metadata":{"name":"$name",
   "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
   "labels":{"type":"kwok","kubernetes.io/hostname":"$name","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64",
             "kubernetes.io/role":"agent","node-role.kubernetes.io/agent":"",
             "topology.kubernetes.io/zone":"$zone","topology.kubernetes.io/region":"local"}},
 "spec":{"taints":$taints},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},
           "capacity":{"cpu":"32","memory":"256Gi","pods":"110"}}}
EOF
)")
    [[ $code == 201 || $code == 409 ]] || { cat "$STATE_DIR/last-response.json" >&2; die "creating node $name: HTTP $code"; }
    [[ $code == 201 ]] && NODES_CREATED=$((NODES_CREATED + 1))
  done
  ((NODES_CREATED == 0)) || log "created $NODES_CREATED KWOK nodes"
}

nodes_ready() {
  api_get /api/v1/nodes?labelSelector=type%3Dkwok 2>/dev/null | python3 -c '
import json, sys
want = int(sys.argv[1])
items = json.load(sys.stdin)["items"]
ready = [n for n in items
         if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
         and not any(t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints", []))]
sys.exit(0 if len(ready) >= want else 1)' "$NUM_NODES"
}

default_sa_exists() { api_get /api/v1/namespaces/default/serviceaccounts/default >/dev/null 2>&1; }

# ---- main --------------------------------------------------------------------

main() {
  ensure_packages
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  flock -w "$((BUILD_TIMEOUT + START_TIMEOUT))" 9 || die "could not lock $STATE_DIR.lock"

  if cluster_healthy; then
    # Reuse it; restart only KWOK if the requested pod-ready delay changed.
    write_kwok_config "$STATE_DIR/kwok.yaml.new"
    if ! cmp -s "$STATE_DIR/kwok.yaml.new" "$STATE_DIR/kwok.yaml"; then
      log "KWOK stage config changed (pod ready delay ${POD_READY_DELAY_MS}ms); restarting kwok"
      stop_component kwok
      mv -f "$STATE_DIR/kwok.yaml.new" "$STATE_DIR/kwok.yaml"
      start kwok \
        --kubeconfig="$STATE_DIR/kwok.kubeconfig" --config="$STATE_DIR/kwok.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --server-address="127.0.0.1:$KWOK_PORT"
      wait_component kwok
    else
      rm -f "$STATE_DIR/kwok.yaml.new"
    fi
    # Recreate nodes that a test may have deleted.
    create_nodes
    if ((NODES_CREATED)); then
      wait_until "$NUM_NODES Ready KWOK nodes" "$START_TIMEOUT" nodes_ready || die "nodes not Ready; logs in $STATE_DIR/logs"
    fi
    log "cluster in $STATE_DIR is healthy; reusing it"
    echo "export KUBECONFIG=$KUBECONFIG_PATH"
    return 0
  fi

  (
    mkdir -p "$CACHE_DIR/k8s"
    exec 8>"$CACHE_DIR/k8s/.build.lock"
    flock -w "$BUILD_TIMEOUT" 8 || die "could not lock $CACHE_DIR/k8s/.build.lock"
    build_binaries
    if node_wanted; then
      build_node_binaries
      build_node_images
    fi
  )

  # Anything left over from an unhealthy cluster is stopped and wiped.
  if [[ -d $STATE_DIR ]]; then
    if [[ -f $STATE_DIR/$STATE_MARKER ]]; then
      log "cleaning up an unhealthy cluster in $STATE_DIR"
      stop_all
      rm -rf --one-file-system "$STATE_DIR"
    elif [[ -n $(ls -A "$STATE_DIR") ]]; then
      die "$STATE_DIR exists, is not empty and is not a drillctl cluster state dir"
    fi
  fi
  mkdir -p "$STATE_DIR"/{pids,logs}
  touch "$STATE_DIR/$STATE_MARKER"
  local t0=$SECONDS

  pick_ports
  gen_certs
  write_kubeconfig "$KUBECONFIG_PATH" admin admin
  write_kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
  write_kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
  write_kubeconfig "$STATE_DIR/kwok.kubeconfig" kwok kwok-controller
  write_kwok_config "$STATE_DIR/kwok.yaml"

  if ! start_control_plane; then
    stop_all
    die "control plane did not start; logs in $STATE_DIR/logs"
  fi
  create_nodes
  wait_until "$NUM_NODES Ready KWOK nodes" "$START_TIMEOUT" nodes_ready || { stop_all; die "nodes not Ready; logs in $STATE_DIR/logs"; }
  wait_until "default ServiceAccount" "$START_TIMEOUT" default_sa_exists || { stop_all; die "controller-manager not working; logs in $STATE_DIR/logs"; }
  if node_wanted; then
    start_node || { stop_all; die "the real node did not start; logs in $STATE_DIR/logs"; }
  fi
  log "cluster up in $((SECONDS - t0))s: https://127.0.0.1:$API_PORT ($K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
}

main
