#!/usr/bin/env bash
# Installs what the Go interoperability tests (tests/interop_go.rs) need:
# the Go toolchain and the sources of juju/mutex v2 with its dependencies,
# from the Debian packages golang-go and golang-github-juju-mutex-dev
# (sources under /usr/share/gocode/src, built offline in GOPATH mode).
#
# Idempotent and quiet: prints nothing and changes nothing when both
# packages are installed; runs `apt-get update` only when one is missing.
# Runs apt-get through sudo when not root. Exits non-zero when the packages
# cannot be installed or the result is unusable.
set -euo pipefail

packages=(golang-go golang-github-juju-mutex-dev)
gopath="${MACHINE_MUTEX_GOPATH:-/usr/share/gocode}"

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
        echo "install-interop-deps: apt-get not found; install ${missing[*]}" \
            "(or Go and github.com/juju/mutex in a GOPATH named by MACHINE_MUTEX_GOPATH)" >&2
        exit 1
    fi
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >/dev/null
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null; then
    echo "install-interop-deps: 'go' is not on PATH after installing golang-go" >&2
    exit 1
fi
if [[ ! -f "$gopath/src/github.com/juju/mutex/mutex.go" ]]; then
    echo "install-interop-deps: juju/mutex sources not found under $gopath/src" >&2
    exit 1
fi
