#!/bin/sh
# Install the Debian tools the interop tests use: a real registry, readers nobody
# here wrote, a runtime, base-image sources (busybox, mmdebstrap: a real Debian root
# filesystem for the inventory tests) and a database.  Needs root and apt;
# elsewhere it says so and the tests that need these tools skip (never in CI).
set -e
PKGS="docker-registry skopeo umoci oci-image-tool runc podman busybox-static postgresql apache2-utils zstd pigz curl time mmdebstrap"
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
