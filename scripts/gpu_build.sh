# Sourced by gpu_test.sh and gpu_bench.sh: picks the interpreter and builds etgpu with the CUDA
# engine on a bare GPU machine.
#   ETGPU_CUDA_ARCH   CUDA architectures (default 90a: H100/H200)
#   BUILD_DIR         build folder (default build-gpu)
#   PYTHON            interpreter with torch (default: .venv/bin/python if present, else python3)
#   FLATBUFFERS_ROOT  a flatbuffers install (bin/flatc, include/) when not on the system
#   GTEST_ROOT        a GoogleTest install (lib/.../cmake/GTest, include/) when not on the system
ARCH=${ETGPU_CUDA_ARCH:-90a}
BUILD=${BUILD_DIR:-build-gpu}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=$PWD/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi

# gpu_build LOG_DIR: configure + build (logs in LOG_DIR), then point Python at the build. On a
# failure it shows the logs' tails and returns nonzero.
gpu_build() {
  local logs=$1 start args=()
  if [ -n "${FLATBUFFERS_ROOT:-}" ]; then
    args=(-DFLATC="$FLATBUFFERS_ROOT/bin/flatc" -DFLATBUFFERS_INCLUDE_DIR="$FLATBUFFERS_ROOT/include")
  fi
  if [ -n "${GTEST_ROOT:-}" ]; then
    args+=(-DCMAKE_PREFIX_PATH="$GTEST_ROOT")
  fi
  echo "== build (CUDA architectures $ARCH)"
  start=$(date +%s)
  if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DETGPU_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DPython3_EXECUTABLE="$PYTHON" "${args[@]}" >"$logs/configure.log" 2>&1 ||
     ! cmake --build "$BUILD" -j "$(nproc)" >"$logs/build.log" 2>&1; then
    tail -n 60 "$logs/configure.log" "$logs/build.log" 2>/dev/null
    return 1
  fi
  echo "built in $(( $(date +%s) - start )) s"
  ETGPU_BUILD_DIR=$(cd "$BUILD" && pwd)
  export ETGPU_BUILD_DIR
  export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
}
