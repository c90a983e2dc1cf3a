#!/bin/sh
# Debian packages the solver path needs: ASL headers/library for PyNumero, and a C++ toolchain;
# Chromium for the browser test of the explorers (driven by Playwright); PostgreSQL for the registry's
# tests against a real server (the tests start and stop their own server on a loopback port).
# Installs them when running as root; otherwise prints the exact command and fails.
set -eu
PACKAGES="libamplsolver-dev cmake g++ make chromium postgresql"
if ! command -v dpkg >/dev/null 2>&1; then
    echo "system-deps: not a Debian/Ubuntu system; provide ASL (conda-forge 'ampl-asl'), cmake and a C++ compiler yourself" >&2
    exit 0
fi
missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "system-deps: $PACKAGES present"
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    echo "system-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing
else
    echo "system-deps: missing Debian packages:$missing" >&2
    echo "system-deps: run:  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
