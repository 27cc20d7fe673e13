"""A static KV cache as module buffers. The exported graph writes it with index_copy at the
step's positions; etgpu lowers that write in place on the delegate-held buffer."""

import torch


class StaticKVCache(torch.nn.Module):
    """Duck-types the one method transformers' attention modules call: update(). The step's
    positions are set once per forward (set_positions), since not every transformers version
    passes them to update()."""

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, max_seq_len: int, dtype: torch.dtype):
        super().__init__()
        self.num_layers = num_layers
        self.max_seq_len = max_seq_len
        shape = (1, num_kv_heads, max_seq_len, head_dim)
        for i in range(num_layers):
            self.register_buffer(f"k_{i}", torch.zeros(shape, dtype=dtype), persistent=False)
            self.register_buffer(f"v_{i}", torch.zeros(shape, dtype=dtype), persistent=False)

    def set_positions(self, positions: torch.Tensor) -> None:
        self._positions = positions

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        pos = getattr(self, "_positions", None)
        if pos is None:
            raise ValueError("StaticKVCache.update called before set_positions")
        keys = getattr(self, f"k_{layer_idx}")
        values = getattr(self, f"v_{layer_idx}")
        keys.index_copy_(2, pos, key_states.to(keys.dtype))
        values.index_copy_(2, pos, value_states.to(values.dtype))
        return keys, values

    def reset(self) -> None:
        for buffer in self.buffers():
            buffer.zero_()
