"""Parity helpers: export a module, lower it with etgpu, run it on the engine under test, and
compare with PyTorch eager (and, when the engine is cuda, with PyTorch CUDA eager too).

Two paths run the same lowering: the torch-only .etgpu file, and (when executorch is importable
and ETGPU_TEST_PTE != "0") the real user flow, to_edge_transform_and_lower(EtGpuPartitioner)
-> .pte -> executorch.runtime with the EtGpuBackend library loaded."""

import os
from typing import Optional, Sequence

import torch

import etgpu

TEST_DEVICE = os.environ.get("ETGPU_TEST_DEVICE", "cpu")


def pte_path_enabled(inputs: Sequence = ()) -> bool:
    """ETGPU_TEST_PTE: "0" off; "all" every case; default: cases whose float inputs are all fp32.
    The .pte path runs the same kernels as the .etgpu path, so the half-precision variants of an
    op add no integration coverage there, only minutes."""
    mode = os.environ.get("ETGPU_TEST_PTE", "1")
    if mode == "0":
        return False
    if mode != "all" and any(isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16)
                             for x in inputs):
        return False
    try:
        import executorch.exir  # noqa: F401
        import executorch.runtime  # noqa: F401
    except ImportError:
        return False
    return True

# Design tolerances: relative error = max|actual - expected| / max|expected|.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double().cpu(), expected.double().cpu()
    scale = e.abs().max().item() if e.numel() else 0.0
    diff = (a - e).abs().max().item() if e.numel() else 0.0
    return diff / max(scale, 1e-12)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: Optional[float] = None, what: str = ""):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} vs {expected.dtype}"
    if not expected.dtype.is_floating_point:
        assert torch.equal(actual.cpu(), expected.cpu()), f"{what}: integer/bool results differ"
        return
    if tol is None:
        tol = TOLERANCE[expected.dtype]
    nan_a, nan_e = torch.isnan(actual.cpu()), torch.isnan(expected.cpu())
    assert torch.equal(nan_a, nan_e), f"{what}: NaN positions differ"
    finite = ~nan_e
    err = rel_err(actual.cpu()[finite], expected.cpu()[finite])
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def export(module: torch.nn.Module, inputs: Sequence, dynamic_shapes=None):
    """torch.export with `dynamic_shapes` given per input (also for Fn's *args forward)."""
    if isinstance(module, Fn) and dynamic_shapes is not None:
        dynamic_shapes = (tuple(dynamic_shapes),)
    return torch.export.export(module, tuple(inputs), dynamic_shapes=dynamic_shapes)


def run_etgpu(module: torch.nn.Module, inputs: Sequence, dynamic_shapes=None, device: str = TEST_DEVICE,
              run_inputs: Optional[Sequence] = None):
    """Exports and compiles `module`, then runs it on `run_inputs` (default: `inputs`)."""
    model = etgpu.Model(etgpu.compile(export(module, inputs, dynamic_shapes)), device=device)
    return _as_tuple(model.run(list(run_inputs if run_inputs is not None else inputs)))


def check_module(module: torch.nn.Module, inputs: Sequence, dynamic_shapes=None, tol: Optional[float] = None,
                 run_inputs_list: Optional[Sequence[Sequence]] = None, compare_torch_cuda: bool = True):
    """etgpu vs eager for `inputs` (and each extra input set, for dynamic shapes). On the GPU it
    also compares with torch's CUDA kernels unless `compare_torch_cuda` is False (for cases where
    torch's CUDA and CPU kernels disagree with each other or CUDA rejects the inputs)."""
    module = module.eval()
    exported = export(module, inputs, dynamic_shapes)
    model = etgpu.Model(etgpu.compile(exported), device=TEST_DEVICE)
    method = PteProgram(exported, device=TEST_DEVICE).method if pte_path_enabled(inputs) else None
    for case in [inputs] + list(run_inputs_list or []):
        with torch.no_grad():
            expected = _as_tuple(module(*case))
        paths = [(".etgpu", model.run)] + ([(".pte", method.execute)] if method else [])
        for path, run in paths:
            actual = _as_tuple(run(list(case)))
            assert len(actual) == len(expected), f"{path}: {len(actual)} outputs, expected {len(expected)}"
            for i, (a, e) in enumerate(zip(actual, expected)):
                assert_close(a, e, tol, what=f"{path} output {i}")
            if TEST_DEVICE == "cuda" and compare_torch_cuda:
                _check_against_torch_cuda(module, case, actual, tol)
    return model


class PteProgram:
    """`exported` through the ExecuTorch flow: partition + lower with EtGpuPartitioner, serialize
    to .pte bytes, load with executorch.runtime. With `full_delegation`, every compute node must
    have gone to etgpu (else an op test could silently pass on ExecuTorch's CPU kernels)."""

    def __init__(self, exported, device: str = TEST_DEVICE, full_delegation: bool = True):
        from executorch.exir import to_edge_transform_and_lower
        from executorch.runtime import Runtime

        from etgpu.executorch import EtGpuPartitioner, load_backend_library

        load_backend_library()
        partitioner = EtGpuPartitioner(device=device)
        edge = to_edge_transform_and_lower(exported, partitioner=[partitioner])
        self.graph = edge.exported_program().graph
        self.left_on_cpu = [n for n in self.graph.nodes if n.op == "call_function"
                            and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)]
        if full_delegation:
            assert not self.left_on_cpu, (
                f"not delegated to etgpu: {[str(n.target) for n in self.left_on_cpu]}; "
                f"partitioner reasons: {partitioner.unsupported}")
        self.num_delegates = sum(1 for n in self.graph.nodes if "executorch_call_delegate" in str(n.target))
        self.pte = edge.to_executorch().buffer
        # The Method borrows from its Program: keep both alive together.
        self.program = Runtime.get().load_program(self.pte)
        self.method = _PteMethod(self.program.load_method("forward"), owner=self)


class _PteMethod:
    def __init__(self, method, owner):
        self._method = method
        self._owner = owner  # keeps the Program (and its bytes) alive as long as this method

    def execute(self, inputs):
        tensors = [x.detach().cpu().contiguous() if isinstance(x, torch.Tensor) else x for x in inputs]
        # Outputs may live in the method's planned memory: copy before the next execute.
        return [o.clone() if isinstance(o, torch.Tensor) else o for o in self._method.execute(tensors)]


def _check_against_torch_cuda(module, case, actual, tol):
    """On the GPU, also compare with PyTorch's own CUDA kernels."""
    cuda_module = module.to("cuda")
    # Factory calls inside forward (torch.ones(n, 4), arange) must land on the GPU too.
    with torch.no_grad(), torch.device("cuda"):
        expected = _as_tuple(cuda_module(*[x.to("cuda") if isinstance(x, torch.Tensor) else x for x in case]))
    module.to("cpu")
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e.cpu(), tol, what=f"output {i} vs torch cuda")


class Fn(torch.nn.Module):
    """Wraps a function of tensors as a module (so one-op tests read as one line)."""

    def __init__(self, fn, *params: torch.Tensor):
        super().__init__()
        self.fn = fn
        for i, p in enumerate(params):
            self.register_buffer(f"p{i}", p)

    def forward(self, *args):
        return self.fn(*args, *[getattr(self, f"p{i}") for i in range(len(self._buffers))])


def randn(*shape, dtype=torch.float32):
    """Random inputs, kept away from zero so relative errors stay meaningful."""
    x = torch.randn(*shape)
    x = torch.where(x.abs() < 0.05, torch.full_like(x, 0.1), x)
    return x.to(dtype)
