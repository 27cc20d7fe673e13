"""The `etgpu` command (also `python -m etgpu`):

    etgpu run MODEL.etgpu [--device auto|cuda|cpu] [--input 0=x.npy ...] [--iters N] [--seed S]
    etgpu inspect MODEL.etgpu|MODEL.pte
    etgpu demo [--device ...] [--seq-len N]
"""

import argparse
import sys
import time
from typing import Dict, List, Optional

from etgpu.runtime import EtGpuError


def _parse_input_specs(specs: List[str]) -> Dict[int, str]:
    files = {}
    for spec in specs:
        index, sep, path = spec.partition("=")
        if not sep or not index.isdigit():
            raise SystemExit(f"etgpu run: --input takes INDEX=FILE.npy, got '{spec}'")
        files[int(index)] = path
    return files


def _input_signature(path: str):
    """[(torch dtype, shape at the symbols' upper bounds)] of the model's inputs."""
    from etgpu import describe
    from etgpu.dtypes import CODE_TO_TORCH

    graph = describe.parse(describe.read_payloads(path)[0].data).graph
    maxima = [s.max for s in (graph.symDims or [])]
    signature = []
    for tid in graph.inputs or []:
        t = graph.tensors[tid]
        shape = [d.add if d.sym < 0 else (d.mul * maxima[d.sym] + d.add) // d.div for d in (t.shape or [])]
        signature.append((CODE_TO_TORCH[t.dtype], shape))
    return signature


def _seeded_input(dtype, shape, generator):
    """Floats from N(0, 1); integers in [0, 4) so they stay valid indices for small tables."""
    import torch

    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    return torch.randint(0, 4, shape, generator=generator).to(dtype)


def _summary(tensor) -> str:
    shape = "x".join(str(s) for s in tensor.shape) or "scalar"
    text = f"{str(tensor.dtype).replace('torch.', '')}[{shape}]"
    if tensor.numel() == 0:
        return text + " (empty)"
    values = tensor.double()
    return (f"{text} min={values.min().item():.6g} max={values.max().item():.6g} "
            f"mean={values.mean().item():.6g} std={values.std(unbiased=False).item():.6g}")


def cmd_run(args) -> int:
    import numpy as np
    import torch

    import etgpu

    files = _parse_input_specs(args.input)
    signature = _input_signature(args.model)
    unknown = sorted(set(files) - set(range(len(signature))))
    if unknown:
        raise SystemExit(f"etgpu run: the model has {len(signature)} inputs; no input {unknown[0]}")
    generator = torch.Generator().manual_seed(args.seed)
    inputs = []
    for index, (dtype, shape) in enumerate(signature):
        if index in files:
            inputs.append(torch.from_numpy(np.load(files[index])))
        else:
            inputs.append(_seeded_input(dtype, shape, generator))
        print(f"input {index}: {_summary(inputs[-1])}" + (f" from {files[index]}" if index in files else " (seeded)"))
    model = etgpu.load(args.model, device=args.device)
    best = float("inf")
    for _ in range(max(1, args.iters)):
        start = time.perf_counter()
        outputs = model.run(inputs)
        best = min(best, time.perf_counter() - start)
    for index, out in enumerate(outputs):
        print(f"output {index}: {_summary(out)}")
    stats = model.stats()
    print(f"engine: {stats.get('engine_note', stats.get('engine'))}; best of {max(1, args.iters)}: "
          f"{best * 1e3:.3f} ms")
    return 0


def cmd_inspect(args) -> int:
    from etgpu import describe

    payloads = describe.read_payloads(args.model)
    if not payloads:
        print(f"{args.model}: no {describe.BACKEND_ID} delegate in this program")
        return 1
    print("\n\n".join(describe.describe(p) for p in payloads))
    return 0


def cmd_demo(args) -> int:
    from etgpu.models import demo

    return demo.main(device=args.device, seq_len=args.seq_len, out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etgpu", description="etgpu: run and inspect etgpu models")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a .etgpu model on seeded or given inputs")
    run.add_argument("model")
    run.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    run.add_argument("--input", action="append", default=[], metavar="INDEX=FILE.npy")
    run.add_argument("--iters", type=int, default=1, help="run N times, report the best time")
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(func=cmd_run)
    inspect = sub.add_parser("inspect", help="summarize a .etgpu file or the etgpu delegates of a .pte")
    inspect.add_argument("model")
    inspect.set_defaults(func=cmd_inspect)
    demo = sub.add_parser("demo", help="export, compile and run the bundled demo transformer")
    demo.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    demo.add_argument("--seq-len", type=int, default=48)
    demo.add_argument("--out", default=None, help="where to write the .etgpu (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EtGpuError, ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"etgpu {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
