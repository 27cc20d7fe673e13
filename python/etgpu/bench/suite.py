"""One recipe end to end in one process: the copy bandwidth, then each peer on the same token
sequences and schedule, one peer at a time (each peer's program, cache and graphs freed before
the next; the model itself stays on the device it was built on). A peer that fails records its error and the others still run; the JSON is rewritten after
every peer, so a crash later in the run keeps the rows already measured."""

import copy
import gc
import time
import traceback
from dataclasses import asdict, dataclass
from typing import List

import torch

from etgpu.bench import etgpu_runner, report, torch_runner
from etgpu.bench.bandwidth import copy_bandwidth
from etgpu.bench.roofline import decode_bytes, weight_bytes
from etgpu.bench.schedule import decode, prefill, random_tokens
from etgpu.llm.cli import DTYPES

PEERS = ("etgpu", "pte", "eager", "compile")


@dataclass
class Settings:
    arch: str
    dtype: str = "bf16"
    quant: str = "none"
    quant_embeddings: str = "none"
    scale: str = "full"
    seed: int = 0
    device: str = "cuda"
    prefill: List[int] = (128, 512, 2048)
    contexts: List[int] = (128, 2048)
    decode_steps: int = 128
    runs: int = 5
    bandwidth_mb: int = 2048
    peers: List[str] = PEERS
    out: str = "bench.json"

    @property
    def max_seq_len(self) -> int:
        return max(max(self.prefill), max(self.contexts) + self.decode_steps)


def _machine(device: str) -> dict:
    import transformers

    info = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    try:
        from importlib.metadata import version

        info["executorch"] = version("executorch")
    except Exception:  # not installed: the .pte row says so
        info["executorch"] = None
    return info


def _error(error: BaseException) -> dict:
    return {"status": "error", "error": f"{type(error).__name__}: {error}"[:800],
            "traceback": traceback.format_exc()[-2000:]}


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _attempt(measure) -> dict:
    """One measurement; its failure (e.g. a length one engine cannot do yet) is its entry, and the
    peer's other measurements still run."""
    try:
        return measure()
    except Exception as error:
        _free()
        return _error(error)


def _measure(runner, settings: Settings, prompts: dict) -> dict:
    runs, steps = settings.runs, settings.decode_steps
    return {"status": "ok", "timing": runner.clock.name,
            "prefill": {str(p): _attempt(lambda: prefill(runner, prompts[p], runs)) for p in settings.prefill},
            "decode": {str(c): _attempt(lambda: decode(runner, prompts[c], steps, runs)) for c in settings.contexts}}


def _host_copy(model):
    """What the exports read (constants come from CPU tensors). A copy, never the model itself: the
    torch peers keep the model where it was built, and a TorchAO weight that an export or a
    compilation has seen holds weakrefs, so it cannot be moved in place."""
    return copy.deepcopy(model).cpu()


def _open_runner(peer: str, model, settings: Settings):
    """(runner, reason it cannot run here); the torch peers run the model where it was built."""
    if peer == "etgpu":
        return etgpu_runner.EtGpuRunner(etgpu_runner.etgpu_program(_host_copy(model), settings.max_seq_len),
                                        settings.device), ""
    if peer == "pte":
        missing = etgpu_runner.executorch_missing()
        if missing:
            return None, missing
        return etgpu_runner.PteRunner(etgpu_runner.pte_program(_host_copy(model), settings.max_seq_len,
                                                               settings.device)), ""
    compiled = peer == "compile"
    reason = torch_runner.compile_unavailable(torch.device(settings.device)) if compiled else ""
    if reason:
        return None, reason
    return torch_runner.HfStaticRunner(model, settings.max_seq_len, compiled), ""


def _run_peer(peer: str, model, settings: Settings, prompts: dict) -> dict:
    runner = None
    start = time.perf_counter()
    try:
        runner, reason = _open_runner(peer, model, settings)
        if runner is None:
            return {"status": "skipped", "reason": reason}
        setup = time.perf_counter() - start
        row = _measure(runner, settings, prompts)
        row["setup_s"] = setup
        row["stats"] = runner.close()
        runner = None
        return row
    # SystemExit too: etgpu.llm's export reports a missing piece (e.g. no partitioner) that way.
    except (Exception, SystemExit) as error:
        return _error(error)
    finally:
        if runner is not None:
            runner.close()
        _free()


def run_recipe(settings: Settings) -> dict:
    result = {"schema": report.SCHEMA, "recipe": report.recipe_name(settings.arch, settings.dtype, settings.quant,
                                                                          settings.scale, settings.quant_embeddings),
              "settings": asdict(settings), "machine": _machine(settings.device), "peers": {}}
    try:
        result["bandwidth"] = copy_bandwidth(settings.device, settings.bandwidth_mb, max(settings.runs, 10))
    except Exception as error:
        result["bandwidth"] = _error(error)
    report.write_json(result, settings.out)
    try:
        args = etgpu_runner.export_args(settings.arch, settings.dtype, settings.quant, settings.scale,
                                        settings.seed, settings.max_seq_len, settings.quant_embeddings)
        model = etgpu_runner.build_model(args, settings.device)
    except (Exception, SystemExit) as error:
        result["error"] = _error(error)["error"]
        report.write_json(result, settings.out)
        return result
    result["weights"] = weight_bytes(model)
    result["decode_bytes"] = {str(c): decode_bytes(model, DTYPES[settings.dtype], c, settings.decode_steps)
                              for c in settings.contexts}
    vocab = model.config.get_text_config().vocab_size
    prompts = {n: random_tokens(vocab, n, settings.seed + n) for n in set(settings.prefill) | set(settings.contexts)}
    for peer in settings.peers:
        result["peers"][peer] = _run_peer(peer, model, settings, prompts)
        report.add_derived(result)
        report.write_json(result, settings.out)
    del model
    _free()
    return result
