"""`etgpu bench`: one recipe, every peer, one process; or `--report` to print the tables of
earlier runs' JSON files together (what `make gpu-bench` does after its per-recipe runs; runs of one
recipe merge, each peer from the first run that measured it).

    etgpu bench --hf llama3.2-1b --dtype bf16 [--quant SCHEME [--quant-embeddings int8|int4]] [--quick]
                [--out bench.json]
    etgpu bench --hf qwen3-0.6b --scale tiny --device cpu --prefill 8,16 --contexts 8 --decode-steps 4
    etgpu bench --report a.json b.json
"""

import argparse
import sys
from typing import List, Optional

from etgpu.bench import report
from etgpu.bench.suite import PEERS, Settings, run_recipe


def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x]


def _peers(text: str) -> List[str]:
    peers = [p for p in text.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peers {unknown}; choose from {','.join(PEERS)}")
    return peers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="etgpu bench", description="Prefill and decode speed of an LLM recipe: "
                                "etgpu (.etgpu and .pte) against PyTorch eager and torch.compile.")
    p.add_argument("--hf", metavar="ARCH", help="architecture recipe (etgpu.llm.RECIPES)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--quant", default="none", help="quantization scheme, passed to the recipe's export")
    p.add_argument("--quant-embeddings", default="none",
                   help="embedding table quantization (int8, int4), passed to the recipe's export; a tied "
                        "LM head shares the quantized table")
    p.add_argument("--scale", default="full", choices=["full", "tiny"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--quick", action="store_true",
                   help="a first check: prefill 128, decode at context 128, 2 runs, smaller bandwidth copy")
    p.add_argument("--prefill", type=_ints, help="prefill lengths (default 128,512,2048)")
    p.add_argument("--contexts", type=_ints, help="decode contexts (default 128,2048)")
    p.add_argument("--decode-steps", type=int, default=128)
    p.add_argument("--runs", type=int, help="timed runs per measurement (default 5; --quick 2)")
    p.add_argument("--peers", type=_peers, default=list(PEERS), help=f"subset of {','.join(PEERS)}")
    p.add_argument("--bandwidth-mb", type=int, help="size of the copied buffer (default 2048; --quick 512)")
    p.add_argument("--out", default="bench.json", help="JSON result (rewritten after every peer)")
    p.add_argument("--report", nargs="+", metavar="JSON", help="print the tables of these results and exit")
    return p


def settings_from(args) -> Settings:
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return Settings(arch=args.hf, dtype=args.dtype, quant=args.quant, quant_embeddings=args.quant_embeddings,
                    scale=args.scale, seed=args.seed,
                    device=device, prefill=args.prefill or ([128] if args.quick else [128, 512, 2048]),
                    contexts=args.contexts or ([128] if args.quick else [128, 2048]),
                    decode_steps=args.decode_steps, runs=args.runs or (2 if args.quick else 5),
                    bandwidth_mb=args.bandwidth_mb or (512 if args.quick else 2048), peers=args.peers, out=args.out)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        print(report.render(report.load(args.report)))
        return 0
    if not args.hf:
        print("etgpu bench: give --hf ARCH (or --report FILES)", file=sys.stderr)
        return 2
    result = run_recipe(settings_from(args))
    print(f"wrote {args.out}")
    print(report.render([result]))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
