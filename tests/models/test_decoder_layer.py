"""A Llama decoder layer from transformers (small random weights) through etgpu, exported with a
dynamic sequence length: RMSNorm (pow/mean/rsqrt), RoPE (slices, neg, cat), GQA attention
(SDPA with enable_gqa and is_causal) and the SwiGLU MLP."""

import pytest
import torch

from parity import check_module, randn

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.models.llama.modeling_llama import (  # noqa: E402
    LlamaAttention, LlamaDecoderLayer, LlamaRotaryEmbedding)

MAX_SEQ = 32
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1e-2}


def small_config() -> LlamaConfig:
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                         num_hidden_layers=1, vocab_size=128, max_position_embeddings=128)
    config._attn_implementation = "sdpa"  # what ExecuTorch exports use; SDPA stays one op
    return config


class DecoderBlock(torch.nn.Module):
    """hidden_states [1, T, 64], position_ids [1, T] -> hidden_states: the rotary table is computed
    inside, so the exported program is self-contained."""

    def __init__(self, config: LlamaConfig, attention_only: bool = False):
        super().__init__()
        self.rope = LlamaRotaryEmbedding(config)
        self.attention_only = attention_only
        if attention_only:
            self.attn = LlamaAttention(config, layer_idx=0)
        else:
            self.layer = LlamaDecoderLayer(config, layer_idx=0)

    def forward(self, hidden_states, position_ids):
        position_embeddings = self.rope(hidden_states, position_ids)
        if self.attention_only:
            out = self.attn(hidden_states, position_embeddings=position_embeddings, attention_mask=None)
        else:
            out = self.layer(hidden_states, position_embeddings=position_embeddings, position_ids=position_ids)
        return out[0] if isinstance(out, tuple) else out


def build(dtype: torch.dtype, attention_only: bool = False) -> DecoderBlock:
    torch.manual_seed(0)
    block = DecoderBlock(small_config(), attention_only)
    with torch.no_grad():
        for name, param in block.named_parameters():
            # Random norm weights too (they start at 1), so every weight matters to the result.
            param.copy_(1 + 0.1 * torch.randn_like(param) if "norm" in name else 0.1 * torch.randn_like(param))
    return block.to(dtype).eval()


def inputs(length: int, dtype: torch.dtype):
    return randn(1, length, 64, dtype=dtype), torch.arange(length).unsqueeze(0)


def check(dtype: torch.dtype, attention_only: bool):
    # min=2: the HF attention takes the causal path only for more than one query.
    seq = torch.export.Dim("seq", min=2, max=MAX_SEQ)
    check_module(build(dtype, attention_only), inputs(7, dtype), dynamic_shapes=({1: seq}, {1: seq}),
                 tol=TOLERANCE[dtype], run_inputs_list=[inputs(2, dtype), inputs(19, dtype), inputs(MAX_SEQ, dtype)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_llama_attention_block(dtype):
    check(dtype, attention_only=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_llama_decoder_layer(dtype):
    check(dtype, attention_only=False)
