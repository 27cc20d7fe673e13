"""etgpu: a GPU delegate for ExecuTorch (and a torch-only runner for the same payloads).

    import etgpu
    etgpu.compile(exported_program, "model.etgpu")        # torch-only path
    model = etgpu.load("model.etgpu"); outputs = model.run([x])
    from etgpu.executorch import EtGpuPartitioner         # ExecuTorch path
"""

from etgpu._paths import extend_generated_path

extend_generated_path(__path__)

from etgpu.compile import compile  # noqa: E402
from etgpu.runtime import Model, load  # noqa: E402


def load_runtime():
    """Loads the ExecuTorch backend library so `executorch.runtime` can run etgpu-delegated .pte files."""
    from etgpu.executorch.runtime_loader import load_backend_library

    return load_backend_library()


__all__ = ["compile", "load", "Model", "load_runtime"]
__version__ = "0.1.0"
