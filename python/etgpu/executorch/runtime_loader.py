"""Loads libetgpu_executorch.so into the process that runs `executorch.runtime`.

The ExecuTorch Python extension (`_C`) links the wheel's libexecutorch.so, which alone holds the
backend registry. Our library links the same libexecutorch.so (same SONAME, found through its
RUNPATH into the wheel), so once the extension is loaded, dlopen'ing ours runs its static
`register_backend("EtGpuBackend")` against that one registry."""

import ctypes
from pathlib import Path
from typing import Optional

from etgpu._paths import library_path

BACKEND_NAME = "EtGpuBackend"
_loaded: Optional[ctypes.CDLL] = None


def load_backend_library() -> Path:
    """Loads the backend once; returns the library's path. Raises if it does not register."""
    global _loaded
    path = library_path("libetgpu_executorch.so")
    if _loaded is not None:
        return path
    # Load the extension (and with it libexecutorch.so) first, so our library binds to that copy.
    from executorch.runtime import Runtime

    runtime = Runtime.get()
    _loaded = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    if BACKEND_NAME not in runtime.backend_registry.registered_backend_names:
        raise RuntimeError(
            f"{path} loaded but {BACKEND_NAME} is not in ExecuTorch's backend registry; it was probably "
            "built against a different libexecutorch.so than the installed executorch wheel's")
    return path
