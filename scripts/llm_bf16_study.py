"""Where does etgpu's bf16 drift from transformers' bf16 come from? One recipe's architecture with
a few layers and a small vocabulary, random weights rounded to bf16 once, so every run below
computes with the same weights and differs only in where it rounds:

  fp32        transformers eager, fp32 (the bf16 weights upcast): the reference
  hf-sdpa     transformers bf16, its default attention (torch SDPA)
  hf-eager    transformers bf16, its "eager" attention (matmul, softmax in fp32, matmul)
  etgpu       etgpu bf16 on the given engine

It prints the per-step max rel-err (max|a-e| / max|e| over the logits row) of each pair.
Usage: llm_bf16_study.py [--arch qwen3-0.6b] [--layers 4] [--vocab 8192] [--device cpu]"""

import argparse

import torch

import etgpu
from etgpu.llm import export_llm
from etgpu.llm.recipes import RECIPES, build_config, cast_model
from etgpu.llm.reference import reference_logits, stepwise_logits

import transformers


def rel_err(a, e):
    return ((a.float() - e.float()).abs().max() / e.float().abs().max().clamp_min(1e-12)).item()


def shrunk_config(arch, layers, vocab):
    """The full-size recipe's widths with fewer layers and a smaller vocabulary (CPU-sized)."""
    config = build_config(arch, "full")
    config.num_hidden_layers = layers
    config.vocab_size = vocab
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    return config


def build(arch, config, dtype, attention, state):
    model = getattr(transformers, RECIPES[arch].model_class)(config)
    model.load_state_dict(state)
    config._attn_implementation = attention
    return cast_model(model, dtype).eval()


def worst(pairs):
    errors = [rel_err(a, e) for a, e in zip(*pairs)]
    return max(errors), sum(errors) / len(errors)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="qwen3-0.6b", choices=sorted(RECIPES))
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--prefill", type=int, default=16)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = shrunk_config(args.arch, args.layers, args.vocab)
    # bf16-representable weights: every run sees exactly the same numbers.
    state = {k: v.to(torch.bfloat16).float() for k, v in
             getattr(transformers, RECIPES[args.arch].model_class)(config).state_dict().items()}
    tokens = torch.randint(0, args.vocab, (1, args.prefill + args.decode), generator=torch.Generator().manual_seed(1))
    runs = {
        "fp32": reference_logits(build(args.arch, config, torch.float32, "eager", state), tokens, args.prefill),
        "hf-sdpa": reference_logits(build(args.arch, config, torch.bfloat16, "sdpa", state), tokens, args.prefill),
        "hf-eager": reference_logits(build(args.arch, config, torch.bfloat16, "eager", state), tokens, args.prefill),
    }
    program = etgpu.Model(etgpu.compile(export_llm(build(args.arch, config, torch.bfloat16, "eager", state),
                                                   args.prefill + args.decode)), device=args.device)
    runs["etgpu"] = stepwise_logits(lambda t, p: program.run([t, p])[0], tokens, args.prefill)
    print(f"{args.arch}: {args.layers} layers, hidden {config.hidden_size}, vocab {args.vocab}, "
          f"prefill {args.prefill} + decode {args.decode}, etgpu on {args.device}")
    print(f"{'pair':22} {'max rel-err':>11} {'mean':>8}")
    for a, e in [("etgpu", "hf-sdpa"), ("etgpu", "hf-eager"), ("hf-eager", "hf-sdpa"),
                 ("hf-sdpa", "fp32"), ("hf-eager", "fp32"), ("etgpu", "fp32")]:
        top, mean = worst((runs[a], runs[e]))
        print(f"{a + ' vs ' + e:22} {top:11.4f} {mean:8.4f}")


if __name__ == "__main__":
    main()
