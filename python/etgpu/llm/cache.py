"""A static KV cache as module buffers. The exported graph writes it with index_copy at the
step's positions; etgpu lowers that write in place on the delegate-held buffer.

A sliding-window layer (window W smaller than max_seq_len) keeps a ring of W slots instead of
max_seq_len: position p lives in slot p % W, so its memory is bounded by the window. The ring has
one more slot, a discard slot: a prefill longer than W writes its tokens that fall out of the
window there, because writing two positions to one slot in one index_copy has no defined order."""

from typing import Iterable

import torch


def ring_write_slots(positions: torch.Tensor, window: int) -> torch.Tensor:
    """Slot of each position in a ring of `window` slots; positions older than the step's last
    `window` go to the discard slot (index `window`)."""
    kept = positions > positions.max() - window
    return torch.where(kept, torch.remainder(positions, window), torch.full_like(positions, window))


class StaticKVCache(torch.nn.Module):
    """Duck-types the one method transformers' attention modules call: update(). The step's
    positions are set once per forward (set_positions), since not every transformers version
    passes them to update()."""

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, max_seq_len: int, dtype: torch.dtype,
                 window: int = 0, ring_layers: Iterable[int] = ()):
        super().__init__()
        self.num_layers = num_layers
        self.max_seq_len = max_seq_len
        # A window as long as the cache never drops a position: such layers need no ring.
        self.window = window if window and window < max_seq_len else 0
        self.ring_layers = frozenset(ring_layers) if self.window else frozenset()
        for i in range(num_layers):
            slots = self.window + 1 if i in self.ring_layers else max_seq_len
            shape = (1, num_kv_heads, slots, head_dim)
            self.register_buffer(f"k_{i}", torch.zeros(shape, dtype=dtype), persistent=False)
            self.register_buffer(f"v_{i}", torch.zeros(shape, dtype=dtype), persistent=False)

    def set_positions(self, positions: torch.Tensor) -> None:
        self._positions = positions
        if self.ring_layers:
            self._ring_slots = ring_write_slots(positions, self.window)

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        pos = getattr(self, "_positions", None)
        if pos is None:
            raise ValueError("StaticKVCache.update called before set_positions")
        keys = getattr(self, f"k_{layer_idx}")
        values = getattr(self, f"v_{layer_idx}")
        key_states, value_states = key_states.to(keys.dtype), value_states.to(values.dtype)
        if layer_idx in self.ring_layers:
            # Attention sees the ring as it was before this step, then the step's own keys: a
            # prefill longer than the window still finds every query's window (attention.ring_mask).
            seen = torch.cat([keys, key_states], 2), torch.cat([values, value_states], 2)
            keys.index_copy_(2, self._ring_slots, key_states)
            values.index_copy_(2, self._ring_slots, value_states)
            return seen
        keys.index_copy_(2, pos, key_states)
        values.index_copy_(2, pos, value_states)
        return keys, values

    def reset(self) -> None:
        for buffer in self.buffers():
            buffer.zero_()
