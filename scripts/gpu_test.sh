#!/usr/bin/env bash
# One command on a bare GPU machine: configure and build etgpu with the CUDA engine, run the C++
# tests, run the whole pytest suite with the CUDA engine under test, run compute-sanitizer
# (memcheck and racecheck) over small programs and a tiny LLM decode step, and report GPU memory
# around a model's life. Prints a sanitizer table (errors per tool and model, and the program's exit
# code), then `N passed, M failed` last (pytest items, plus the sanitizers as one item).
#   GPU_TEST_LOG_DIR  where logs go (default $BUILD_DIR/gpu-test)
#   GPU_TEST_PYTEST   0: skip the pytest suite (C++ tests and sanitizers only)
#   (build and interpreter variables: scripts/gpu_build.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_build.sh
LOGS=${GPU_TEST_LOG_DIR:-$BUILD/gpu-test}
mkdir -p "$LOGS"
# pytest-xdist, when present, runs the suite on several workers (exports are CPU-bound).
XDIST=()
if "$PYTHON" -c "import xdist" 2>/dev/null; then XDIST=(-n "${PYTEST_WORKERS:-8}"); fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if ! gpu_build "$LOGS"; then
  echo "0 passed, 1 failed (build)"
  exit 1
fi

export ETGPU_TEST_DEVICE=cuda ETGPU_TEST_PTE=0 PYTHONUNBUFFERED=1

CPP_FAILED=0
if [ -n "$(cd "$BUILD" && ctest -N 2>/dev/null | grep -E 'Total Tests: [1-9]')" ]; then
  echo "== C++ tests"
  (cd "$BUILD" && ctest --output-on-failure) >"$LOGS/ctest.log" 2>&1 || CPP_FAILED=1
  tail -n 3 "$LOGS/ctest.log"
fi

PASSED=0 FAILED=0 SKIPPED=0
if [ "${GPU_TEST_PYTEST:-1}" != 0 ]; then
echo "== pytest (engine: cuda)"
# The device-memory tests read the whole GPU's free memory, so they run alone, after the rest
# (parallel workers' engines would move the figure).
ALONE=(tests/ops/test_cuda_engine.py::test_device_memory_released
       tests/reliability/test_device_faults.py::test_program_larger_than_free_gpu_memory_fails_init_and_holds_nothing)
"$PYTHON" -m pytest -q -p no:cacheprovider -rfs "${XDIST[@]}" --junitxml="$LOGS/junit.xml" tests -s \
  "${ALONE[@]/#/--deselect=}" 2>&1 | tee "$LOGS/pytest.log" | grep -E "graph stats|FAILED|ERROR|passed|failed" | tail -n 60
"$PYTHON" -m pytest -q -p no:cacheprovider -rfs --junitxml="$LOGS/junit-alone.xml" "${ALONE[@]}" -s 2>&1 |
  tee -a "$LOGS/pytest.log" | grep -E "GPU memory free|FAILED|ERROR|passed|failed" | tail -n 5
read -r PASSED FAILED SKIPPED < <("$PYTHON" - "$LOGS/junit.xml" "$LOGS/junit-alone.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception:
        failed += 1
        continue
    suites = [root] if root.tag == "testsuite" else list(root)
    t = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    k = sum(int(s.get("skipped", 0)) for s in suites)
    passed, failed, skipped = passed + t - f - k, failed + f, skipped + k
print(passed, failed, skipped)
PY
)
fi

echo "== compute-sanitizer memcheck + racecheck"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
SAN_FAILED=0
SAN_TABLE=()
if [ -z "$SAN" ]; then
  echo "compute-sanitizer not found: memcheck and racecheck skipped"
else
  MODELS="$LOGS/models"
  mkdir -p "$MODELS"
  # Small programs covering every kernel family (custom ops reach the families whose ATen
  # lowering lives elsewhere); etgpu_run feeds seeded inputs and runs 3 steps (eager, capture,
  # replay) so the graph path is checked too. The tiny LLM decodes one token at position 3 with
  # given inputs (seeded ones would put repeated positions in one cache write, a real race).
  # <name>.args holds a model's extra etgpu_run arguments.
  "$PYTHON" - "$MODELS" <<'PY' >"$LOGS/sanitizer-models.log" 2>&1 || SAN_FAILED=1
import sys
sys.path[:0] = ["tests", "tests/ops"]
import torch, etgpu
import test_cuda_engine as t
from parity import Fn, export, randn
from etgpu.llm import build_hf_model, export_llm
out = sys.argv[1]
T = t.T
cases = {
    "mlp": (t._mlp(), (randn(8, 64),)),
    "elementwise": (Fn(lambda x, y: (torch.where(x > y, x * y, x - y).exp(), (x + y).permute(1, 0)[1:],
                                     torch.cat([x, y], 0))), (randn(6, 9), randn(6, 9))),
    "bf16_matmul": (Fn(lambda a, b: a @ b), (randn(2, 33, 40, dtype=torch.bfloat16), randn(2, 40, 17, dtype=torch.bfloat16))),
    "reduce_norm": (Fn(lambda x, w: (T.reduce(x, 0, [1], False), T.reduce(x, 5, [2], True), T.softmax(x, 1, False),
                                     T.layer_norm(x, w, w, 1, 1e-5), T.rms_norm(x, w, 1e-6, True))),
                    (randn(3, 50, 70), randn(70))),
    "index": (Fn(lambda x, i: (T.index_select(x, i, 0), T.gather(x, i[:, None].expand(4, 5), 0))),
              (randn(9, 5), torch.tensor([0, 3, -1, 8]))),
    "sdpa": (Fn(lambda q, k, v: T.sdpa(q, k, v, None, 0.0, True)), (randn(1, 4, 37, 64), randn(1, 2, 37, 64), randn(1, 2, 37, 64))),
    "sdpa_decode": (Fn(lambda q, k, v: T.sdpa(q, k, v, None, 0.0, True)), (randn(1, 4, 1, 64), randn(1, 2, 900, 64), randn(1, 2, 900, 64))),
    # bf16 takes the tensor-core prefill kernel (shared-memory tiles: racecheck's main target).
    "sdpa_prefill_bf16": (Fn(lambda q, k, v: T.sdpa(q, k, v, None, 0.0, True)),
                          tuple(randn(1, h, 150, 64, dtype=torch.bfloat16) for h in (4, 2, 2))),
}
for name, (module, inputs) in cases.items():
    etgpu.compile(export(module.eval(), inputs), f"{out}/{name}.etgpu")
    print("wrote", name)
etgpu.compile(export_llm(build_hf_model("llama3.2-1b", "tiny", seed=0), 64), f"{out}/llm_decode.etgpu")
torch.tensor([[5]]).numpy().tofile(f"{out}/llm_decode.tokens.bin")
torch.tensor([3]).numpy().tofile(f"{out}/llm_decode.positions.bin")
with open(f"{out}/llm_decode.args", "w") as f:
    f.write(f"--input 0={out}/llm_decode.tokens.bin:1,1 --input 1={out}/llm_decode.positions.bin:1")
print("wrote llm_decode")
# The same decode step with int4-g32 linears and an int8 tied embedding (quantized GEMV, embedding).
from etgpu.llm.quantize import quantize_model
quantized = quantize_model(build_hf_model("llama3.2-1b", "tiny", torch.bfloat16, seed=0), "int4-g32", "int8")
etgpu.compile(export_llm(quantized, 64), f"{out}/llm_decode_int4.etgpu")
for suffix in ("tokens.bin", "positions.bin", "args"):
    with open(f"{out}/llm_decode.{suffix}", "rb") as src, open(f"{out}/llm_decode_int4.{suffix}", "wb") as dst:
        dst.write(src.read().replace(b"llm_decode.", b"llm_decode_int4."))
print("wrote llm_decode_int4")
PY
  RUN=$(find "$BUILD" -name etgpu_run -type f -perm -u+x | head -n 1)
  # memcheck: out-of-bounds and misaligned accesses, leaks; racecheck: shared-memory hazards.
  declare -A TOOL_ARGS=([memcheck]="--leak-check full" [racecheck]="--racecheck-report all")
  for m in "$MODELS"/*.etgpu; do
    name=$(basename "$m" .etgpu)
    row="$name"
    for tool in memcheck racecheck; do
      log="$LOGS/$tool-$name.log"
      # shellcheck disable=SC2046,SC2086  # the args are words on purpose
      "$SAN" --tool $tool --error-exitcode 9 ${TOOL_ARGS[$tool]} "$RUN" "$m" --device cuda --iters 3 \
        $(cat "$MODELS/$name.args" 2>/dev/null) >"$log" 2>&1
      rc=$?
      # "ERROR SUMMARY: N errors" (memcheck), "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)"
      errors=$(grep -oE "ERROR SUMMARY: [0-9]+|\([0-9]+ errors" "$log" | grep -oE "[0-9]+" | tail -n 1)
      row="$row ${errors:-?}/rc$rc"
      # rc 9: the sanitizer found errors; another nonzero rc from the program itself (an index
      # flagged out of range by the seeded inputs is reported, not a memory error) is shown but
      # not a sanitizer failure. No summary at all means the sanitizer did not finish.
      if [ $rc -eq 9 ] || [ -z "$errors" ]; then SAN_FAILED=1; fi
    done
    SAN_TABLE+=("$row")
  done
  [ -z "$(ls "$MODELS"/*.etgpu 2>/dev/null)" ] && SAN_FAILED=1
  printf '%-20s %-24s %s\n' model "memcheck(errors/rc)" "racecheck(errors/rc)"
  # shellcheck disable=SC2086  # a row is three words on purpose
  for row in "${SAN_TABLE[@]}"; do printf '%-20s %-24s %s\n' $row; done
fi

[ $CPP_FAILED -ne 0 ] && { echo "C++ tests failed"; FAILED=$((FAILED + 1)); }
if [ $SAN_FAILED -ne 0 ]; then echo "sanitizer: FAILED"; FAILED=$((FAILED + 1)); else echo "sanitizer: clean"; PASSED=$((PASSED + 1)); fi
echo "skipped: $SKIPPED"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
