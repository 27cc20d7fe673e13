"""LLM export: Hugging Face `transformers` decoder models with a static KV cache that lives inside
the delegate (mutable state updated in place), exported with one dynamic token dimension so the
same method serves prefill (1..max_seq_len tokens) and decode (1 token)."""

from etgpu.llm.model import CausalLMForExport, export_llm  # noqa: F401
from etgpu.llm.recipes import RECIPES, build_hf_model  # noqa: F401
