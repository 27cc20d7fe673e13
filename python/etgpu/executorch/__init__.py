"""The ExecuTorch side of etgpu: the partitioner and backend used by
`to_edge_transform_and_lower(ep, partitioner=[EtGpuPartitioner()])`, and the loader that makes
the C++ backend available to `executorch.runtime` (done on import when it is built)."""

from etgpu.executorch.backend import EtGpuBackend
from etgpu.executorch.partitioner import EtGpuPartitioner, compile_specs
from etgpu.executorch.runtime_loader import BACKEND_NAME, load_backend_library


def _load_if_built() -> None:
    """Registers the backend with the ExecuTorch runtime when the library exists; a checkout
    that only lowers (no C++ build) can still import this package."""
    try:
        load_backend_library()
    except FileNotFoundError:
        pass


_load_if_built()

__all__ = ["EtGpuBackend", "EtGpuPartitioner", "compile_specs", "load_backend_library", "BACKEND_NAME"]
