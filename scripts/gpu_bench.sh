#!/usr/bin/env bash
# `make gpu-bench`, one command on a bare GPU machine: build etgpu with the CUDA engine (as
# gpu_test.sh does), run `etgpu bench` for each recipe in a process of its own (a crash, a hang or
# running out of memory in one keeps the rows of the others, and each starts with an empty GPU),
# then print one table of all of them with issue #6's targets, last.
#   BENCH_RECIPES  "arch:dtype:quant ..." (default: etgpu.bench.targets.GPU_BENCH_RECIPES)
#   BENCH_ARGS     more `etgpu bench` options, e.g. "--quick"
#   BENCH_DIR      where the JSON results and logs go (default $BUILD_DIR/gpu-bench)
#   BENCH_TIMEOUT  seconds per recipe (default 1500; a killed run keeps the peers already written)
#   BENCH_GPUS     GPUs to spread the recipes over, e.g. "0,1" (default: the one CUDA picks). Each GPU
#                  runs its share of the recipes in turn, pinned to its own slice of the CPU cores so
#                  the peers' host-side launch work does not compete across GPUs.
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
# result_name SPEC: the file name a recipe's results get ("qwen3-4b-bf16-int4-g32").
result_name() {
  local arch dtype quant
  IFS=: read -r arch dtype quant <<<"$1"
  echo "$arch-$dtype$([ "${quant:-none}" = none ] || echo "-$quant")"
}

# run_recipe SPEC: one recipe in a process of its own; its JSON lands in $OUT.
run_recipe() {
  local arch dtype quant name start
  IFS=: read -r arch dtype quant <<<"$1"
  quant=${quant:-none}
  name=$(result_name "$1")
  rm -f "$OUT/$name.json"
  start=$(date +%s)
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  timeout "${BENCH_TIMEOUT:-1500}" "$PYTHON" -m etgpu bench --hf "$arch" --dtype "$dtype" --quant "$quant" \
    --device cuda --out "$OUT/$name.json" ${BENCH_ARGS:-} >"$OUT/$name.log" 2>&1
  echo "== $name: exit $? after $(( $(date +%s) - start )) s (log $OUT/$name.log)"
}

IFS=, read -r -a GPUS <<<"${BENCH_GPUS:-}"
if [ ${#GPUS[@]} -le 1 ]; then
  [ ${#GPUS[@]} -eq 1 ] && export CUDA_VISIBLE_DEVICES=${GPUS[0]}
  for spec in $RECIPES; do run_recipe "$spec"; done
else
  # Recipe i goes to GPU i mod n; GPU k's share runs in turn on cores [k * c, (k + 1) * c).
  read -r -a ALL <<<"$RECIPES"
  CORES=$(( $(nproc) / ${#GPUS[@]} ))
  for k in "${!GPUS[@]}"; do
    (
      export CUDA_VISIBLE_DEVICES=${GPUS[$k]}
      taskset -cp "$(( k * CORES ))-$(( (k + 1) * CORES - 1 ))" $BASHPID >/dev/null  # children inherit it
      for i in "${!ALL[@]}"; do
        [ $(( i % ${#GPUS[@]} )) -eq "$k" ] && run_recipe "${ALL[$i]}"
      done
    ) &
  done
  wait
fi
RESULTS=()
for spec in $RECIPES; do
  f=$OUT/$(result_name "$spec").json
  [ -f "$f" ] && RESULTS+=("$f")
done
[ ${#RESULTS[@]} -gt 0 ] || { echo "gpu-bench: no results"; exit 1; }
echo
"$PYTHON" -m etgpu bench --report "${RESULTS[@]}"
