"""Where a decode step's GPU time goes: exports a full-size recipe (random bf16 weights), runs a
prefill and a few decode steps, and wraps one decode step in an NVTX range "decode" so that
Nsight Compute can time each of its kernels (the prefill is wrapped in a range "prefill"):
  ETGPU_CUDA_GRAPHS=0 ncu --clock-control none --nvtx --nvtx-include "decode/" \
      --metrics gpu__time_duration.sum --csv python3 scripts/profile_decode.py qwen3-0.6b
Without ncu it prints the wall time per decode step, and the mean GPU time of 50 replayed steps
after them (the engine's events around each step). `--quant` and `--quant-embeddings` quantize
the model as `etgpu export` does (TorchAO must be importable).
`profile_decode.py --summarize FILE.csv` sums ncu's CSV per kernel name.
Usage: profile_decode.py ARCH [PREFILL] [--quant SCHEME] [--quant-embeddings BITS] | --summarize FILE.csv"""

import argparse
import collections
import csv
import re
import sys
import time

import torch

import etgpu
from etgpu.llm import build_hf_model, export_llm


def summarize(path, top=24):
    rows = list(csv.reader(line for line in open(path) if line.startswith('"')))
    head = rows[0]
    name, value, unit = head.index("Kernel Name"), head.index("Metric Value"), head.index("Metric Unit")
    to_us = {"ns": 1e-3, "us": 1.0, "ms": 1e3}
    per_kernel = collections.defaultdict(lambda: [0, 0.0])
    for row in rows[1:]:
        kernel = re.sub(r"\(.*", "", row[name]).replace("void etgpu::<unnamed>::", "")[:60]
        per_kernel[kernel][0] += 1
        per_kernel[kernel][1] += float(row[value].replace(",", "")) * to_us[row[unit]]
    total = sum(t for _, t in per_kernel.values())
    print(f"{path}: {sum(n for n, _ in per_kernel.values())} kernels, {total:.1f} us")
    for kernel, (count, us) in sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{us:9.1f} us {count:5d}  {kernel}")


def gpu_ms_per_step(program, tokens, start, steps=50):
    """Mean GPU milliseconds of `steps` decode steps from position `start`: the engine's own events
    around each step (stats' last_step_gpu_ms), so host time between steps does not count."""
    total = 0.0
    for t in range(start, start + steps):
        program.run([tokens[:, t:t + 1], torch.tensor([t])])
        total += program.stats()["last_step_gpu_ms"]
    return total / steps


def main():
    if sys.argv[1] == "--summarize":
        return summarize(sys.argv[2])
    parser = argparse.ArgumentParser()
    parser.add_argument("arch")
    parser.add_argument("prefill", nargs="?", type=int, default=128)
    parser.add_argument("--quant")
    parser.add_argument("--quant-embeddings")
    args = parser.parse_args()
    arch, prefill = args.arch, args.prefill
    with torch.device("cuda"):  # transformers' random initialisation is slow on the CPU
        model = build_hf_model(arch, "full", dtype=torch.bfloat16, seed=0).cpu()
    if args.quant or args.quant_embeddings:
        from etgpu.llm.quantize import quantize_model
        quantize_model(model, args.quant, args.quant_embeddings)
    program = etgpu.Model(etgpu.compile(export_llm(model, prefill + 64)), device="cuda")
    tokens = torch.randint(0, model.config.vocab_size, (1, prefill + 8))
    torch.cuda.nvtx.range_push("prefill")  # --nvtx-include "prefill/" times the prompt's kernels
    program.run([tokens[:, :prefill], torch.arange(prefill)])
    torch.cuda.nvtx.range_pop()
    times = []
    for t in range(prefill, prefill + 8):
        step = [tokens[:, t:t + 1], torch.tensor([t])]
        if t == prefill + 4:
            torch.cuda.nvtx.range_push("decode")
        start = time.perf_counter()
        program.run(step)
        times.append(time.perf_counter() - start)
        if t == prefill + 4:
            torch.cuda.nvtx.range_pop()
    print(f"{arch}: decode step wall ms {[round(x * 1e3, 2) for x in times]}; stats {program.stats()}")
    # The timed steps take positions prefill + 8 .. prefill + 57, within the exported prefill + 64.
    tokens = torch.randint(0, model.config.vocab_size, (1, prefill + 64))
    print(f"{arch} {args.quant or 'bf16'} emb {args.quant_embeddings or '-'}: "
          f"decode GPU ms/step {gpu_ms_per_step(program, tokens, prefill + 8):.4f}")


if __name__ == "__main__":
    main()
