#!/usr/bin/env bash
# Make sure a headless browser exists for the dataset-page rendering test (tests/quality/test_page.py).
# Idempotent: does nothing when /usr/bin/chromium is already there; otherwise installs Debian's
# `chromium` package with apt-get (needs root, as in CI and the dev container).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "ensure-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
