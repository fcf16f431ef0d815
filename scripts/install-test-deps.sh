#!/bin/sh
# Install the Debian tools the tests use: a real registry, readers nobody here
# wrote, runtimes and a Docker Engine, base-image sources and a database.  Needs
# root and apt; elsewhere it says so and the tests that need these tools skip
# (never in CI, where a skip fails: tests/skip_guard.py).
#   registry and readers: docker-registry apache2-utils (htpasswd) skopeo umoci oci-image-tool
#   running images:       runc podman docker.io (dockerd + docker CLI)
#   base images:          busybox-static, mmdebstrap (+ gpg for its signed-by check)
#   tables:               postgresql sqlite3
#   the datasci example:  python3-venv (Debian 12's Python with ensurepip: the venv layer)
#   peers and helpers:    zstd pigz gzip tar openssl curl git time util-linux (unshare, runuser)
set -e
PKGS="docker-registry apache2-utils skopeo umoci oci-image-tool runc podman docker.io busybox-static mmdebstrap gpg postgresql sqlite3 python3-venv zstd pigz gzip tar openssl curl git time util-linux"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: not root or no apt-get; missing:$missing (those tests will skip)" >&2
    exit 0
fi
echo "install-test-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
