"""The torch-only path: ExportedProgram -> .etgpu (payload + constants in one file)."""

from pathlib import Path
from typing import Optional, Union

from torch.export import ExportedProgram

from etgpu import container
from etgpu.decompositions import decomposition_table
from etgpu.lower.graph import LoweredProgram, lower_program


def lower(exported: ExportedProgram) -> LoweredProgram:
    """Decomposes to the ops etgpu lowers and lowers the whole graph (every op must be supported)."""
    decomposed = exported.run_decompositions(decomposition_table())
    return lower_program(decomposed)


def compile(exported: ExportedProgram, path: Optional[Union[str, Path]] = None) -> bytes:  # noqa: A001
    """Lowers `exported`; writes the .etgpu file to `path` when given; returns its bytes."""
    lowered = lower(exported)
    data = container.pack(lowered.payload, lowered.constants)
    if path is not None:
        Path(path).write_bytes(data)
    return data
