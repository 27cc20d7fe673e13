"""Soak test: one LLM model decodes >= 10,000 steps across cache resets while host RSS, engine
memory, GPU memory (CUDA) and decode speed are sampled per interval. Fails (exit 1) when memory
grows past a tolerance between the first and last intervals, or the median speed of the last
quarter of the intervals is more than --max-slowdown below the first quarter's. Speed is decode
steps per second of wall time on the GPU, and per second of this process's CPU time on the CPU
engine (a shared machine's other load moves the wall clock of a CPU run, not its CPU time).
A reset restarts positions at 0 (the cache is overwritten, as a new conversation does).

  python scripts/soak.py                                   # tiny llama3.2-1b on the CPU engine
  python scripts/soak.py --device cuda --scale full --dtype bfloat16 --json soak-gpu.json

The first segment (prefill + reset_every decode steps) is a warm-up and is not measured: it holds
the one-time costs (shape resolution, CUDA graph capture, allocator caches), which are not growth."""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import torch  # noqa: E402

import etgpu  # noqa: E402
from etgpu.llm.model import export_llm  # noqa: E402
from etgpu.llm.recipes import RECIPES, build_config, build_hf_model  # noqa: E402

MIB = 2**20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="llama3.2-1b", choices=sorted(RECIPES))
    p.add_argument("--scale", default="tiny", choices=["tiny", "full"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=10_000, help="decode steps measured (after the warm-up)")
    p.add_argument("--reset-every", type=int, default=500, help="decode steps between resets")
    p.add_argument("--prompt", type=int, default=8, help="prefill tokens after each reset")
    p.add_argument("--rss-tolerance-mib", type=float, default=16.0)
    p.add_argument("--device-tolerance-mib", type=float, default=1.0)
    p.add_argument("--max-slowdown", type=float, default=0.20)
    p.add_argument("--json", type=Path, help="write the samples and the verdict here")
    return p.parse_args(argv)


def host_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def gpu_used_mib(device: str):
    """Memory in use on the whole GPU (our engine's cudaMalloc included), or None on the CPU."""
    if device != "cuda":
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free) / MIB


def load_model(args) -> etgpu.Model:
    dtype = getattr(torch, args.dtype)
    exported = export_llm(build_hf_model(args.arch, args.scale, dtype), args.prompt + args.reset_every)
    return etgpu.Model(etgpu.compile(exported), device=args.device)


class Decoder:
    """Greedy decoding in segments: a prefill at positions 0..prompt-1, then reset_every one-token
    steps; the next segment starts again at position 0."""

    def __init__(self, model: etgpu.Model, prompt: int, reset_every: int, vocab: int):
        self.model, self.prompt, self.reset_every = model, prompt, reset_every
        self.prompt_ids = torch.arange(prompt, dtype=torch.long).remainder(vocab).unsqueeze(0)
        self.position = None  # None: the next step starts a new segment with a prefill
        self.token = 0
        self.resets = 0

    def step(self) -> None:
        if self.position is None:
            logits = self.model.run([self.prompt_ids, torch.arange(self.prompt)])[0]
            self.position, self.resets = self.prompt, self.resets + 1
        else:
            logits = self.model.run([torch.tensor([[self.token]]), torch.tensor([self.position])])[0]
            self.position += 1
        if not torch.isfinite(logits).all():
            raise RuntimeError(f"non-finite logits at position {self.position}")
        self.token = int(torch.argmax(logits))
        if self.position == self.prompt + self.reset_every:
            self.position = None

    def advance(self, calls: int) -> None:
        for _ in range(calls):
            self.step()


def sample(model: etgpu.Model, device: str, steps_done: int, seconds: float, cpu_seconds: float, steps: int,
           resets: int) -> dict:
    """One interval's figures; its speeds count decode steps over the interval's time (prefill included)."""
    stats = model.stats()
    return {"steps": steps_done, "resets": resets, "steps_per_s": steps / seconds,
            "steps_per_cpu_s": steps / cpu_seconds, "rss_mib": host_rss_mib(),
            "engine_mib": stats["device_bytes_allocated"] / MIB, "gpu_used_mib": gpu_used_mib(device),
            "graph_launches": stats["graph_launches"]}


def speed_key(device: str) -> str:
    return "steps_per_cpu_s" if device == "cpu" else "steps_per_s"


def quarter_speeds(samples, key: str):
    """Median decode speed of the first and of the last quarter of the intervals: one interval's
    speed moves with whatever else the machine runs, a real slowdown moves a quarter's median."""
    n = max(1, len(samples) // 4)
    median = lambda rows: sorted(r[key] for r in rows)[len(rows) // 2]
    return median(samples[:n]), median(samples[-n:])


def verdict(samples, args) -> list:
    """The failures (empty when the run held steady)."""
    first, last = samples[0], samples[-1]
    problems = []
    growth = {"rss_mib": args.rss_tolerance_mib, "engine_mib": args.device_tolerance_mib,
              "gpu_used_mib": args.device_tolerance_mib}
    for key, tolerance in growth.items():
        if first[key] is not None and last[key] - first[key] > tolerance:
            problems.append(f"{key} grew {first[key]:.1f} -> {last[key]:.1f} (tolerance {tolerance} MiB)")
    key = speed_key(args.device)
    early, late = quarter_speeds(samples, key)
    if late < (1 - args.max_slowdown) * early:
        problems.append(f"decode slowed {early:.1f} -> {late:.1f} {key} (more than {args.max_slowdown:.0%})")
    return problems


def print_table(samples) -> None:
    print(f"{'steps':>7} {'resets':>6} {'steps/s':>9} {'steps/cpu-s':>11} {'RSS MiB':>9} {'engine MiB':>10} "
          f"{'GPU used MiB':>12} {'graph launches':>14}")
    for s in samples:
        gpu = "-" if s["gpu_used_mib"] is None else f"{s['gpu_used_mib']:.1f}"
        print(f"{s['steps']:>7} {s['resets']:>6} {s['steps_per_s']:>9.1f} {s['steps_per_cpu_s']:>11.1f} "
              f"{s['rss_mib']:>9.1f} "
              f"{s['engine_mib']:>10.2f} {gpu:>12} {s['graph_launches']:>14}")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # host-side torch work here is tiny; idle spinning threads would blur CPU time
    model = load_model(args)
    decoder = Decoder(model, args.prompt, args.reset_every, build_config(args.arch, args.scale).vocab_size)
    segment = args.reset_every + 1  # a prefill call and reset_every decode calls
    decoder.advance(segment)  # warm-up
    samples, done = [], 0
    while done < args.steps:
        start, cpu_start = time.perf_counter(), time.process_time()
        decoder.advance(segment)
        done += args.reset_every
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        samples.append(sample(model, args.device, done, seconds, cpu_seconds, args.reset_every, decoder.resets))
    print_table(samples)
    problems = verdict(samples, args)
    early, late = quarter_speeds(samples, speed_key(args.device))
    print(f"median {speed_key(args.device)}: first quarter {early:.1f}, last quarter {late:.1f}")
    print("soak: " + ("; ".join(problems) if problems else
                      f"steady over {done} decode steps and {decoder.resets} resets"))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "samples": samples, "problems": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
