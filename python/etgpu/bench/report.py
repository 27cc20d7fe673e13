"""What a run reports: ratios of etgpu to each peer, the fraction of the roofline, the tables
(results, ratios, targets; printed in that order, targets last) and the JSON file."""

import json
import os
from typing import List, Optional

from etgpu.bench import targets
from etgpu.bench.roofline import roofline_fraction

SCHEMA = "etgpu-bench/1"


def recipe_name(arch: str, dtype: str, quant: str, scale: str, quant_embeddings: str = "none") -> str:
    """"llama3.2-1b bf16", "qwen3-4b int4-g32": the names the targets use; a quantized embedding
    table ("llama3.2-1b int4-g32 emb-int8") and a tiny model are named apart, so no target of the
    plain recipe applies to them."""
    name = f"{arch} {dtype if quant == 'none' else quant}"
    if quant_embeddings != "none":
        name += f" emb-{quant_embeddings}"
    return name if scale == "full" else f"{name} ({scale})"


def add_derived(result: dict) -> None:
    """Fills in each decode entry's roofline fraction and etgpu's ratio to each measured peer."""
    bandwidth = result.get("bandwidth", {}).get("gb_per_s")
    for row in result["peers"].values():
        for context, entry in row.get("decode", {}).items():
            if not bandwidth or "tok_s" not in entry:
                continue
            step_bytes = result["decode_bytes"][context]["total"]
            entry["roofline_fraction"] = roofline_fraction(step_bytes, bandwidth * 1e9, entry["tok_s"])
            if "gpu_tok_s" in entry:
                entry["gpu_roofline_fraction"] = roofline_fraction(step_bytes, bandwidth * 1e9, entry["gpu_tok_s"])
    base = result["peers"].get("etgpu", {})
    if base.get("status") != "ok":
        return
    result["ratios"] = {peer: {phase: {key: base[phase][key]["tok_s"] / entry["tok_s"]
                                       for key, entry in row[phase].items()
                                       if "tok_s" in entry and "tok_s" in base[phase].get(key, {})}
                               for phase in ("prefill", "decode")}
                        for peer, row in result["peers"].items() if peer != "etgpu" and row.get("status") == "ok"}


def write_json(result: dict, path: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(temporary, path)  # a crash mid-write never leaves a truncated file


def _number(value: Optional[float], scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _columns(results: List[dict], phase: str) -> List[str]:
    keys = {key for r in results for row in r["peers"].values() for key in row.get(phase, {})}
    return sorted(keys, key=int)


def _status(row: dict) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason') or row.get('error', '')}"[:90]
    failed = [f"{phase} {key}: {entry['error']}" for phase in ("prefill", "decode")
              for key, entry in row[phase].items() if "error" in entry]
    return "; ".join(failed)[:90]


def results_table(results: List[dict]) -> str:
    prefill, decode = _columns(results, "prefill"), _columns(results, "decode")
    head = (["recipe", "peer"] + [f"pf{p} tok/s" for p in prefill] + [f"TTFT{p} ms" for p in prefill[:1]]
            + [f"dec@{c} tok/s" for c in decode] + [f"roof@{c}" for c in decode] + ["note"])
    lines = []
    for r in results:
        if "error" in r:
            lines.append([r["recipe"], "-"] + ["-"] * (len(head) - 3) + [f"error: {r['error']}"[:90]])
        for peer, row in r["peers"].items():
            pf, dec = row.get("prefill", {}), row.get("decode", {})
            lines.append([r["recipe"], peer] + [_number(pf.get(p, {}).get("tok_s")) for p in prefill]
                         + [_number(pf.get(p, {}).get("ttft_s"), 1e3, 2) for p in prefill[:1]]
                         + [_number(dec.get(c, {}).get("tok_s"), 1, 1) for c in decode]
                         + [_number(dec.get(c, {}).get("roofline_fraction"), 100, 1) + "%" for c in decode]
                         + [_status(row)])
    return _format(head, lines)


def gpu_time_table(results: List[dict]) -> str:
    """etgpu's rates from the runtime's own GPU time of each step (input and output copies
    excluded): how much of the wall clock the host side and the logits copy cost."""
    prefill, decode = _columns(results, "prefill"), _columns(results, "decode")
    head = ["recipe"] + [f"pf{p} tok/s" for p in prefill] + [f"dec@{c} tok/s" for c in decode] + [
        f"roof@{c}" for c in decode]
    lines = []
    for r in results:
        row = r["peers"].get("etgpu", {})
        pf, dec = row.get("prefill", {}), row.get("decode", {})
        if not any("gpu_tok_s" in e for e in list(pf.values()) + list(dec.values())):
            continue
        lines.append([r["recipe"]] + [_number(pf.get(p, {}).get("gpu_tok_s")) for p in prefill]
                     + [_number(dec.get(c, {}).get("gpu_tok_s"), 1, 1) for c in decode]
                     + [_number(dec.get(c, {}).get("gpu_roofline_fraction"), 100, 1) + "%" for c in decode])
    return _format(head, lines)


def ratios_table(results: List[dict]) -> str:
    prefill, decode = _columns(results, "prefill"), _columns(results, "decode")
    head = ["recipe", "etgpu / peer"] + [f"pf{p}" for p in prefill] + [f"dec@{c}" for c in decode]
    lines = [[r["recipe"], peer] + [_number(ratio["prefill"].get(p), 1, 2) for p in prefill]
             + [_number(ratio["decode"].get(c), 1, 2) for c in decode]
             for r in results for peer, ratio in r.get("ratios", {}).items()]
    return _format(head, lines)


def targets_table(results: List[dict]) -> str:
    head = ["recipe", "check", "target", "measured", "result"]
    lines = []
    for row in (row for r in results for row in targets.check(r)):
        scale, digits = (100, 1) if row["unit"] == "%" else (1, 2 if row["unit"] == "x" else 0)
        unit = "%" if row["unit"] == "%" else row["unit"]
        lines.append([row["recipe"], row["check"], f">= {_number(row['target'], scale, digits)}{unit}",
                      _number(row["measured"], scale, digits) + (unit if row["measured"] is not None else ""),
                      row["status"]])
    return _format(head, lines)


def bandwidth_lines(results: List[dict]) -> str:
    lines = []
    for r in results:
        bw = r.get("bandwidth", {})
        text = f"{bw['gb_per_s']:.1f} GB/s ({bw['method']})" if "gb_per_s" in bw else bw.get("error", "not measured")
        machine = r["machine"]
        lines.append(f"{r['recipe']}: copy bandwidth {text}; {machine.get('gpu', machine['device'])}, "
                     f"torch {machine['torch']}, transformers {machine['transformers']}")
    return "\n".join(lines)


def _format(head: List[str], lines: List[List[str]]) -> str:
    if not lines:
        return "(nothing measured)"
    widths = [max(len(str(row[i])) for row in [head] + lines) for i in range(len(head))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [head] + lines)


def render(results: List[dict]) -> str:
    timing = sorted({f"{peer}: {row['timing']}" for r in results for peer, row in r["peers"].items() if "timing" in row})
    return "\n\n".join([bandwidth_lines(results), "timing: " + "; ".join(timing), results_table(results),
                        "etgpu, GPU time of the step only (the runtime's CUDA events; copies excluded)",
                        gpu_time_table(results),
                        "ratios (etgpu tok/s over the peer's; > 1: etgpu is faster)", ratios_table(results),
                        "targets (issue #6; etgpu's wall-clock rates)", targets_table(results)])


def _merge_peer(merged: dict, row: dict) -> None:
    """Fills an ok peer row's missing prefill lengths and decode contexts from another run's row."""
    if row.get("status") != "ok":
        return
    for section in ("prefill", "decode"):
        for key, entry in row.get(section, {}).items():
            merged.setdefault(section, {}).setdefault(key, entry)


def load(paths: List[str]) -> List[dict]:
    """The results of `paths`, one per recipe: runs of the same recipe (a device call too short for
    every peer of a large model in one process) are merged, each measurement (a peer's prefill
    length or decode context) taken from the first file that has it, and the merged result lists
    its files under "merged_from"."""
    by_recipe = {}
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        name = result.get("recipe")
        if name not in by_recipe:
            by_recipe[name] = result
            continue
        merged = by_recipe[name]
        merged.setdefault("merged_from", [merged["settings"].get("out")]).append(result["settings"].get("out"))
        for context, need in result.get("decode_bytes", {}).items():
            merged.setdefault("decode_bytes", {}).setdefault(context, need)
        for peer, row in result["peers"].items():
            if merged["peers"].get(peer, {}).get("status") != "ok":
                merged["peers"][peer] = row
            else:
                _merge_peer(merged["peers"][peer], row)
    for result in by_recipe.values():
        if "merged_from" in result:
            add_derived(result)  # ratios and rooflines over the merged peers, once
    return list(by_recipe.values())
