#!/usr/bin/env bash
# A real Kubernetes control plane for tests and the demo, on loopback.
#
# kube-apiserver and kube-controller-manager are built from the k8s.io/kubernetes Go module
# (hack/controlplane/go.mod pins the version) with the Go toolchain on the machine and the
# Go module proxy; etcd and kubectl come from Debian sid, fetched through apt with a
# private configuration that never touches the host's apt sources. See
# hack/controlplane/README.md for what runs and how it is configured.
#
#   scripts/local-apiserver.sh up      build if needed, start, print export lines
#   scripts/local-apiserver.sh status  say whether it runs, print export lines (exit 1 if not)
#   scripts/local-apiserver.sh down    stop it and remove its runtime state
#   scripts/local-apiserver.sh build   only fetch and build (warms the cache)
#   scripts/local-apiserver.sh restart etcd|apiserver
#                                      kill one component (SIGKILL) and start it again on
#                                      the same ports and data (fault tests)
#
# Typical use:   out=$(scripts/local-apiserver.sh up) && eval "$out"
# Progress goes to stderr; stdout carries only `export PATH=...` and, last,
# `export KUBECONFIG=...` (an admin in group system:masters).
set -euo pipefail

PROG=${0##*/}
: "${HOME:=$(cd ~ && pwd)}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HACK_DIR=$REPO_ROOT/hack/controlplane

CACHE_BASE=${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts
# Build cache (apt lists, debs, Go module and build caches, binaries). Never removed by
# `down`.
CACHE_DIR=${ALICLOUD_ROLLOUTS_APISERVER_CACHE:-$CACHE_BASE/controlplane}
# Runtime state (etcd data, certificates, kubeconfigs, pid files, logs). Removed by `down`.
STATE_DIR=${ALICLOUD_ROLLOUTS_STATE:-$CACHE_BASE/state}
SUITE=${ALICLOUD_ROLLOUTS_DEBIAN_SUITE:-sid}
# Debian archive to fetch from; by default the one the host's own apt sources use.
MIRROR=${ALICLOUD_ROLLOUTS_DEBIAN_MIRROR:-}
# 1: ask the archive again for the newest etcd and kubectl (otherwise the versions resolved
# the first time are reused and a warm start needs no network at all).
REFRESH=${ALICLOUD_ROLLOUTS_APISERVER_REFRESH:-0}
START_TIMEOUT=${ALICLOUD_ROLLOUTS_APISERVER_TIMEOUT:-120}
# The Go toolchain: this one, else `go` on PATH, else the machine image's /usr/local/go.
GO=${ALICLOUD_ROLLOUTS_GO:-}
GO_MIN_MINOR=26

# Bump when the recipe that turns sources into binaries changes, so cached builds made by
# an older recipe are not reused.
RECIPE=cp-1
APISERVER_BIN=kube-apiserver
CONTROLLER_MANAGER_BIN=kube-controller-manager
# The Service range; the API server's certificate names its first address.
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
SA_ISSUER=https://kubernetes.default.svc.cluster.local
STATE_MARKER=.alicloud-rollouts-apiserver-state
# Bump when the way the servers are started changes (flags, audit policy): `up` then
# restarts a control plane that an older version of this script started.
RUNTIME=rt-2
APT_DIR=$CACHE_DIR/apt
DEB_DIR=$CACHE_DIR/debs
LOCKFILE=$CACHE_DIR/packages.lock
DEBIAN_PACKAGES=(etcd-server kubectl)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
sha256_of() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------------
# Host tools

ensure_host_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v setsid >/dev/null || missing+=(util-linux)
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  command -v apt-get >/dev/null || die "apt-get is needed (this script expects a Debian-like host)"
  [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  [[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [[ $(id -u) == 0 ]] || die "missing host packages: ${missing[*]}; install them (as root)"
  log "installing host packages: ${missing[*]}"
  local install=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300)
  if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" "${missing[@]}" </dev/null; then
    apt-get update -o DPkg::Lock::Timeout=300 </dev/null
    DEBIAN_FRONTEND=noninteractive "${install[@]}" "${missing[@]}" </dev/null
  fi
}

# Sets GO and GO_VERSION (e.g. go1.26.8), or dies saying what is missing.
find_go() {
  if [[ -z $GO ]]; then
    if command -v go >/dev/null; then
      GO=$(command -v go)
    elif [[ -x /usr/local/go/bin/go ]]; then
      GO=/usr/local/go/bin/go
    else
      die "no Go toolchain: need go 1.$GO_MIN_MINOR or newer on PATH or at /usr/local/go/bin/go" \
        "(or set ALICLOUD_ROLLOUTS_GO); see https://go.dev/doc/install"
    fi
  fi
  [[ -x $GO ]] || die "ALICLOUD_ROLLOUTS_GO=$GO is not an executable"
  # From / so that no go.mod nearby asks for another toolchain.
  GO_VERSION=$(cd / && GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION) ||
    die "$GO does not run"
  local minor
  minor=$(sed -nE 's/^go1\.([0-9]+)([^0-9].*)?$/\1/p' <<<"$GO_VERSION")
  [[ $minor =~ ^[0-9]+$ ]] && ((minor >= GO_MIN_MINOR)) ||
    die "$GO is $GO_VERSION; building Kubernetes 1.36 needs go 1.$GO_MIN_MINOR or newer"
}

# ---------------------------------------------------------------------------------------
# Private apt (etcd and kubectl from sid): its own apt.conf (APT_CONFIG), sources.list,
# lists, cache and an empty dpkg status, all under $APT_DIR. The host's apt sources and
# state are only read, to find the archive address and any proxy settings.

apt_private() { APT_CONFIG=$APT_DIR/apt.conf "$@"; }

detect_mirror() {
  [[ -n $MIRROR ]] && return 0
  # shellcheck disable=SC2016  # $(...) here is apt's template syntax, not the shell's
  MIRROR=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null |
    awk '$3 == "Packages" && $2 !~ /-(security|updates|backports|proposed-updates)$/ {print $1; exit}')
  [[ -n $MIRROR ]] || die "found no Debian archive in the host's apt sources;" \
    "set ALICLOUD_ROLLOUTS_DEBIAN_MIRROR to its URL"
}

setup_private_apt() {
  detect_mirror
  mkdir -p "$APT_DIR"/{lists/partial,cache/archives/partial,apt.conf.d,sources.list.d,preferences.d,log}
  [[ -e $APT_DIR/status ]] || : >"$APT_DIR/status"
  local arch
  arch=$(dpkg --print-architecture)
  {
    echo "Dir::Etc::main \"$APT_DIR/none.conf\";"
    echo "Dir::Etc::parts \"$APT_DIR/apt.conf.d\";"
    echo "Dir::Etc::sourcelist \"$APT_DIR/sources.list\";"
    echo "Dir::Etc::sourceparts \"$APT_DIR/sources.list.d\";"
    echo "Dir::Etc::preferences \"$APT_DIR/preferences\";"
    echo "Dir::Etc::preferencesparts \"$APT_DIR/preferences.d\";"
    echo "Dir::State \"$APT_DIR\";"
    echo "Dir::State::lists \"$APT_DIR/lists/\";"
    echo "Dir::State::status \"$APT_DIR/status\";"
    echo "Dir::State::extended_states \"$APT_DIR/extended_states\";"
    echo "Dir::Cache \"$APT_DIR/cache/\";"
    echo "Dir::Cache::pkgcache \"pkgcache.bin\";"
    echo "Dir::Cache::srcpkgcache \"srcpkgcache.bin\";"
    echo "Dir::Log \"$APT_DIR/log\";"
    echo "APT::Architecture \"$arch\";"
    echo "APT::Architectures { \"$arch\"; };"
    echo "Acquire::Languages \"none\";"
    echo "Acquire::Retries \"3\";"
    # The debs land in a cache dir that apt's unprivileged download user may not reach.
    echo "APT::Sandbox::User \"root\";"
    # Carry over the host's proxy and date-check settings, nothing else.
    apt-config dump 2>/dev/null | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date)[ :]' || true
  } >"$APT_DIR/apt.conf.new"
  mv "$APT_DIR/apt.conf.new" "$APT_DIR/apt.conf"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb [signed-by=$keyring] $MIRROR $SUITE main" >"$APT_DIR/sources.list"
}

# Writes $LOCKFILE: one "package version architecture sha256" line per deb to fetch.
resolve_packages() {
  setup_private_apt
  log "updating the private apt lists for $SUITE ($MIRROR)"
  apt_private apt-get -q update >&2 </dev/null
  apt_private apt-cache show --no-all-versions "${DEBIAN_PACKAGES[@]}" |
    awk '/^Package: /{p=$2} /^Version: /{v=$2} /^Architecture: /{a=$2} /^SHA256: /{s=$2}
         /^$/ {if (p != "") print p, v, a, s; p=v=a=s=""}
         END {if (p != "") print p, v, a, s}' |
    sort -u >"$LOCKFILE.new"
  local got
  got=$(wc -l <"$LOCKFILE.new")
  [[ $got == "${#DEBIAN_PACKAGES[@]}" ]] ||
    die "resolved $got package versions for ${DEBIAN_PACKAGES[*]} in $SUITE"
  mv "$LOCKFILE.new" "$LOCKFILE"
  log "resolved $(awk '{printf "%s%s %s", sep, $1, $2; sep=", "}' "$LOCKFILE")"
}

deb_name() { printf '%s_%s_%s.deb' "$1" "${2//:/%3a}" "$3"; }

# Downloads the debs of $LOCKFILE that are not cached yet and checks all of them.
# Returns 1 (rather than exiting) when apt cannot fetch them, e.g. because sid has
# dropped a pinned version, so the caller can resolve again.
fetch_debs() {
  mkdir -p "$DEB_DIR"
  local want=() pkg ver arch sha
  while read -r pkg ver arch sha; do
    [[ -s $DEB_DIR/$(deb_name "$pkg" "$ver" "$arch") ]] || want+=("$pkg=$ver")
  done <"$LOCKFILE"
  if ((${#want[@]})); then
    setup_private_apt
    if ! compgen -G "$APT_DIR/lists/*_Packages*" >/dev/null; then
      apt_private apt-get -q update >&2 </dev/null || return 1
    fi
    log "downloading ${want[*]}"
    (cd "$DEB_DIR" && apt_private apt-get -q download "${want[@]}" >&2 </dev/null) || return 1
  fi
  while read -r pkg ver arch sha; do
    printf '%s  %s\n' "$sha" "$DEB_DIR/$(deb_name "$pkg" "$ver" "$arch")"
  done <"$LOCKFILE" | sha256sum --check --quiet --strict >&2 ||
    die "checksum mismatch in $DEB_DIR (remove the bad files and run again)"
  # Drop debs of package sets resolved before.
  local keep
  keep=$(while read -r pkg ver arch sha; do deb_name "$pkg" "$ver" "$arch"; echo; done <"$LOCKFILE")
  find "$DEB_DIR" -maxdepth 1 -name '*.deb' -printf '%f\n' | grep -vxF -f <(echo "$keep") |
    while IFS= read -r old; do rm -f "$DEB_DIR/$old"; done
  return 0
}

# The Kubernetes version the module pins (e.g. v1.36.5), from hack/controlplane/go.mod.
kubernetes_version() {
  awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' \
    "$HACK_DIR/go.mod" | head -n1
}

compute_keys() {
  KUBE_VERSION=$(kubernetes_version)
  [[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] ||
    die "cannot read the k8s.io/kubernetes version from $HACK_DIR/go.mod (got '$KUBE_VERSION')"
  KUBE_MINOR=${BASH_REMATCH[1]}
  # What `version` reports: the module carries only a placeholder, which clients such as
  # kubectl cannot parse. These are the variables Kubernetes' own build stamps.
  LDFLAGS="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR -X $pkg.gitVersion=$KUBE_VERSION"
    LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=module-$KUBE_VERSION"
    LDFLAGS+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  KEY=$({
    echo "recipe $RECIPE"
    echo "go $GO_VERSION"
    echo "ldflags $LDFLAGS"
    cat "$LOCKFILE" "$HACK_DIR/go.mod" "$HACK_DIR/go.sum"
  } | sha256_of)
  BUILD_DIR=$CACHE_DIR/builds/$KEY
  BIN_DIR=$BUILD_DIR/bin
}

# The environment of the Go build: a clean one (no GOFLAGS, GOOS, GOEXPERIMENT... from
# the caller), with the module and build caches under $CACHE_DIR. The proxy settings
# (Go's and HTTP's) are carried over.
go_env() {
  local vars=(HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}" PATH="$(dirname "$GO"):/usr/bin:/bin"
    GOMODCACHE="$CACHE_DIR/gomod" GOCACHE="$CACHE_DIR/gocache" GOPATH="$CACHE_DIR/gopath"
    GOFLAGS="-mod=readonly -modcacherw -trimpath" GOTOOLCHAIN=local GOWORK=off
    GOTELEMETRY=off CGO_ENABLED=0 GOGC=400)
  local v
  for v in GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE \
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [[ -n ${!v:-} ]] && vars+=("$v=${!v}")
  done
  env -i "${vars[@]}" "$@"
}

build_binaries() {
  log "building $APISERVER_BIN and $CONTROLLER_MANAGER_BIN $KUBE_VERSION with $GO_VERSION" \
    "(modules from the Go module proxy; takes many minutes cold)"
  rm -rf "$BUILD_DIR.tmp"
  mkdir -p "$BUILD_DIR.tmp/bin"
  local started=$SECONDS
  # `go build` fetches only the modules it needs (go.sum pins them all); niced, as the
  # machines it runs on are often compiling something else too.
  (cd "$HACK_DIR" && go_env nice -n 10 go build -ldflags="$LDFLAGS" -o "$BUILD_DIR.tmp/bin/" \
    "k8s.io/kubernetes/cmd/$APISERVER_BIN" "k8s.io/kubernetes/cmd/$CONTROLLER_MANAGER_BIN" >&2) ||
    die "go build failed (is the Go module proxy reachable? GOPROXY=${GOPROXY:-default})"
  log "built in $((SECONDS - started))s"
  # etcd and kubectl from the debs.
  local pkg ver arch sha x=$BUILD_DIR.tmp/debs
  mkdir -p "$x"
  while read -r pkg ver arch sha; do
    dpkg-deb -x "$DEB_DIR/$(deb_name "$pkg" "$ver" "$arch")" "$x"
  done <"$LOCKFILE"
  cp "$x/usr/bin/etcd" "$x/usr/bin/kubectl" "$BUILD_DIR.tmp/bin/"
  rm -rf "$x"
  "$BUILD_DIR.tmp/bin/etcd" --version >/dev/null
  "$BUILD_DIR.tmp/bin/kubectl" version --client >/dev/null
  "$BUILD_DIR.tmp/bin/$APISERVER_BIN" --version >&2
  cp "$LOCKFILE" "$BUILD_DIR.tmp/packages.lock"
  touch "$BUILD_DIR.tmp/.complete"
  rm -rf "$BUILD_DIR"
  mv "$BUILD_DIR.tmp" "$BUILD_DIR"
  # Drop builds nobody started for a week (`up` touches the one it starts; a running
  # control plane may well use an older build than the newest).
  touch "$BUILD_DIR"
  find "$CACHE_DIR/builds" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} +
}

# Makes sure $BIN_DIR holds the two servers, etcd and kubectl. Sets BIN_DIR.
ensure_built() {
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.build.lock"
  if ! flock -n 8; then
    log "waiting for another build in $CACHE_DIR"
    flock 8
  fi
  find_go
  if [[ $REFRESH == 1 || ! -s $LOCKFILE ]]; then
    ensure_host_tools
    resolve_packages
  fi
  compute_keys
  if [[ ! -e $BUILD_DIR/.complete ]]; then
    local started=$SECONDS
    log "no cached build $KEY; building (cache: $CACHE_DIR)"
    ensure_host_tools
    if ! fetch_debs; then
      log "could not fetch the pinned package versions; resolving them again"
      resolve_packages
      compute_keys
      fetch_debs || die "could not download the packages (see apt's messages above)"
    fi
    if [[ ! -e $BUILD_DIR/.complete ]]; then
      build_binaries
      log "cold build finished in $((SECONDS - started))s"
    fi
  fi
  exec 8>&-
}

# ---------------------------------------------------------------------------------------
# Runtime

port_taken() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p {found = 1} END {exit !found}' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A free port below the ephemeral range, different from those in $*.
pick_port() {
  local port i used
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12000))
    for used in "$@"; do [[ $port == "$used" ]] && continue 2; done
    port_taken "$port" || {
      echo "$port"
      return 0
    }
  done
  die "found no free port"
}

PORT_VARS=(APISERVER_PORT ETCD_PORT ETCD_PEER_PORT CONTROLLER_MANAGER_PORT)

choose_ports() {
  local var env taken=()
  for var in "${PORT_VARS[@]}"; do
    env=ALICLOUD_ROLLOUTS_$var
    printf -v "$var" '%s' "${!env:-}"
    if [[ -n ${!var} ]]; then
      port_taken "${!var}" && die "port ${!var} ($env) is in use"
      taken+=("${!var}")
    fi
  done
  for var in "${PORT_VARS[@]}"; do
    [[ -n ${!var} ]] && continue
    printf -v "$var" '%s' "$(pick_port "${taken[@]}")"
    taken+=("${!var}")
  done
}

make_certs() {
  local d=$STATE_DIR/pki
  mkdir -p "$d"
  cat >"$d/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, IP:$SERVICE_IP, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  # Two CAs: one for the cluster, one that the API server's front proxy (the aggregation
  # layer) authenticates with, kept apart so that no cluster client certificate can
  # claim to be the front proxy.
  local ca
  for ca in ca front-proxy-ca; do
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config "$d/openssl.cnf" \
      -extensions ca -subj "/CN=alicloud-rollouts-local-$ca" -keyout "$d/$ca.key" -out "$d/$ca.crt" 2>/dev/null
  done
  # name, CA, extensions, subject. The controller-manager's user is the one the API
  # server's bootstrap RBAC policy grants its permissions to.
  local name ext subj
  while read -r name ca ext subj; do
    openssl req -new -nodes -newkey rsa:2048 -sha256 -config "$d/openssl.cnf" -subj "$subj" \
      -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    openssl x509 -req -sha256 -days 825 -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
      -set_serial "0x$(openssl rand -hex 12)" -extfile "$d/openssl.cnf" -extensions "$ext" \
      -out "$d/$name.crt" 2>/dev/null
    rm -f "$d/$name.csr"
  done <<'EOF'
server ca server /CN=localhost
client ca client /O=system:masters/CN=alicloud-rollouts-admin
controller-manager ca client /CN=system:kube-controller-manager
front-proxy-client front-proxy-ca client /CN=front-proxy-client
EOF
  # The key pair that signs and verifies ServiceAccount tokens.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  chmod 600 "$d"/*.key
}

# write_kubeconfig file user cert-name
write_kubeconfig() {
  local file=$1 user=$2 name=$3 d=$STATE_DIR/pki b64=(base64 -w0)
  umask 077
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: alicloud-rollouts-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $("${b64[@]}" "$d/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $("${b64[@]}" "$d/$name.crt")
    client-key-data: $("${b64[@]}" "$d/$name.key")
contexts:
- name: alicloud-rollouts-local
  context:
    cluster: alicloud-rollouts-local
    user: $user
    namespace: default
current-context: alicloud-rollouts-local
EOF
  umask 022
}

# Starts "$@" detached (own session, no inherited descriptors that would keep a caller's
# $(...) or our locks open); writes the pid to $STATE_DIR/$1.pid.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null 3>&- 8>&- 9>&- &
  echo $! >"$STATE_DIR/$name.pid"
}

binary_of() {
  case $1 in
    etcd) echo etcd ;;
    apiserver) echo "$APISERVER_BIN" ;;
    controller-manager) echo "$CONTROLLER_MANAGER_BIN" ;;
  esac
}

# pid of a live process of ours named $1 (etcd, apiserver, controller-manager), or nothing.
live_pid() {
  local f=$STATE_DIR/$1.pid pid exe
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}
  # Guard against a recycled pid: it must still run the binary we started (or, for the
  # API server, the CRD-only server that earlier versions of this script started, so that
  # `up` and `down` stop one left running).
  [[ $exe == */builds/*/bin/* ]] || return 1
  [[ ${exe##*/} == "$(binary_of "$1")" ||
    ($1 == apiserver && ${exe##*/} == alicloud-rollouts-apiserver) ]] || return 1
  echo "$pid"
}

# The state is thrown away afterwards, so a server that is slow to drain its watches is
# not waited for long.
stop_one() {
  local pid i
  pid=$(live_pid "$1") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

stop_all() {
  stop_one controller-manager
  stop_one apiserver
  stop_one etcd
}

curl_api() {
  local d=$STATE_DIR/pki
  curl -fsS --max-time 3 --cacert "$d/ca.crt" --cert "$d/client.crt" --key "$d/client.key" \
    "https://127.0.0.1:$APISERVER_PORT$1"
}

load_env() {
  [[ -s $STATE_DIR/env ]] || return 1
  # shellcheck disable=SC1091
  source "$STATE_DIR/env"
}

# All processes alive, the binaries still there, and /readyz answering "ok" (a busy
# server gets a few tries before it counts as broken).
healthy() {
  load_env && [[ ${STARTED_BY:-} == "$RUNTIME" ]] && live_pid etcd >/dev/null && live_pid apiserver >/dev/null &&
    live_pid controller-manager >/dev/null && [[ -x $BIN_DIR/kubectl ]] || return 1
  local i
  for ((i = 0; i < ${1:-1}; i++)); do
    ((i == 0)) || sleep 1
    [[ $(curl_api /readyz 2>/dev/null) == ok ]] && controller_manager_healthy && return 0
  done
  return 1
}

print_exports() {
  # shellcheck disable=SC2016  # $PATH is for the caller's shell to expand
  printf 'export PATH=%q:$PATH\n' "$BIN_DIR" >&3
  printf 'export KUBECONFIG=%q\n' "$STATE_DIR/kubeconfig" >&3
}

claim_state_dir() {
  if [[ -d $STATE_DIR && ! -e $STATE_DIR/$STATE_MARKER && -n $(ls -A "$STATE_DIR") ]]; then
    die "$STATE_DIR is not empty and was not made by this script; set ALICLOUD_ROLLOUTS_STATE"
  fi
}

remove_state() {
  stop_all
  if [[ -e $STATE_DIR/$STATE_MARKER ]]; then
    rm -rf "$STATE_DIR"
  fi
}

wait_for() { # what, pid-name, command...
  local what=$1 name=$2 deadline=$((SECONDS + START_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$name" >/dev/null; then
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      return 2
    fi
    ((SECONDS < deadline)) || {
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      die "$what not ready after ${START_TIMEOUT}s (log: $STATE_DIR/logs/$name.log)"
    }
    sleep 0.2
  done
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() { [[ $(curl_api /readyz) == ok ]]; }
controller_manager_healthy() {
  [[ $(curl -fsS --max-time 3 --cacert "$STATE_DIR/pki/ca.crt" \
    "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz") == ok ]]
}
# The ServiceAccount controller has made the `default` ServiceAccount, and the root CA
# publisher its ConfigMap: the controllers run, with their own credentials.
controllers_working() {
  curl_api /api/v1/namespaces/default/serviceaccounts/default >/dev/null &&
    curl_api /api/v1/namespaces/default/configmaps/kube-root-ca.crt >/dev/null
}

start_etcd() {
  spawn etcd "$BIN_DIR/etcd" --name local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn --quota-backend-bytes 2147483648
}

# The audit log records who did what, for the test that proves the operator's RBAC grants
# nothing it does not use: every request of a ServiceAccount outside kube-system (the
# controller-manager's controllers sign in as those) at Metadata level (no bodies, so no
# Secret data), nothing else.
write_audit_policy() {
  cat >"$STATE_DIR/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
EOF
}

start_apiserver() {
  local d=$STATE_DIR/pki
  write_audit_policy
  # Loopback only: the advertised address is 127.0.0.1 too, which an Endpoints object
  # may not hold, so the `kubernetes` Service gets no endpoints (no Pod runs here anyway).
  spawn apiserver "$BIN_DIR/$APISERVER_BIN" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --endpoint-reconciler-type none \
    --cert-dir "$STATE_DIR/apiserver-certs" \
    --tls-cert-file "$d/server.crt" --tls-private-key-file "$d/server.key" \
    --client-ca-file "$d/ca.crt" \
    --requestheader-client-ca-file "$d/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$d/front-proxy-client.crt" \
    --proxy-client-key-file "$d/front-proxy-client.key" \
    --authorization-mode Node,RBAC \
    --allow-privileged=true \
    --enable-admission-plugins NodeRestriction \
    --service-account-issuer "$SA_ISSUER" \
    --service-account-key-file "$d/sa.pub" \
    --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --audit-policy-file "$STATE_DIR/audit-policy.yaml" \
    --audit-log-path "$STATE_DIR/logs/audit.log" \
    --audit-log-format json --audit-log-mode blocking \
    --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --profiling=false
}

start_controller_manager() {
  local d=$STATE_DIR/pki kc=$STATE_DIR/controller-manager.kubeconfig
  # The FlexVolume directory is moved into the state dir: by default the controller-manager
  # creates it under /usr/libexec.
  spawn controller-manager "$BIN_DIR/$CONTROLLER_MANAGER_BIN" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" \
    --tls-cert-file "$d/server.crt" --tls-private-key-file "$d/server.key" \
    --client-ca-file "$d/ca.crt" \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file "$d/sa.key" \
    --root-ca-file "$d/ca.crt" \
    --cluster-signing-cert-file "$d/ca.crt" --cluster-signing-key-file "$d/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --flex-volume-plugin-dir "$STATE_DIR/flexvolume" \
    --profiling=false
}

start_all() {
  local attempt rc var
  for attempt in 1 2 3; do
    mkdir -p "$STATE_DIR/logs"
    touch "$STATE_DIR/$STATE_MARKER"
    choose_ports
    {
      for var in "${PORT_VARS[@]}"; do echo "$var=${!var}"; done
      printf 'BIN_DIR=%q\n' "$BIN_DIR"
      printf 'STARTED_BY=%q\n' "$RUNTIME"
    } >"$STATE_DIR/env"
    [[ -e $STATE_DIR/pki/ca.crt ]] || make_certs
    write_kubeconfig "$STATE_DIR/kubeconfig" alicloud-rollouts-admin client
    write_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    start_etcd
    rc=0
    wait_for etcd etcd etcd_healthy || rc=$?
    if ((rc == 0)); then
      log "starting the API server on https://127.0.0.1:$APISERVER_PORT"
      start_apiserver
      wait_for "the API server" apiserver apiserver_ready || rc=$?
    fi
    if ((rc == 0)); then
      log "starting the controller-manager on https://127.0.0.1:$CONTROLLER_MANAGER_PORT"
      start_controller_manager
      wait_for "the controller-manager" controller-manager controller_manager_healthy || rc=$?
    fi
    if ((rc == 0)); then
      wait_for "the controllers (default ServiceAccount, kube-root-ca.crt)" controller-manager \
        controllers_working || rc=$?
    fi
    ((rc == 0)) && return 0
    # A process died during start-up. If it lost a race for its port, try other ports.
    if grep -qi 'address already in use' "$STATE_DIR"/logs/*.log 2>/dev/null; then
      log "a port was taken meanwhile; retrying with other ports (attempt $attempt)"
      remove_state
      continue
    fi
    die "start-up failed; logs in $STATE_DIR/logs"
  done
  die "could not start after 3 attempts"
}

# ---------------------------------------------------------------------------------------
# Commands

lock_state() {
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  flock 9
}

cmd_build() {
  ensure_built
  log "binaries in $BIN_DIR"
}

cmd_up() {
  local started=$SECONDS
  claim_state_dir
  ensure_host_tools
  lock_state
  if healthy 5; then
    log "already running: https://127.0.0.1:$APISERVER_PORT (state: $STATE_DIR)"
    local running=$BIN_DIR
    if [[ -s $LOCKFILE ]] && find_go && compute_keys && [[ $BIN_DIR != "$running" ]]; then
      log "note: it runs an older build than hack/controlplane gives; \`down\` then \`up\` to switch"
    fi
    BIN_DIR=$running
    print_exports
    return 0
  fi
  if [[ -e $STATE_DIR/$STATE_MARKER ]]; then
    log "cleaning up stale state in $STATE_DIR"
    remove_state
  fi
  ensure_built
  touch "$BUILD_DIR"
  # If start-up fails, stop what was started; the logs stay for a look (the next `up`
  # or `down` removes them).
  trap 'stop_all' EXIT
  start_all
  trap - EXIT
  log "up in $((SECONDS - started))s: https://127.0.0.1:$APISERVER_PORT" \
    "(state: $STATE_DIR, logs: $STATE_DIR/logs)"
  print_exports
}

cmd_down() {
  claim_state_dir
  lock_state
  if [[ -e $STATE_DIR/$STATE_MARKER ]]; then
    remove_state
    log "stopped; removed $STATE_DIR"
  else
    log "not running"
  fi
}

cmd_status() {
  if healthy; then
    log "running: https://127.0.0.1:$APISERVER_PORT (apiserver pid $(live_pid apiserver)," \
      "controller-manager pid $(live_pid controller-manager), etcd pid $(live_pid etcd)," \
      "state: $STATE_DIR)"
    print_exports
    return 0
  fi
  if [[ -e $STATE_DIR/$STATE_MARKER ]]; then
    log "not running (stale state in $STATE_DIR; \`up\` or \`down\` cleans it)"
  else
    log "not running"
  fi
  return 1
}

# Fault injection: SIGKILL one component and start it again with the same ports, data and
# certificates; waits until it answers again.
cmd_restart() {
  local component=${1:-} pid i
  claim_state_dir
  lock_state
  load_env || die "not running (no $STATE_DIR/env)"
  case $component in
    etcd | apiserver) ;;
    *) die "restart what? etcd or apiserver" ;;
  esac
  pid=$(live_pid "$component") || die "$component is not running"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  case $component in
    etcd)
      start_etcd
      wait_for etcd etcd etcd_healthy
      ;;
    apiserver)
      start_apiserver
      wait_for "the API server" apiserver apiserver_ready
      ;;
  esac
  log "restarted $component"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  cat >&2 <<'EOF'
Environment:
  ALICLOUD_ROLLOUTS_STATE             runtime state dir (default ~/.cache/alicloud-rollouts/state)
  ALICLOUD_ROLLOUTS_APISERVER_CACHE   build cache (default ~/.cache/alicloud-rollouts/controlplane)
  ALICLOUD_ROLLOUTS_APISERVER_PORT    API server port          (default: a free one)
  ALICLOUD_ROLLOUTS_CONTROLLER_MANAGER_PORT  controller-manager port (default: a free one)
  ALICLOUD_ROLLOUTS_ETCD_PORT         etcd client port         (default: a free one)
  ALICLOUD_ROLLOUTS_ETCD_PEER_PORT    etcd peer port           (default: a free one)
  ALICLOUD_ROLLOUTS_APISERVER_REFRESH 1: resolve the newest sid etcd and kubectl again
  ALICLOUD_ROLLOUTS_APISERVER_TIMEOUT seconds to wait for each component to start (default 120)
  ALICLOUD_ROLLOUTS_GO                the go command (default: go on PATH, else /usr/local/go/bin/go)
  ALICLOUD_ROLLOUTS_DEBIAN_MIRROR     Debian archive URL (default: the host's)
  ALICLOUD_ROLLOUTS_DEBIAN_SUITE      suite to fetch etcd and kubectl from (default sid)
  GOPROXY, GOSUMDB, http(s)_proxy     passed on to the Go build
EOF
}

main() {
  # Keep stdout for the export lines only; everything else goes to stderr.
  exec 3>&1 1>&2
  case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    build) cmd_build ;;
    restart) cmd_restart "${2:-}" ;;
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
