#!/usr/bin/env bash
# Creates .venv with the pinned toolchain: torch and executorch must match exactly (no C++ ABI
# promise across versions), cmake >= 3.28 and ninja from PyPI; flatbuffers and GoogleTest from
# Debian (apt), as is python3-venv, which Debian splits out of python3, and clang with its runtime
# libraries (libFuzzer, for scripts/ci_fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON_FOR_VENV:-python3}
APT_PACKAGES=()
command -v flatc >/dev/null || APT_PACKAGES+=(flatbuffers-compiler)
[ -f /usr/include/flatbuffers/flatbuffers.h ] || APT_PACKAGES+=(libflatbuffers-dev)
[ -f /usr/include/gtest/gtest.h ] || APT_PACKAGES+=(libgtest-dev)
command -v g++ >/dev/null || APT_PACKAGES+=(g++)
# libFuzzer ships apart from the compiler in Debian (libclang-rt-dev), so link a one-line fuzzer to
# know both are there.
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
  clang++ -fsanitize=fuzzer -x c++ - -o /dev/null 2>/dev/null || APT_PACKAGES+=(clang libclang-rt-dev)
if [ ! -x .venv/bin/python ] && ! "$PY" -c "import ensurepip" 2>/dev/null; then APT_PACKAGES+=(python3-venv); fi
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "setup: apt-get install ${APT_PACKAGES[*]}"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}"
  else
    echo "setup: please install ${APT_PACKAGES[*]} (no apt-get here)" >&2
    exit 1
  fi
fi
# A .venv symlink whose target does not exist here (a shared venv on another machine) is replaced.
if [ -L .venv ] && [ ! -e .venv ]; then rm .venv; fi
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
