#!/bin/sh
# Installs the Debian packages scored needs to build, test and run, skipping those already
# present (idempotent). Run as root on Debian 12; the Makefile calls it when pkg-config
# cannot find a dependency. Usage: deploy/install-deps.sh [--tools]
#   --tools  also installs what tools/ needs (PyTorch, the Fashion-MNIST data set, the emoji
#            font the emoji-32 data set is read from, fontTools and PIL to read it).
set -eu

BUILD_PKGS="gcc make pkg-config libopenblas-dev libpng-dev zlib1g-dev libjansson-dev \
libmicrohttpd-dev libuv1-dev libcmocka-dev python3 python3-pytest python3-numpy \
python3-yaml python3-jsonschema python3-requests"
TOOLS_PKGS="dataset-fashion-mnist fonts-noto-color-emoji python3-fonttools python3-pil python3-torch"

want="$BUILD_PKGS"
[ "${1:-}" = "--tools" ] && want="$want $TOOLS_PKGS"

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root (or: sudo apt-get install$missing)" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "install-deps: apt-get update failed; trying the cached package lists" >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
