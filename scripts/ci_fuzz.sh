#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan + coverage) and runs each for FUZZ_SECONDS
# (default 60) from the seed corpus. Fails on any crash, sanitizer report, leak, timeout or OOM.
#   scripts/ci_fuzz.sh [seconds]         env: BUILD_DIR (build-fuzz), CXX (clang++)
# A finding is left in $BUILD_DIR/fuzz-artifacts/<target>/; once fixed, copy it into
# tests/fuzz/regressions/<target>/ (ctest in a fuzz build replays those).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-${FUZZ_SECONDS:-60}}"
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
CMAKE="${CMAKE:-$(dirname "$PYTHON")/cmake}"
command -v "$CMAKE" >/dev/null || CMAKE=cmake

"$CMAKE" -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${CXX:-clang++}" \
  -DETGPU_BUILD_FUZZERS=ON -DETGPU_CUDA=OFF -DETGPU_EXECUTORCH=OFF -DETGPU_BUILD_TOOLS=OFF >/dev/null
"$CMAKE" --build "$BUILD_DIR" --target fuzz_payload fuzz_container fuzz_packed_float fuzz_huffman_bytes

# Seeds: the checked-in corpus (regenerate with tests/fuzz/make_corpus.py when the IR changes).
SEEDS=tests/fuzz/corpus
status=0
for target in fuzz_payload fuzz_container fuzz_packed_float fuzz_huffman_bytes; do
  kind="${target#fuzz_}"
  work="$BUILD_DIR/fuzz-corpus/$target"; artifacts="$BUILD_DIR/fuzz-artifacts/$target"
  mkdir -p "$work" "$artifacts"
  # Known findings first: each must now run clean (a target may have none yet).
  if [ -d "tests/fuzz/regressions/$target" ]; then
    "$BUILD_DIR/tests/fuzz/$target" -runs=0 "tests/fuzz/regressions/$target" || status=1
  fi
  echo "== $target: ${SECONDS_PER_TARGET}s"
  # -rss_limit_mb / -malloc_limit_mb: a program may ask for at most 1 MiB of device memory in the
  # fuzzers (fuzz_common.h), so any large allocation is a finding. -timeout: no input may take 10 s.
  if ! ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      "$BUILD_DIR/tests/fuzz/$target" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" "$SEEDS/$kind" 2>"$BUILD_DIR/$target.log"; then
    status=1
    echo "!! $target found a problem: $(ls "$artifacts")"
    grep -E "ERROR|SUMMARY|runtime error" "$BUILD_DIR/$target.log" | head -5
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$BUILD_DIR/$target.log" || true
done
exit $status
