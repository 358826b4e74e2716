#!/usr/bin/env bash
# Set up HydroLens on a fresh machine: a Python 3.11 virtualenv in .venv with the pinned stack.
#   scripts/setup.sh          runtime (engine + explorer)
#   scripts/setup.sh test     + test tools and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
# pip, minus the "Location ... is ignored" lines some machines' pip.conf produce; pip's exit code is kept
pip_q() { { .venv/bin/pip -q --disable-pip-version-check "$@" 2>&1; } | { grep -v "^WARNING: Location 'file:" || true; }; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, pinned: the CPU wheel; an unpinned torch would pull GBs of CUDA packages
pip_q install torch==2.13.0
if [ "${1:-}" = "test" ]; then
  pip_q install -e ".[test,cluster]"
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped"
  fi
else
  pip_q install -e .
fi
