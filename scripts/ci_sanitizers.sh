#!/usr/bin/env bash
# Builds the runtime, tools and C++ tests with AddressSanitizer + UndefinedBehaviorSanitizer
# (CPU engine only), runs ctest, then runs every seed-corpus .etgpu file through etgpu_run (a C++
# driver: loading libasan into Python is awkward). LeakSanitizer is on; any report fails the job.
#   scripts/ci_sanitizers.sh            env: BUILD_DIR (build-asan), PYTHON (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-asan}"
PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
CMAKE="${CMAKE:-$(dirname "$PYTHON")/cmake}"
CTEST="${CTEST:-$(dirname "$PYTHON")/ctest}"
command -v "$CMAKE" >/dev/null || CMAKE=cmake
command -v "$CTEST" >/dev/null || CTEST=ctest
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
start=$(date +%s)

"$CMAKE" -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DETGPU_CUDA=OFF -DETGPU_EXECUTORCH=OFF \
  -DETGPU_SANITIZE=address,undefined -DETGPU_BUILD_TESTS=ON -DETGPU_BUILD_TOOLS=ON -DPython3_EXECUTABLE="$PYTHON" >/dev/null
"$CMAKE" --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
built=$(date +%s)

(cd "$BUILD_DIR" && "$CTEST" --output-on-failure -j "${JOBS:-$(nproc)}")

# Every corpus model, twice each (the second run takes the cached-shape path).
log="$BUILD_DIR/sanitized_runs.log"
: >"$log"
for model in tests/fuzz/corpus/container/*.etgpu; do
  "$BUILD_DIR/runtime/tools/etgpu_run" "$model" --device cpu --iters 2 >>"$log" 2>&1 || {
    echo "!! $model failed under sanitizers"; tail -30 "$log"; exit 1; }
done
if grep -qE "runtime error|ERROR: (Address|Leak)Sanitizer" "$log"; then
  grep -E "runtime error|Sanitizer" "$log" | head; exit 1
fi
end=$(date +%s)
echo "sanitizers: clean; build $((built - start)) s, tests and runs $((end - built)) s, total $((end - start)) s"
