"""scripts/soak.py: a short run passes and writes its samples; the verdict catches memory growth
and a slowdown (the full 10,000-step figures are in docs/reliability.md)."""

import importlib.util
import json
from argparse import Namespace
from pathlib import Path

from parity import TEST_DEVICE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"
spec = importlib.util.spec_from_file_location("soak", SCRIPT)
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)

TOLERANCES = Namespace(rss_tolerance_mib=16.0, device_tolerance_mib=1.0, max_slowdown=0.2, device="cuda")


def row(steps_per_s=100.0, rss=800.0, engine=1.0, gpu=None, cpu=100.0):
    return {"steps_per_s": steps_per_s, "steps_per_cpu_s": cpu, "rss_mib": rss, "engine_mib": engine,
            "gpu_used_mib": gpu}


def test_short_soak_is_steady(tmp_path):
    out = tmp_path / "soak.json"
    # A generous slowdown bound: this machine's other load moves the speed of a short run.
    code = soak.main(["--device", TEST_DEVICE, "--steps", "120", "--reset-every", "40", "--prompt", "4",
                      "--max-slowdown", "0.9", "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == 0, result["problems"]
    assert [s["steps"] for s in result["samples"]] == [40, 80, 120]
    assert [s["resets"] for s in result["samples"]] == [2, 3, 4]  # the warm-up segment is reset 1
    assert all(s["rss_mib"] > 0 and s["steps_per_s"] > 0 and s["steps_per_cpu_s"] > 0 for s in result["samples"])


def test_verdict_catches_growth_and_slowdown():
    assert soak.verdict([row(), row(rss=810.0), row(rss=815.9)], TOLERANCES) == []
    assert "rss_mib grew" in soak.verdict([row(), row(rss=817.0)], TOLERANCES)[0]
    assert "engine_mib grew" in soak.verdict([row(), row(engine=2.5)], TOLERANCES)[0]
    assert "gpu_used_mib grew" in soak.verdict([row(gpu=500.0), row(gpu=502.0)], TOLERANCES)[0]
    steady = [row(100.0)] * 4 + [row(90.0)] * 4
    assert soak.verdict(steady, TOLERANCES) == []
    slowed = [row(100.0)] * 4 + [row(70.0)] * 4
    assert "decode slowed 100.0 -> 70.0 steps_per_s" in soak.verdict(slowed, TOLERANCES)[0]
    one_slow_interval = [row(100.0)] * 3 + [row(40.0)] + [row(100.0)] * 4
    assert soak.verdict(one_slow_interval, TOLERANCES) == []
    on_cpu = Namespace(**{**vars(TOLERANCES), "device": "cpu"})  # CPU time, not wall time, counts there
    assert soak.verdict(slowed, on_cpu) == []
    assert "steps_per_cpu_s" in soak.verdict([row(cpu=100.0)] * 4 + [row(cpu=70.0)] * 4, on_cpu)[0]
