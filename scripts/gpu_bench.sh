#!/usr/bin/env bash
# `make gpu-bench`, one command on a bare GPU machine: build etgpu with the CUDA engine (as
# gpu_test.sh does), run `etgpu bench` for each recipe in a process of its own (a crash, a hang or
# running out of memory in one keeps the rows of the others, and each starts with an empty GPU),
# then print one table of all of them with issue #6's targets, last.
#   BENCH_RECIPES  "arch:dtype:quant ..." (default: etgpu.bench.targets.GPU_BENCH_RECIPES)
#   BENCH_ARGS     more `etgpu bench` options, e.g. "--quick"
#   BENCH_DIR      where the JSON results and logs go (default $BUILD_DIR/gpu-bench)
#   BENCH_TIMEOUT  seconds per recipe (default 1500; a killed run keeps the peers already written)
#   (build and interpreter variables: scripts/gpu_build.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_build.sh
OUT=${BENCH_DIR:-$BUILD/gpu-bench}
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
gpu_build "$OUT" || { echo "gpu-bench: build failed"; exit 1; }
export PYTHONUNBUFFERED=1

RECIPES=${BENCH_RECIPES:-$("$PYTHON" -c "from etgpu.bench.targets import GPU_BENCH_RECIPES as r; print(' '.join(':'.join(x) for x in r))")}
RESULTS=()
for spec in $RECIPES; do
  IFS=: read -r arch dtype quant <<<"$spec"
  quant=${quant:-none}
  name=$arch-$dtype$([ "$quant" = none ] || echo "-$quant")
  rm -f "$OUT/$name.json"
  start=$(date +%s)
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  timeout "${BENCH_TIMEOUT:-1500}" "$PYTHON" -m etgpu bench --hf "$arch" --dtype "$dtype" --quant "$quant" \
    --device cuda --out "$OUT/$name.json" ${BENCH_ARGS:-} >"$OUT/$name.log" 2>&1
  echo "== $name: exit $? after $(( $(date +%s) - start )) s (log $OUT/$name.log)"
  [ -f "$OUT/$name.json" ] && RESULTS+=("$OUT/$name.json")
done
[ ${#RESULTS[@]} -gt 0 ] || { echo "gpu-bench: no results"; exit 1; }
echo
"$PYTHON" -m etgpu bench --report "${RESULTS[@]}"
