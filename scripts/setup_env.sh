#!/usr/bin/env bash
# Creates .venv with the pinned toolchain: torch and executorch must match exactly (no C++ ABI
# promise across versions), cmake >= 3.28 and ninja from PyPI, flatbuffers from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON_FOR_VENV:-python3}
if ! command -v flatc >/dev/null || [ ! -f /usr/include/flatbuffers/flatbuffers.h ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq flatbuffers-compiler libflatbuffers-dev
  fi
fi
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
