"""Full-size LLM recipes on the GPU: random weights, prefill P + decode D (teacher forced), etgpu
logits vs transformers CUDA eager at every step; fp32 greedy agreement. Prints one row per recipe
and writes JSON. Usage: llm_gpu_check.py [--archs a,b] [--prefill 512] [--decode 128] [--out f]"""

import argparse
import json
import time

import torch

import etgpu
from etgpu.llm import build_hf_model, export_llm
from etgpu.llm.recipes import build_config
from etgpu.llm.reference import reference_logits


def rel_err(a, e):
    return ((a.float() - e.float()).abs().max() / e.float().abs().max().clamp_min(1e-12)).item()


def build_on_gpu(arch, dtype, seed):
    # Initialising billions of parameters is fast on the GPU; the model is then moved back for
    # export (constants are read from CPU tensors).
    with torch.device("cuda"):
        model = build_hf_model(arch, "full", dtype=dtype, seed=seed)
    return model


def etgpu_steps(program, tokens, prefill, sync_each=True):
    logits, times = [], []
    start = time.perf_counter()
    logits.append(program.run([tokens[:, :prefill].cpu(), torch.arange(prefill)])[0].reshape(1, -1))
    times.append(time.perf_counter() - start)
    for t in range(prefill, tokens.shape[1]):
        start = time.perf_counter()
        logits.append(program.run([tokens[:, t:t + 1].cpu(), torch.tensor([t])])[0].reshape(1, -1))
        times.append(time.perf_counter() - start)
    return logits, times


def check(arch, prefill, decode, max_seq):
    row = {"arch": arch}
    model = build_on_gpu(arch, torch.bfloat16, 0)
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (1, prefill + decode), generator=torch.Generator().manual_seed(1))
    expected = reference_logits(model, tokens.cuda(), prefill)
    t0 = time.perf_counter()
    exported = export_llm(model.cpu(), max_seq)
    data = etgpu.compile(exported)
    row["export_compile_s"] = round(time.perf_counter() - t0, 1)
    del exported
    program = etgpu.Model(data, device="cuda")
    del data
    actual, times = etgpu_steps(program, tokens, prefill)
    errors = [rel_err(a, e.cpu()) for a, e in zip(actual, expected)]
    row["bf16_max_rel_err"] = max(errors)
    row["bf16_worst_step"] = errors.index(max(errors))
    row["prefill_ms"] = round(times[0] * 1e3, 2)
    row["decode_tok_s_wall"] = round(len(times[1:]) / sum(times[1:]), 1)
    row["stats"] = program.stats()
    program.close()
    del model, expected
    torch.cuda.empty_cache()
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", default="qwen3-0.6b,llama3.2-1b,gemma3-1b")
    parser.add_argument("--prefill", type=int, default=512)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--out", default="llm_gpu_check.json")
    args = parser.parse_args()
    max_seq = args.prefill + args.decode
    rows = []
    for arch in args.archs.split(","):
        try:
            rows.append(check(arch, args.prefill, args.decode, max_seq))
        except Exception as error:  # report and continue with the next recipe
            rows.append({"arch": arch, "error": f"{type(error).__name__}: {error}"[:500]})
        print(json.dumps(rows[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"{'arch':14} {'max rel-err':>11} {'worst':>5} {'prefill ms':>10} {'decode tok/s':>12}")
    for r in rows:
        if "error" in r:
            print(f"{r['arch']:14} ERROR {r['error'][:100]}")
        else:
            print(f"{r['arch']:14} {r['bf16_max_rel_err']:11.4f} {r['bf16_worst_step']:5d} {r['prefill_ms']:10.1f} "
                  f"{r['decode_tok_s_wall']:12.1f}")


if __name__ == "__main__":
    main()
