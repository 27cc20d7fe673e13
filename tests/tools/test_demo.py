"""The bundled demo transformer end to end (export -> compile -> run -> compare with eager)."""

import pytest

from etgpu.models import demo


def test_demo_model_exports_with_a_dynamic_sequence_length():
    exported = demo.export(demo.build(), seq_len=8)
    placeholders = [n for n in exported.graph.nodes if n.op == "placeholder" and n.name == "tokens"]
    assert len(placeholders) == 1
    assert not isinstance(placeholders[0].meta["val"].shape[1], int)  # symbolic, not specialized


def test_demo_runs_and_matches_eager():
    from parity import TEST_DEVICE

    results = demo.run(device=TEST_DEVICE, seq_len=12)
    assert len(results["cases"]) == 2
    for case in results["cases"]:
        assert case["rel_err"] <= 1e-3, case
