#!/usr/bin/env bash
# A real Kubernetes API server for tests and the demo, on loopback.
#
# It is k8s.io/apiextensions-apiserver (the CRD-serving half of kube-apiserver) built from
# Debian sid Go source packages, plus etcd and kubectl from sid. Nothing is downloaded
# except Debian packages, through apt with a private configuration that never touches the
# host's apt sources. See hack/apiserver/README.md for what it serves and what it lacks.
#
#   scripts/local-apiserver.sh up      fetch + build if needed, start, print export lines
#   scripts/local-apiserver.sh status  say whether it runs, print export lines (exit 1 if not)
#   scripts/local-apiserver.sh down    stop it and remove its runtime state
#   scripts/local-apiserver.sh build   only fetch and build (warms the cache)
#
# Typical use:   out=$(scripts/local-apiserver.sh up) && eval "$out"
# Progress goes to stderr; stdout carries only `export PATH=...` and, last,
# `export KUBECONFIG=...`.
set -euo pipefail

PROG=${0##*/}
: "${HOME:=$(cd ~ && pwd)}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HACK_DIR=$REPO_ROOT/hack/apiserver

CACHE_BASE=${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-rollouts
# Build cache (apt lists, debs, extracted Go sources, Go build cache, binaries). Never
# removed by `down`.
CACHE_DIR=${ALICLOUD_ROLLOUTS_APISERVER_CACHE:-$CACHE_BASE/apiserver}
# Runtime state (etcd data, certificates, kubeconfig, pid files, logs). Removed by `down`.
STATE_DIR=${ALICLOUD_ROLLOUTS_STATE:-$CACHE_BASE/state}
# Go toolchain series from sid used to build the server (falls back to the one that sid's
# golang-go points at if this series has left sid).
GO_SERIES=${ALICLOUD_ROLLOUTS_APISERVER_GO:-1.26}
SUITE=${ALICLOUD_ROLLOUTS_DEBIAN_SUITE:-sid}
# Debian archive to fetch from; by default the one the host's own apt sources use.
MIRROR=${ALICLOUD_ROLLOUTS_DEBIAN_MIRROR:-}
# 1: ask the archive again for the newest package versions (otherwise the versions
# resolved the first time are reused and a warm start needs no network at all).
REFRESH=${ALICLOUD_ROLLOUTS_APISERVER_REFRESH:-0}
START_TIMEOUT=${ALICLOUD_ROLLOUTS_APISERVER_TIMEOUT:-120}

# Bump when the recipe that turns packages into binaries changes, so cached builds made by
# an older recipe are not reused.
RECIPE=4
SERVER_BIN_NAME=alicloud-rollouts-apiserver
STATE_MARKER=.alicloud-rollouts-apiserver-state
APT_DIR=$CACHE_DIR/apt
DEB_DIR=$CACHE_DIR/debs
LOCKFILE=$CACHE_DIR/packages.lock

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

# ---------------------------------------------------------------------------------------
# Private apt: its own apt.conf (APT_CONFIG), sources.list, lists, cache and an empty dpkg
# status, all under $APT_DIR. The host's apt sources and state are only read, to find
# the archive address and any proxy settings.

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
  local series=$GO_SERIES
  if ! apt_private apt-cache show --no-all-versions "golang-$series-go" >/dev/null 2>&1; then
    series=$(apt_private apt-cache depends golang-go 2>/dev/null |
      sed -n 's/^ *Depends: golang-\([0-9][0-9.]*\)-go$/\1/p' | head -n1)
    [[ -n $series ]] || die "no golang-$GO_SERIES-go in $SUITE and no golang-go to fall back on"
    log "golang-$GO_SERIES-go is not in $SUITE; using golang-$series-go"
  fi
  local names
  names=$(
    {
      apt_private apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev |
        grep -E '^golang-[^ <>]+-dev$'
      printf '%s\n' "golang-$series-go" "golang-$series-src" etcd-server kubectl
    } | sort -u
  )
  [[ $(grep -c . <<<"$names") -gt 20 ]] || die "dependency resolution found too few packages: ${names//$'\n'/ }"
  # shellcheck disable=SC2086  # one word per package name
  apt_private apt-cache show --no-all-versions $names |
    awk '/^Package: /{p=$2} /^Version: /{v=$2} /^Architecture: /{a=$2} /^SHA256: /{s=$2}
         /^$/ {if (p != "") print p, v, a, s; p=v=a=s=""}
         END {if (p != "") print p, v, a, s}' |
    sort -u >"$LOCKFILE.new"
  local want got
  want=$(grep -c . <<<"$names")
  got=$(wc -l <"$LOCKFILE.new")
  [[ $want == "$got" ]] || die "resolved $got package versions for $want names"
  mv "$LOCKFILE.new" "$LOCKFILE"
  log "resolved $got packages (apiextensions-apiserver $(awk '$1 == "golang-k8s-apiextensions-apiserver-dev" {print $2}' "$LOCKFILE"), go $series)"
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
    log "downloading ${#want[@]} debs"
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

# Extracts all debs into one tree $ROOT (keyed by the package set).
extract_debs() {
  ROOT=$CACHE_DIR/root/$PKGSET
  [[ -e $ROOT/.complete ]] && return 0
  log "extracting $(wc -l <"$LOCKFILE") debs"
  rm -rf "$ROOT.tmp"
  mkdir -p "$ROOT.tmp"
  local pkg ver arch sha
  # Two at a time. Packages that can be installed together never ship the same file, so
  # the order does not matter.
  while read -r pkg ver arch sha; do
    printf '%s\0' "$DEB_DIR/$(deb_name "$pkg" "$ver" "$arch")"
  done <"$LOCKFILE" | xargs -0 -P 2 -I{} dpkg-deb -x {} "$ROOT.tmp"
  # Packages link alternative import paths (and GOROOT/src) with absolute symlinks that
  # point into /usr; re-point them into the extracted tree.
  local link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$ROOT$target" "$link"
  done < <(find "$ROOT.tmp" -type l -lname '/*' -print0)
  # ...which now point at $ROOT, where the tree will be once renamed.
  touch "$ROOT.tmp/.complete"
  mv "$ROOT.tmp" "$ROOT"
  # Older package sets are no longer needed.
  find "$CACHE_DIR/root" -mindepth 1 -maxdepth 1 ! -name "$PKGSET" -exec rm -rf {} +
}

compute_keys() {
  PKGSET=$(sha256_of <"$LOCKFILE")
  GO_SERIES_USED=$(awk '$1 ~ /^golang-[0-9.]+-go$/ {sub(/^golang-/, "", $1); sub(/-go$/, "", $1); print $1}' "$LOCKFILE")
  KEY=$({
    echo "recipe $RECIPE"
    cat "$LOCKFILE" "$HACK_DIR/main.go"
  } | sha256_of)
  BUILD_DIR=$CACHE_DIR/builds/$KEY
  BIN_DIR=$BUILD_DIR/bin
}

build_binaries() {
  ROOT=$CACHE_DIR/root/$PKGSET
  local goroot=$ROOT/usr/lib/go-$GO_SERIES_USED
  [[ -x $goroot/bin/go ]] || die "no go toolchain at $goroot"
  log "building $SERVER_BIN_NAME with go $GO_SERIES_USED (GOPATH mode, offline; takes minutes cold)"
  rm -rf "$BUILD_DIR.tmp"
  mkdir -p "$BUILD_DIR.tmp/bin" "$CACHE_DIR/gocache"
  # Stamp the Kubernetes version (client libraries 0.X.Y are Kubernetes 1.X.Y); the
  # sources carry only a placeholder that kubectl cannot parse.
  local kver ldflags kminor kpatch
  kver=$(awk '$1 == "golang-k8s-apiextensions-apiserver-dev" {print $2}' "$LOCKFILE" | sed -E 's/^([0-9]+:)?0\.([0-9]+)\.([0-9]+).*/\2 \3/')
  read -r kminor kpatch <<<"$kver"
  ldflags="-s -w"
  if [[ $kminor =~ ^[0-9]+$ && $kpatch =~ ^[0-9]+$ ]]; then
    local v=k8s.io/component-base/version
    ldflags+=" -X $v.gitMajor=1 -X $v.gitMinor=$kminor -X $v.gitVersion=v1.$kminor.$kpatch"
    ldflags+=" -X $v.gitTreeState=clean -X $v.gitCommit=debian-$SUITE"
  fi
  # Compile the Kubernetes code without optimisation or inlining, but the standard
  # library (runtime, GC, maps, JSON, TLS) optimised; a roomier GC for the compiler. This
  # cut the compile's CPU time by about 30%, while creates and status patches measured
  # within 10% of a fully optimised server (etcd round trips dominate them).
  local gcflags=(-gcflags='all=-N -l' -gcflags='std=')
  local started=$SECONDS
  # A clean environment: no GOFLAGS, GOOS, GOEXPERIMENT... from the caller.
  env -i HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}" GOGC=400 \
    PATH="$goroot/bin:/usr/bin:/bin" GOROOT="$goroot" GOPATH="$ROOT/usr/share/gocode" \
    GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOWORK=off GOTELEMETRY=off \
    GOCACHE="$CACHE_DIR/gocache" CGO_ENABLED=0 \
    go build -trimpath "${gcflags[@]}" -ldflags="$ldflags" -o "$BUILD_DIR.tmp/bin/$SERVER_BIN_NAME" "$HACK_DIR/main.go" >&2
  log "built in $((SECONDS - started))s"
  cp "$ROOT/usr/bin/etcd" "$ROOT/usr/bin/kubectl" "$BUILD_DIR.tmp/bin/"
  "$BUILD_DIR.tmp/bin/etcd" --version >/dev/null
  "$BUILD_DIR.tmp/bin/kubectl" version --client >/dev/null
  cp "$LOCKFILE" "$BUILD_DIR.tmp/packages.lock"
  touch "$BUILD_DIR.tmp/.complete"
  rm -rf "$BUILD_DIR"
  mv "$BUILD_DIR.tmp" "$BUILD_DIR"
  # Drop builds nobody started for a week (`up` touches the one it starts; a running
  # server may well use an older build than the newest).
  touch "$BUILD_DIR"
  find "$CACHE_DIR/builds" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} +
}

# Makes sure $BIN_DIR holds the server, etcd and kubectl. Sets BIN_DIR.
ensure_built() {
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.build.lock"
  if ! flock -n 8; then
    log "waiting for another build in $CACHE_DIR"
    flock 8
  fi
  if [[ $REFRESH == 1 || ! -s $LOCKFILE ]]; then
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
      extract_debs
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

choose_ports() {
  APISERVER_PORT=${ALICLOUD_ROLLOUTS_APISERVER_PORT:-}
  ETCD_PORT=${ALICLOUD_ROLLOUTS_ETCD_PORT:-}
  ETCD_PEER_PORT=${ALICLOUD_ROLLOUTS_ETCD_PEER_PORT:-}
  local var
  for var in APISERVER_PORT ETCD_PORT ETCD_PEER_PORT; do
    if [[ -n ${!var} ]]; then
      port_taken "${!var}" && die "port ${!var} (ALICLOUD_ROLLOUTS_$var) is in use"
    fi
  done
  [[ -n $APISERVER_PORT ]] || APISERVER_PORT=$(pick_port "$ETCD_PORT" "$ETCD_PEER_PORT")
  [[ -n $ETCD_PORT ]] || ETCD_PORT=$(pick_port "$APISERVER_PORT" "$ETCD_PEER_PORT")
  [[ -n $ETCD_PEER_PORT ]] || ETCD_PEER_PORT=$(pick_port "$APISERVER_PORT" "$ETCD_PORT")
}

make_certs() {
  local d=$STATE_DIR/pki
  mkdir -p "$d"
  cat >"$d/openssl.cnf" <<'EOF'
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
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  local ossl=(openssl)
  "${ossl[@]}" req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config "$d/openssl.cnf" \
    -extensions ca -subj "/CN=alicloud-rollouts-local-ca" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  local name subj
  for name in server client; do
    if [[ $name == server ]]; then subj="/CN=localhost"; else subj="/O=system:masters/CN=alicloud-rollouts-admin"; fi
    "${ossl[@]}" req -new -nodes -newkey rsa:2048 -sha256 -config "$d/openssl.cnf" -subj "$subj" \
      -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    "${ossl[@]}" x509 -req -sha256 -days 825 -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
      -set_serial "0x$(openssl rand -hex 12)" -extfile "$d/openssl.cnf" -extensions "$name" \
      -out "$d/$name.crt" 2>/dev/null
    rm -f "$d/$name.csr"
  done
  chmod 600 "$d"/*.key
}

write_kubeconfig() {
  local d=$STATE_DIR/pki b64=(base64 -w0)
  umask 077
  cat >"$STATE_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: alicloud-rollouts-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $("${b64[@]}" "$d/ca.crt")
users:
- name: alicloud-rollouts-admin
  user:
    client-certificate-data: $("${b64[@]}" "$d/client.crt")
    client-key-data: $("${b64[@]}" "$d/client.key")
contexts:
- name: alicloud-rollouts-local
  context:
    cluster: alicloud-rollouts-local
    user: alicloud-rollouts-admin
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

# pid of a live process of ours named $1 (etcd or apiserver), or nothing.
live_pid() {
  local f=$STATE_DIR/$1.pid pid exe want
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}
  # Guard against a recycled pid: it must still run the binary we started.
  if [[ $1 == etcd ]]; then want=etcd; else want=$SERVER_BIN_NAME; fi
  [[ ${exe##*/} == "$want" && $exe == */builds/*/bin/* ]] || return 1
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

# Both processes alive, the binaries still there, and /healthz answering "ok" (a busy
# server gets a few tries before it counts as broken).
healthy() {
  load_env && live_pid etcd >/dev/null && live_pid apiserver >/dev/null &&
    [[ -x $BIN_DIR/kubectl ]] || return 1
  local i
  for ((i = 0; i < ${1:-1}; i++)); do
    ((i == 0)) || sleep 1
    [[ $(curl_api /healthz 2>/dev/null) == ok ]] && return 0
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
  stop_one apiserver
  stop_one etcd
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
apiserver_healthy() { [[ $(curl_api /healthz) == ok ]]; }

start_etcd() {
  spawn etcd "$BIN_DIR/etcd" --name local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn --quota-backend-bytes 2147483648
}

start_apiserver() {
  local d=$STATE_DIR/pki kc=$STATE_DIR/kubeconfig
  spawn apiserver "$BIN_DIR/$SERVER_BIN_NAME" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$STATE_DIR/apiserver-certs" \
    --tls-cert-file "$d/server.crt" --tls-private-key-file "$d/server.key" \
    --client-ca-file "$d/ca.crt" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --authentication-skip-lookup \
    --enable-priority-and-fairness=false \
    --disable-admission-plugins NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook
}

register_crds() {
  local kubectl=("$BIN_DIR/kubectl" --kubeconfig "$STATE_DIR/kubeconfig")
  "${kubectl[@]}" apply --validate=false -f "$HACK_DIR/crds/" >&2
  "${kubectl[@]}" wait --for condition=Established --timeout=60s \
    crd/events.events.k8s.io crd/leases.coordination.k8s.io >&2
  # Established can come a moment before the new resources are served.
  local path
  for path in /apis/events.k8s.io/v1/events /apis/coordination.k8s.io/v1/leases; do
    wait_for "$path" apiserver curl_api "$path?limit=1"
  done
}

start_all() {
  local attempt rc
  for attempt in 1 2 3; do
    mkdir -p "$STATE_DIR/logs"
    touch "$STATE_DIR/$STATE_MARKER"
    choose_ports
    {
      echo "APISERVER_PORT=$APISERVER_PORT"
      echo "ETCD_PORT=$ETCD_PORT"
      echo "ETCD_PEER_PORT=$ETCD_PEER_PORT"
      printf 'BIN_DIR=%q\n' "$BIN_DIR"
    } >"$STATE_DIR/env"
    [[ -e $STATE_DIR/pki/ca.crt ]] || make_certs
    write_kubeconfig
    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    start_etcd
    rc=0
    wait_for etcd etcd etcd_healthy || rc=$?
    if ((rc == 0)); then
      log "starting the API server on https://127.0.0.1:$APISERVER_PORT"
      start_apiserver
      wait_for "the API server" apiserver apiserver_healthy || rc=$?
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
    if [[ -s $LOCKFILE ]] && compute_keys && [[ $BIN_DIR != "$running" ]]; then
      log "note: it runs an older build than hack/apiserver/main.go gives; \`down\` then \`up\` to switch"
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
  trap 'stop_one apiserver; stop_one etcd' EXIT
  start_all
  log "registering the events.k8s.io and coordination.k8s.io CRDs"
  register_crds
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
    log "running: https://127.0.0.1:$APISERVER_PORT" \
      "(apiserver pid $(live_pid apiserver), etcd pid $(live_pid etcd), state: $STATE_DIR)"
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

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  cat >&2 <<'EOF'
Environment:
  ALICLOUD_ROLLOUTS_STATE             runtime state dir (default ~/.cache/alicloud-rollouts/state)
  ALICLOUD_ROLLOUTS_APISERVER_CACHE   build cache (default ~/.cache/alicloud-rollouts/apiserver)
  ALICLOUD_ROLLOUTS_APISERVER_PORT    API server port   (default: a free one)
  ALICLOUD_ROLLOUTS_ETCD_PORT         etcd client port  (default: a free one)
  ALICLOUD_ROLLOUTS_ETCD_PEER_PORT    etcd peer port    (default: a free one)
  ALICLOUD_ROLLOUTS_APISERVER_REFRESH 1: resolve the newest sid package versions again
  ALICLOUD_ROLLOUTS_APISERVER_GO      Go series from sid to build with (default 1.26)
  ALICLOUD_ROLLOUTS_APISERVER_TIMEOUT seconds to wait for start-up (default 120)
  ALICLOUD_ROLLOUTS_DEBIAN_MIRROR     Debian archive URL (default: the host's)
  ALICLOUD_ROLLOUTS_DEBIAN_SUITE      suite to fetch from (default sid)
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
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
