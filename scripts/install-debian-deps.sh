#!/bin/sh
# Installs the Debian packages the test suite needs: nacl-tools (DJB's CurveCP reference tools,
# for test/interop-curvecp.test.ts). Idempotent: does nothing when the tools are on PATH; runs
# `apt-get update` once per call, then `apt-get install -y`. Needs root (or sudo) and apt-get.
set -eu

TOOLS="curvecpserver curvecpclient curvecpmessage curvecpmakekey curvecpprintkey"
PACKAGES="nacl-tools"

missing=""
for tool in $TOOLS; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
  echo "install-debian-deps: nacl-tools already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-debian-deps: missing:$missing, and apt-get is not available; install the Debian package nacl-tools" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-debian-deps: need root (or sudo) to install $PACKAGES" >&2
    exit 1
  fi
fi

echo "install-debian-deps: installing $PACKAGES (missing:$missing)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $PACKAGES

for tool in $TOOLS; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-debian-deps: $tool still missing after installing $PACKAGES" >&2; exit 1; }
done
echo "install-debian-deps: done"
