"""`etgpu bench` end to end on a tiny recipe (on the engine under test), the bytes a decode step
must move, and the target checks."""

import json
import subprocess
import sys

import pytest
import torch

from etgpu.bench import report, targets
from etgpu.bench import roofline
from etgpu.bench.roofline import decode_bytes, kv_positions_read, weight_bytes
from etgpu.llm.recipes import build_config, build_hf_model
from parity import TEST_DEVICE


def _bench(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "etgpu", "bench", *args], capture_output=True, text=True,
                          timeout=timeout)


def _positive(entry, *keys):
    for key in keys:
        assert entry[key] > 0, (key, entry)


def test_tiny_recipe_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    run = _bench("--hf", "qwen3-0.6b", "--scale", "tiny", "--device", TEST_DEVICE, "--prefill", "8,16",
                 "--contexts", "8", "--decode-steps", "4", "--runs", "2", "--bandwidth-mb", "8", "--out", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["schema"] == report.SCHEMA and result["recipe"] == "qwen3-0.6b bf16 (tiny)"
    _positive(result["bandwidth"], "gb_per_s", "bytes_moved", "median_s")
    assert set(result["peers"]) == {"etgpu", "pte", "eager", "compile"}
    for peer, row in result["peers"].items():
        if row["status"] != "ok":
            assert row.get("reason") or row.get("error"), (peer, row)
            continue
        assert set(row["prefill"]) == {"8", "16"} and set(row["decode"]) == {"8"}
        for entry in row["prefill"].values():
            _positive(entry, "median_s", "tok_s", "ttft_s")
        for entry in row["decode"].values():
            assert entry["steps"] == 4 and entry["runs"] == 2
            _positive(entry, "median_step_s", "tok_s", "loop_tok_s", "roofline_fraction")
        # The runtime's own GPU time of a step: the CUDA engine measures it, the CPU engine not.
        gpu_timed = [e for e in list(row["prefill"].values()) + list(row["decode"].values()) if "gpu_tok_s" in e]
        assert not gpu_timed or (peer == "etgpu" and TEST_DEVICE == "cuda"), (peer, gpu_timed)
        for entry in gpu_timed:
            _positive(entry, "gpu_median_s", "gpu_tok_s")
        if peer != "etgpu":
            _positive(result["ratios"][peer]["decode"], "8")
    assert result["peers"]["etgpu"]["status"] == "ok" and result["peers"]["eager"]["status"] == "ok"
    if TEST_DEVICE == "cpu":
        assert result["peers"]["compile"]["status"] == "skipped"
    _positive(result["decode_bytes"]["8"], "weights_read", "kv_read", "total")
    assert "targets (issue #6" in run.stdout
    # --report prints the same tables from the file.
    again = _bench("--report", str(out))
    assert again.returncode == 0 and again.stdout.count("qwen3-0.6b bf16 (tiny)  etgpu ") == 1, again.stdout
    # Two runs of one recipe, each with some of the peers, report as one recipe with all of them.
    parts = []
    for peer in ("etgpu", "eager"):
        part = json.loads(out.read_text())
        part["peers"] = {peer: part["peers"][peer]}
        part.pop("ratios", None)
        part["settings"]["out"] = str(tmp_path / f"{peer}.json")
        (tmp_path / f"{peer}.json").write_text(json.dumps(part))
        parts.append(str(tmp_path / f"{peer}.json"))
    (merged,) = report.load(parts)
    assert set(merged["peers"]) == {"etgpu", "eager"} and merged["merged_from"] == parts
    assert merged["ratios"]["eager"]["decode"]["8"] == pytest.approx(
        merged["peers"]["etgpu"]["decode"]["8"]["tok_s"] / merged["peers"]["eager"]["decode"]["8"]["tok_s"])
    # A peer measured in two runs, each with one of its prefill lengths, keeps both.
    halves = []
    for length in ("8", "16"):
        part = json.loads(out.read_text())
        part["peers"] = {"etgpu": part["peers"]["etgpu"]}
        part["peers"]["etgpu"]["prefill"] = {length: part["peers"]["etgpu"]["prefill"][length]}
        part["settings"]["out"] = str(tmp_path / f"prefill{length}.json")
        (tmp_path / f"prefill{length}.json").write_text(json.dumps(part))
        halves.append(str(tmp_path / f"prefill{length}.json"))
    (merged,) = report.load(halves)
    assert set(merged["peers"]["etgpu"]["prefill"]) == {"8", "16"}


def test_unknown_quant_scheme_is_recorded_not_fatal(tmp_path):
    out = tmp_path / "bench.json"
    run = _bench("--hf", "qwen3-0.6b", "--scale", "tiny", "--device", "cpu", "--quant", "no-such-scheme",
                 "--bandwidth-mb", "1", "--out", str(out))
    assert run.returncode == 1
    result = json.loads(out.read_text())
    assert "no-such-scheme" in result["error"] and result["recipe"] == "qwen3-0.6b no-such-scheme (tiny)"
    assert "gb_per_s" in result["bandwidth"]


def test_quantized_embedding_table_is_benched_as_its_own_recipe(tmp_path):
    out = tmp_path / "bench.json"
    run = _bench("--hf", "qwen3-0.6b", "--scale", "tiny", "--device", TEST_DEVICE, "--quant", "int4-g32",
                 "--quant-embeddings", "int8", "--peers", "etgpu", "--prefill", "8", "--contexts", "8",
                 "--decode-steps", "2", "--runs", "1", "--bandwidth-mb", "1", "--out", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["recipe"] == "qwen3-0.6b int4-g32 emb-int8 (tiny)"
    assert result["settings"]["quant_embeddings"] == "int8"
    assert result["peers"]["etgpu"]["status"] == "ok", result["peers"]["etgpu"]
    # The int8 table (a byte per element plus a scale per row) against the bf16 one; tied, so the
    # LM head reads that same table.
    bf16_table = weight_bytes(build_hf_model("qwen3-0.6b", "tiny", dtype=torch.bfloat16))["embedding_table"]
    assert 0.5 * bf16_table <= result["weights"]["embedding_table"] < 0.6 * bf16_table
    assert result["weights"]["tied"]


@pytest.mark.parametrize("tied", [True, False])
def test_weights_read_per_token(tied):
    model = build_hf_model("llama3.2-1b", "tiny")
    if not tied:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    counted = weight_bytes(model)
    table = model.model.embed_tokens.weight.nbytes
    tensors = list(model.parameters()) + list(model.buffers())  # buffers: rotary frequencies too
    everything = sum(t.nbytes for t in {t.data_ptr(): t for t in tensors}.values())
    assert counted["tied"] == tied and counted["weights_total"] == everything
    # Tied: the head reads the whole table; untied: the lookup reads one row of it.
    expected = everything if tied else everything - table + table // model.config.vocab_size
    assert counted["weights_read_per_token"] == expected


@pytest.mark.parametrize("scheme,bits", [("int4-g32", 4), ("int8", 8)])
def test_quantized_codes_count_at_their_bit_width(scheme, bits):
    """TorchAO holds int4 codes one per byte; the roofline charges what a packed read moves."""
    from torchao.quantization import quantize_

    from etgpu.llm.quantize import linear_config

    model = torch.nn.Sequential(torch.nn.Linear(64, 96, bias=False))
    quantize_(model, linear_config(scheme))
    weight = model[0].weight
    names, _ = weight.__tensor_flatten__()
    params = sum(getattr(weight, n).nbytes for n in names if n != "qdata")
    leaves = [leaf for t in model.parameters() for leaf in roofline._leaves(t)]
    assert roofline._unique_bytes(leaves) == 96 * 64 * bits // 8 + params


def test_kv_bytes_follow_context_and_sliding_window():
    config = build_config("gemma3-1b", "tiny")  # layers: sliding (window 8), sliding, full
    assert kv_positions_read(config, 3) == 3 * 4
    assert kv_positions_read(config, 99) == 8 + 8 + 100
    model = build_hf_model("qwen3-0.6b", "tiny")
    c = model.config
    per_position = 2 * c.num_key_value_heads * c.head_dim * 4 * c.num_hidden_layers  # fp32 cache
    at_10 = decode_bytes(model, torch.float32, 10, 1)
    assert at_10["kv_read"] == 11 * per_position and at_10["kv_write"] == per_position
    # The mean over steps 10..13 is the bytes at position 11.5.
    assert decode_bytes(model, torch.float32, 10, 4)["kv_read"] == pytest.approx(12.5 * per_position)


def test_targets_met_missed_and_not_measured():
    result = {"recipe": "qwen3-0.6b bf16", "peers": {"etgpu": {"decode": {
        "128": {"tok_s": 1600.0, "roofline_fraction": 0.5}, "2048": {"tok_s": 1500.0}}}},
              "ratios": {}}
    rows = {r["check"]: r["status"] for r in targets.check(result)}
    assert rows == {"decode ctx128 tok/s": "met", "decode ctx128 vs torch.compile": "not measured",
                    "decode ctx128 roofline": "missed", "decode ctx2048 / ctx128": "met"}
    assert "not measured" in report.targets_table([result])


class _FakeModel:
    def __init__(self, gpu_ms):
        self.gpu_ms = gpu_ms

    def stats(self):
        return {"last_step_gpu_ms": self.gpu_ms}


@pytest.mark.parametrize("gpu_ms", [0.5, -1.0])
def test_etgpu_clock_reports_the_runtimes_gpu_time_when_measured(gpu_ms):
    from etgpu.bench.etgpu_runner import EtGpuStepClock

    clock = EtGpuStepClock(_FakeModel(gpu_ms))
    handles = [clock.measure(lambda: 7)[1] for _ in range(3)]
    assert all(wall >= 0 for wall in clock.seconds(handles))
    assert clock.details(handles) == ({"gpu_median_s": 0.0005} if gpu_ms >= 0 else {})


def test_a_failed_measurement_is_reported_and_the_rest_kept():
    ok = {"tok_s": 100.0}
    result = {"recipe": "x bf16", "bandwidth": {"gb_per_s": 1.0}, "decode_bytes": {"128": {"total": 1e6},
                                                                                    "2048": {"total": 2e6}},
              "peers": {"etgpu": {"status": "ok", "prefill": {}, "decode": {"128": dict(ok), "2048": {
                  "status": "error", "error": "RuntimeError: too long"}}},
                        "eager": {"status": "ok", "prefill": {}, "decode": {"128": {"tok_s": 50.0},
                                                                            "2048": {"tok_s": 40.0}}}}}
    report.add_derived(result)
    assert result["ratios"] == {"eager": {"prefill": {}, "decode": {"128": 2.0}}}
    assert result["peers"]["etgpu"]["decode"]["128"]["roofline_fraction"] == pytest.approx(0.1)
    assert "decode 2048: RuntimeError: too long" in report.results_table([result])
