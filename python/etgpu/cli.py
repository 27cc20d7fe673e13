"""The `etgpu` command (also `python -m etgpu`):

    etgpu run MODEL.etgpu [--device auto|cuda|cpu] [--input 0=x.npy ...] [--iters N] [--seed S]
    etgpu inspect MODEL.etgpu|MODEL.pte
    etgpu demo [--device ...] [--seq-len N]
    etgpu bench --hf ARCH [--dtype bf16] [--quant SCHEME] [--quick] [--out bench.json]   (etgpu.bench.cli)
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
    for tid in describe.id_list(graph.inputs):
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
    print(f"delegated partitions: {len(payloads)}")
    if not payloads:
        print(f"{args.model}: no {describe.BACKEND_ID} delegate in this program")
        return 1
    print("\n\n".join(describe.describe(p) for p in payloads))
    return 0


def _load_module(spec: str):
    """`path/to/file.py:callable` or `package.module:callable`; the callable returns
    (module, example_inputs[, dynamic_shapes])."""
    import importlib
    import importlib.util

    location, _, name = spec.rpartition(":")
    if not location or not name:
        raise ValueError(f"--module wants PATH_OR_MODULE:CALLABLE, got {spec!r}")
    if location.endswith(".py"):
        loader_spec = importlib.util.spec_from_file_location("etgpu_user_module", location)
        if loader_spec is None:
            raise FileNotFoundError(location)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    built = getattr(module, name)()
    return (tuple(built) + (None,))[:3]


def cmd_export(args) -> int:
    import torch

    import etgpu

    if bool(args.name) == bool(args.module):
        raise ValueError("give one example NAME (mlp, decoder-layer, vit-block) or --module PATH:CALLABLE")
    if args.module:
        module, inputs, dynamic_shapes = _load_module(args.module)
    else:
        from etgpu.models.examples import build_example

        module, inputs, dynamic_shapes = build_example(args.name, seed=args.seed)
    with torch.no_grad():
        exported = torch.export.export(module.eval(), tuple(inputs), dynamic_shapes=dynamic_shapes)
    if args.output.endswith(".pte"):
        from etgpu.llm.cli import _partitioner_class, lower_to_pte

        data = lower_to_pte(exported, _partitioner_class())
        with open(args.output, "wb") as f:
            f.write(data)
    elif args.output.endswith(".etgpu"):
        data = etgpu.compile(exported, args.output)
    else:
        raise ValueError(f"output must end in .pte or .etgpu: {args.output}")
    print(f"wrote {args.output} ({len(data)} bytes)")
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
    export = sub.add_parser("export", help="export a built-in example or --module to a .pte (ExecuTorch) "
                            "or .etgpu file; `etgpu export --hf ARCH ...` exports an LLM recipe")
    export.add_argument("name", nargs="?", help="mlp, decoder-layer or vit-block")
    export.add_argument("--module", help="PATH.py:CALLABLE or package.module:CALLABLE returning "
                        "(module, example_inputs[, dynamic_shapes])")
    export.add_argument("-o", "--output", default="model.pte")
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(func=cmd_export)
    demo = sub.add_parser("demo", help="export, compile and run the bundled demo transformer")
    demo.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    demo.add_argument("--seq-len", type=int, default=48)
    demo.add_argument("--out", default=None, help="where to write the .etgpu (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from etgpu.bench import cli as bench_cli

        return bench_cli.main(argv[1:])
    # LLM recipes and generation have their own option sets (etgpu.llm.cli).
    if argv[:1] == ["generate"] or (argv[:1] == ["export"] and "--hf" in argv):
        from etgpu.llm import cli as llm_cli

        return llm_cli.main(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EtGpuError, ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"etgpu {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
