"""Times the CUDA engine on a few kernels that matter, against PyTorch CUDA eager on the same GPU.

Weights and K/V are constants (resident on the GPU), inputs and outputs are small, so etgpu's
end-to-end time (etgpu_run: upload, step, download, synchronize) is dominated by the kernels.
PyTorch's time is its kernels alone (CUDA events, median). Usage: cuda_bench.py BUILD_DIR OUT_DIR"""

import os
import re
import subprocess
import sys

sys.path[:0] = ["tests", "tests/ops"]
import torch  # noqa: E402

import etgpu  # noqa: E402
import test_cuda_engine as t  # noqa: E402
from parity import Fn, export, randn  # noqa: E402

T = t.T
build, out_dir = sys.argv[1], sys.argv[2]
run_bin = next(os.path.join(d, "etgpu_run") for d, _, files in os.walk(build) if "etgpu_run" in files)
bf16 = torch.bfloat16


def torch_ms(fn, args, iters=30):
    args = [a.cuda() for a in args]
    with torch.no_grad(), torch.device("cuda"):
        for _ in range(3):
            fn(*args)
        times = []
        for _ in range(iters):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn(*args)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
    return sorted(times)[len(times) // 2]


def etgpu_ms(name, module, inputs, graphs=True):
    path = os.path.join(out_dir, f"{name}.etgpu")
    if not os.path.exists(path):
        etgpu.compile(export(module.eval(), inputs), path)
    env = dict(os.environ, ETGPU_CUDA_GRAPHS="1" if graphs else "0")
    text = subprocess.run([run_bin, path, "--device", "cuda", "--iters", "30"], env=env, capture_output=True,
                          text=True, check=True).stdout
    return float(re.search(r"best of \d+: ([0-9.]+) ms", text).group(1))


def case_gemm():
    w = randn(4096, 4096, dtype=bf16) * 0.02
    fn = lambda x, w: T.reduce(x.expand(4096, 4096).contiguous() @ w, 0, [1], False)
    return "gemm bf16 4096^3 (+expand, row sum)", Fn(fn, w), (randn(1, 4096, dtype=bf16),), 2 * 4096 ** 3, None


def case_prefill():
    q, k, v = (randn(1, 32, 2048, 128, dtype=bf16) for _ in range(3))
    fn = lambda x, q, k, v: T.reduce(T.sdpa(q * x, k, v, None, 0.0, True), 0, [3], False)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ref = lambda x, q, k, v: sdpa(q * x, k, v, is_causal=True).sum(3)  # L == S: both causal alignments agree
    return ("sdpa prefill causal bf16 H32 L=S=2048 E128", Fn(fn, q, k, v), (randn(1, dtype=bf16),),
            2 * 2 * 32 * 2048 * 2048 * 128 // 2, Fn(ref, q, k, v))


def case_decode():
    k, v = randn(1, 8, 8192, 128, dtype=bf16), randn(1, 8, 8192, 128, dtype=bf16)
    fn = lambda q, k, v: T.sdpa(q, k, v, None, 0.0, True)
    ref = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return ("sdpa decode bf16 H32/Hkv8 S=8192 E128", Fn(fn, k, v), (randn(1, 32, 1, 128, dtype=bf16),),
            2 * 2 * 32 * 8192 * 128, Fn(ref, k, v))


def case_layers():
    torch.manual_seed(0)
    ws = [randn(1024, 1024, dtype=bf16) * 0.03 for _ in range(16)]
    nw = randn(1024, dtype=bf16)

    def fn(x, nw, *ws):
        for i in range(0, 16, 2):
            h = T.rms_norm(x, nw, 1e-6, False)
            x = x + torch.nn.functional.silu(h @ ws[i]) @ ws[i + 1]
        return x

    return "8 blocks rmsnorm+2 matmul, 1 token bf16", Fn(fn, nw, *ws), (randn(1, 1024, dtype=bf16),), 0, None


rows = []
for make in (case_gemm, case_prefill, case_decode, case_layers):
    name, module, inputs, flops, torch_module = make()
    ref = (torch_module or module).to("cuda")
    tm = torch_ms(lambda *a: ref(*a), inputs)
    ref.to("cpu")
    g = etgpu_ms(name.split()[0] + name.split()[1], module, inputs, graphs=True)
    e = etgpu_ms(name.split()[0] + name.split()[1], module, inputs, graphs=False)
    rows.append((name, tm, g, e, flops))
print(f"{'case':45s} {'torch ms':>9s} {'etgpu ms':>9s} {'no graph':>9s} {'etgpu TFLOP/s':>13s}")
for name, tm, g, e, flops in rows:
    tf = f"{flops / g / 1e9:.1f}" if flops else "-"
    print(f"{name:45s} {tm:9.3f} {g:9.3f} {e:9.3f} {tf:>13s}")
