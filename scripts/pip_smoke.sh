#!/usr/bin/env bash
# `pip install .` smoke test: installs etgpu into a scratch venv layered on the project's venv (so
# torch/executorch are not downloaded again), then uses only the installed package, from outside
# the source tree: compile a small model, `etgpu inspect` it, `etgpu run` it.
#   scripts/pip_smoke.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
# Absolute, but not realpath: resolving the venv's python symlink would land on the base interpreter.
BASE_PY=${1:-.venv/bin/python}
BASE_PY="$(cd "$(dirname "$BASE_PY")" && pwd)/$(basename "$BASE_PY")"
SMOKE=$(mktemp -d /tmp/etgpu-pip-smoke.XXXXXX)
trap 'rm -rf "$SMOKE"' EXIT
# A venv made from a venv would see the base interpreter's packages, not the venv's: point it
# at the project venv's site-packages with a .pth file instead of --system-site-packages.
"$BASE_PY" -m venv "$SMOKE/venv"
BASE_SITE=$("$BASE_PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
SMOKE_SITE=$("$SMOKE/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$BASE_SITE" > "$SMOKE_SITE/project_venv.pth"
# The source checkout must not leak into the installed package's imports.
unset PYTHONPATH ETGPU_BUILD_DIR
# The CUDA engine is compiled (and tested) by `make test`; the smoke test checks packaging, so it
# builds without it unless SMOKE_CUDA=AUTO|ON (one architecture then, as in CI).
"$SMOKE/venv/bin/python" -m pip install -q --no-build-isolation --no-deps \
  --config-settings=cmake.define.ETGPU_CUDA="${SMOKE_CUDA:-OFF}" \
  --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES="${SMOKE_CUDA_ARCHITECTURES:-90a}" .
cd "$SMOKE"
"$SMOKE/venv/bin/python" - <<'PY'
import etgpu, torch
from pathlib import Path
assert "site-packages" in etgpu.__file__, etgpu.__file__

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 4)
    def forward(self, x):
        return torch.relu(self.proj(x))

seq = torch.export.Dim("seq", min=1, max=32)
ep = torch.export.export(Net().eval(), (torch.randn(5, 8),), dynamic_shapes=({0: seq},))
etgpu.compile(ep, "net.etgpu")
print("compiled net.etgpu with", etgpu.__file__)
PY
"$SMOKE/venv/bin/etgpu" inspect net.etgpu | tee inspect.txt
grep -q "MatMul" inspect.txt
"$SMOKE/venv/bin/etgpu" run net.etgpu --device auto --iters 3 | tee run.txt
grep -q "output 0: float32\[32x4\]" run.txt
ls "$SMOKE_SITE/etgpu/lib"
echo "pip smoke: ok"
