#!/bin/sh
# Create the project's virtualenv (default .venv) so that installs never touch
# the system Python (Debian's python3 refuses `pip install` outside a venv).
# Debian ships venv support separately: install python3-venv when we can.
set -e
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ]; then
    exit 0
fi
if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap-venv: installing python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends python3-venv >/dev/null
        "$PYTHON" -m venv "$VENV"
    else
        echo "bootstrap-venv: '$PYTHON -m venv' failed; install your distribution's python3-venv" >&2
        exit 2
    fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
