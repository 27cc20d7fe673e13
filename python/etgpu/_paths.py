"""Where the built pieces live: next to the package when installed by pip, else in the CMake
build folder of a source checkout (`ETGPU_BUILD_DIR`, default `<repo>/build`)."""

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def build_dir() -> Path:
    return Path(os.environ.get("ETGPU_BUILD_DIR", _PACKAGE_DIR.parent.parent / "build"))


def extend_generated_path(package_path) -> None:
    """Makes the generated `etgpu.ir` package (flatc output) importable from a source checkout."""
    if (_PACKAGE_DIR / "ir" / "__init__.py").exists():
        return
    generated = build_dir() / "python" / "etgpu"
    if generated.is_dir():
        package_path.append(str(generated))


def library_path(name: str) -> Path:
    """Path of a built shared library (`libetgpu.so`, `libetgpu_executorch.so`)."""
    for candidate in (_PACKAGE_DIR / "lib" / name, build_dir() / "runtime" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{name} not found next to the etgpu package or in {build_dir() / 'runtime'}; "
        "build it with `make build` (source checkout) or `pip install .`")
