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

# The browser tests of the web page (make browser-test) drive Debian's chromium with node.
BROWSER_PKGS="chromium chromium-driver"

missing=""
for p in $want $BROWSER_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# node and npm are looked for as commands: a nodejs from elsewhere (NodeSource's bundles npm and
# conflicts with Debian's npm package) will do.  On Debian 12 npm is a package of its own.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

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
