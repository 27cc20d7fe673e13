"""Command line for LLMs: `export`, `generate` and `export-tokenizer`.

    python -m etgpu.llm.cli export --hf llama3.2-1b --random-weights --seed 0 --scale tiny \\
        --dtype fp32 --max-seq-len 128 -o model.etgpu
    python -m etgpu.llm.cli export --weights SmolLM2.gguf --dtype fp32 --max-seq-len 512 -o smollm2.etgpu
    python -m etgpu.llm.cli export --hf llama3.2-1b --random-weights --quant int4-g32 --quant-embeddings int8 ...
    python -m etgpu.llm.cli generate smollm2.etgpu --tokenizer SmolLM2.gguf --prompt "Hello"
    python -m etgpu.llm.cli export-tokenizer SmolLM2.gguf -o tokenizer.json

`export` writes `<output>.json` beside the model (max_seq_len, dtype, vocabulary size) because the
runner must know the cache capacity before it runs anything. `main(argv)` serves the subcommands;
`export_main` / `generate_main` serve a dispatcher that already consumed the subcommand name."""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import torch

from etgpu.llm.quantize import EMBEDDING_SCHEMES, QUANT_SCHEMES, quantize_model

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def metadata_path(model_path) -> Path:
    return Path(str(model_path) + ".json")


# ----------------------------------------------------------------------------------------- export

def _export_parser(prog="export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Export an LLM to .etgpu (torch-only) or .pte (ExecuTorch).")
    p.add_argument("--hf", metavar="ARCH", help="architecture recipe (etgpu.llm.RECIPES); optional with --weights")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--random-weights", action="store_true", help="seeded random weights")
    source.add_argument("--weights", metavar="FILE.gguf", help="weights (and config) from a GGUF file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=["full", "tiny"], default="full")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--max-seq-len", type=int, required=True)
    p.add_argument("--quant", choices=QUANT_SCHEMES, help="TorchAO weight quantization of the linear layers "
                   "(docs/quantization.md)")
    p.add_argument("--quant-embeddings", choices=EMBEDDING_SCHEMES,
                   help="quantize the embedding table (a tied LM head shares it, stored once)")
    p.add_argument("--tokenizer-out", metavar="tokenizer.json", help="with --weights: also write the GGUF's tokenizer")
    p.add_argument("-o", "--output", required=True, help="model.etgpu or model.pte")
    return p


def _build_model(args):
    from etgpu.llm.recipes import RECIPES, build_hf_model

    dtype = DTYPES[args.dtype]
    if args.hf and args.hf not in RECIPES:
        raise SystemExit(f"export: unknown --hf {args.hf!r}; choose one of {sorted(RECIPES)}")
    if args.random_weights:
        if not args.hf:
            raise SystemExit("export: --random-weights needs --hf ARCH")
        return build_hf_model(args.hf, args.scale, dtype=dtype, seed=args.seed)
    from etgpu.llm.gguf_loader import load_gguf_model

    if args.hf and RECIPES[args.hf].model_class != "LlamaForCausalLM":
        raise SystemExit(f"export: --weights loads Llama-architecture GGUF files; --hf {args.hf} is not a Llama recipe")
    if args.scale != "full":
        raise SystemExit("export: --scale applies to --random-weights only")
    return load_gguf_model(args.weights, dtype=dtype)


def _partitioner_class():
    try:
        from etgpu.executorch import EtGpuPartitioner
    except ImportError as error:
        raise SystemExit(f"export: writing .pte needs etgpu.executorch.EtGpuPartitioner, which is not "
                         f"available in this checkout ({error}); write a .etgpu instead") from error
    return EtGpuPartitioner


def lower_to_pte(exported, partitioner_class) -> bytes:
    """ExecuTorch program with the etgpu partitions delegated."""
    from executorch.exir import to_edge_transform_and_lower

    program = to_edge_transform_and_lower(exported, partitioner=[partitioner_class()]).to_executorch()
    return program.buffer


def export_main(argv: Optional[List[str]] = None, prog: str = "export") -> int:
    import etgpu
    from etgpu.llm.model import export_llm

    args = _export_parser(prog).parse_args(argv)
    output = Path(args.output)
    if output.suffix not in (".etgpu", ".pte"):
        raise SystemExit(f"export: output must end in .etgpu or .pte, not {output.name!r}")
    if args.tokenizer_out and not args.weights:
        raise SystemExit("export: --tokenizer-out needs --weights FILE.gguf")
    # Checked before the (slow) model build so a missing ExecuTorch path fails at once.
    partitioner = _partitioner_class() if output.suffix == ".pte" else None
    model = quantize_model(_build_model(args), args.quant, args.quant_embeddings)
    exported = export_llm(model, args.max_seq_len)
    data = lower_to_pte(exported, partitioner) if partitioner else etgpu.compile(exported)
    output.write_bytes(data)
    meta = {"max_seq_len": args.max_seq_len, "dtype": args.dtype, "vocab_size": model.config.vocab_size,
            "quant": args.quant, "quant_embeddings": args.quant_embeddings,
            "source": args.weights or f"{args.hf} ({args.scale}, random seed {args.seed})"}
    metadata_path(output).write_text(json.dumps(meta, indent=1))
    if args.tokenizer_out:
        from etgpu.llm.tokenizer import Tokenizer

        Tokenizer.from_gguf(args.weights).save(args.tokenizer_out)
    print(f"wrote {output} ({len(data) / 2**20:.1f} MiB), max_seq_len {args.max_seq_len}, {args.dtype}")
    return 0


# --------------------------------------------------------------------------------------- generate

def _generate_parser(prog="generate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Generate text with an exported LLM.")
    p.add_argument("model", help="model.etgpu (or model.pte with the ExecuTorch runtime)")
    p.add_argument("--tokenizer", required=True, help="a .gguf file or a tokenizer.json")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--max-seq-len", type=int, help="cache capacity, if the model has no .json beside it")
    return p


def _max_seq_len(args) -> int:
    if args.max_seq_len:
        return args.max_seq_len
    meta = metadata_path(args.model)
    if not meta.exists():
        raise SystemExit(f"generate: {meta} is missing; pass --max-seq-len (the value used at export)")
    return int(json.loads(meta.read_text())["max_seq_len"])


def _open_runner(path: str, device: str):
    """(run function, stats source) for a .etgpu (etgpu runtime) or .pte (ExecuTorch runtime)."""
    import etgpu
    from etgpu.llm.generate import model_runner

    if path.endswith(".pte"):
        etgpu.load_runtime()
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(path).load_method("forward")
        return (lambda tokens, positions: method.execute([tokens, positions])[0]), None
    model = etgpu.Model(path, device=device)
    return model_runner(model), model


def generate_main(argv: Optional[List[str]] = None, prog: str = "generate") -> int:
    from etgpu.llm.generate import CacheCapacityError, SamplingConfig, generate
    from etgpu.llm.tokenizer import StreamDecoder, Tokenizer

    args = _generate_parser(prog).parse_args(argv)
    tokenizer = Tokenizer.load(args.tokenizer)
    prompt = args.prompt
    if args.chat:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    prompt_ids = tokenizer.encode(prompt)
    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed)
    max_seq_len = _max_seq_len(args)
    from etgpu.llm.generate import check_capacity

    try:
        check_capacity(len(prompt_ids), args.max_new_tokens, max_seq_len)  # before loading the model
    except CacheCapacityError as error:
        print(f"generate: {error}", file=sys.stderr)
        return 2
    run, stats_source = _open_runner(args.model, args.device)
    stream = StreamDecoder(tokenizer)

    def on_token(token: int) -> None:
        sys.stdout.write(stream.push(token))
        sys.stdout.flush()

    result = generate(run, prompt_ids, args.max_new_tokens, max_seq_len, sampling, tokenizer.stop_ids(),
                      on_token, stats_source)
    sys.stdout.write(stream.flush() + "\n")
    print(f"[{result.stop_reason}] {result.stats.summary()}", file=sys.stderr)
    return 0


def export_tokenizer_main(argv: Optional[List[str]] = None, prog: str = "export-tokenizer") -> int:
    from etgpu.llm.tokenizer import Tokenizer

    p = argparse.ArgumentParser(prog=prog, description="Write a GGUF file's tokenizer as tokenizer.json.")
    p.add_argument("gguf")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    Tokenizer.from_gguf(args.gguf).save(args.output)
    print(f"wrote {args.output} (and tokenizer_config.json beside it)")
    return 0


COMMANDS = {"export": export_main, "generate": generate_main, "export-tokenizer": export_tokenizer_main}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m etgpu.llm.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:], prog=f"etgpu {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
