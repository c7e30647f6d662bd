#!/bin/sh
# Make sure a headless Chromium is on PATH (used by the report's browser test).
# Debian/Ubuntu: installs the `chromium` package with apt when missing and we are root; otherwise says why not.
# Exit 0 when `chromium` is available afterwards, 1 otherwise.
set -u
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure_chromium: chromium is missing and we are not root (install it: sudo apt-get install -y chromium)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: chromium is missing and there is no apt-get here" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
echo "ensure_chromium: apt-get could not install chromium" >&2
exit 1
