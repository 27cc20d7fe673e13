"""The etgpu peers: the recipe built and exported by etgpu.llm's own export path (so a `--quant`
scheme reaches it exactly as it reaches `etgpu export`), run as a .etgpu file through the etgpu
runtime and as a .pte through ExecuTorch's runtime."""

import functools
import importlib.util
import statistics

import torch

import etgpu
from etgpu.bench.schedule import WallClock
from etgpu.llm.cli import _build_model, _export_parser, _partitioner_class, lower_to_pte
from etgpu.llm.model import export_llm


def export_args(arch: str, dtype: str, quant: str, scale: str, seed: int, max_seq_len: int,
                quant_embeddings: str = "none"):
    """The namespace `etgpu export --hf ARCH --random-weights ...` would parse."""
    argv = ["--hf", arch, "--random-weights", "--seed", str(seed), "--scale", scale, "--dtype", dtype,
            "--max-seq-len", str(max_seq_len), "-o", "bench.etgpu"]
    if quant != "none":
        argv += ["--quant", quant]
    if quant_embeddings != "none":
        argv += ["--quant-embeddings", quant_embeddings]
    try:
        args, unknown = _export_parser().parse_known_args(argv)
    except SystemExit:  # argparse printed why (e.g. a scheme not among its choices)
        raise ValueError(f"`etgpu export` rejected: {' '.join(argv)}") from None
    if unknown:
        raise ValueError(f"`etgpu export` in this checkout does not take {' '.join(unknown)}")
    return args


def build_model(args, device: str) -> torch.nn.Module:
    # Initialising billions of parameters is much faster on the GPU than on the host.
    with torch.device(device):
        model = _build_model(args)
    # `etgpu export` quantizes the built model with its --quant scheme (etgpu.llm.quantize, where
    # the parser has that option); the same here, so every peer runs the quantized model.
    if getattr(args, "quant", None):
        from etgpu.llm.quantize import quantize_model

        model = quantize_model(model, args.quant, getattr(args, "quant_embeddings", None))
    return model


def etgpu_program(model: torch.nn.Module, max_seq_len: int) -> bytes:
    return etgpu.compile(export_llm(model, max_seq_len))


def executorch_missing() -> str:
    """Why the .pte path cannot run here, or "" when it can."""
    return "" if importlib.util.find_spec("executorch") else "executorch not installed"


def pte_program(model: torch.nn.Module, max_seq_len: int, device: str) -> bytes:
    # A fresh export: lowering to edge rewrites the exported graph, so it is not shared with .etgpu.
    partitioner = functools.partial(_partitioner_class(), device=device)
    return lower_to_pte(export_llm(model, max_seq_len), partitioner)


class EtGpuStepClock(WallClock):
    """Wall clock per Model.run, and beside it the runtime's own GPU time of the step (the CUDA
    engine's events around the step's instructions on its stream; the input and output copies are
    outside them). Read from the stats after the call, outside the timed span."""

    def __init__(self, model):
        super().__init__("wall clock per Model.run: inputs in, the step, logits copied to the host")
        self.model = model

    def measure(self, fn):
        out, wall = super().measure(fn)
        gpu_ms = self.model.stats().get("last_step_gpu_ms", -1.0)
        return out, (wall, gpu_ms / 1e3 if gpu_ms >= 0 else None)

    def seconds(self, handles):
        return [wall for wall, _ in handles]

    def details(self, handles) -> dict:
        gpu = [g for _, g in handles]
        if not gpu or None in gpu:  # the CPU engine, or a library built before it measured this
            return {}
        return {"gpu_median_s": statistics.median(gpu)}


class EtGpuRunner:
    """A .etgpu program on the etgpu runtime. Inputs are host tensors (Model.run copies them in);
    the KV cache is indexed by position, so a new prefill at position 0 needs no reset."""

    device = torch.device("cpu")

    def __init__(self, program: bytes, device: str):
        self.model = etgpu.Model(program, device=device)
        self.clock = EtGpuStepClock(self.model)

    def reset(self) -> None:
        pass

    def forward(self, tokens, positions):
        return self.model.run([tokens, positions])[0]

    def close(self) -> dict:
        stats = self.model.stats()
        self.model.close()
        return stats


class PteRunner:
    """A .pte on ExecuTorch's runtime with the etgpu backend registered."""

    device = torch.device("cpu")
    clock = WallClock("wall clock per Method.execute: inputs in, the step, logits copied to the host")

    def __init__(self, pte: bytes):
        etgpu.load_runtime()
        from executorch.runtime import Runtime

        self.program = Runtime.get().load_program(pte)  # the method borrows from it: keep both
        self.method = self.program.load_method("forward")

    def reset(self) -> None:
        pass

    def forward(self, tokens, positions):
        return self.method.execute([tokens, positions])[0]

    def close(self) -> dict:
        self.method = self.program = None
        return {}
