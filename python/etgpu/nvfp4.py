"""NVFP4 weights as plain tensors, for export.

TorchAO's NVFP4WeightOnlyConfig quantizes on the CPU, but its NVFP4Tensor weight does not survive
`run_decompositions` (torch.export lifts a tensor inside its linear and then rejects the
program). `to_exportable(model)` therefore swaps every linear whose weight TorchAO made an
NVFP4Tensor for an `NvFp4Linear` holding the same quantized values as plain buffers (e2m1 codes,
unswizzled e4m3 scales, the per-tensor fp32 scale); its forward dequantizes with
`etgpu::dequantize_nvfp4`, which etgpu lowers into a QuantizedLinear (lower/ops/quant.py)."""

import torch

GROUP = 16


@torch.library.custom_op("etgpu::dequantize_nvfp4", mutates_args=())
def dequantize_nvfp4(codes: torch.Tensor, scales: torch.Tensor, tensor_scale: float,
                     dtype: torch.dtype) -> torch.Tensor:
    """codes u8 [N, K/2] (low nibble = even k), scales u8 [N, K/16] e4m3 -> [N, K] in `dtype`,
    computed as TorchAO's NVFP4Tensor.dequantize does (fp32, one rounding at the end)."""
    from torchao.prototype.mx_formats.kernels import f4_unpacked_to_f32, unpack_uint4

    n, k = codes.shape[0], codes.shape[1] * 2
    values = f4_unpacked_to_f32(unpack_uint4(codes.contiguous())).view(n, k // GROUP, GROUP)
    block_scales = tensor_scale * scales.view(torch.float8_e4m3fn).to(torch.float32)
    return (values * block_scales.view(n, k // GROUP, 1)).view(n, k).to(dtype)


@dequantize_nvfp4.register_fake
def _(codes, scales, tensor_scale, dtype):
    return codes.new_empty((codes.shape[0], codes.shape[1] * 2), dtype=dtype)


class NvFp4Linear(torch.nn.Module):
    def __init__(self, weight, bias):
        """`weight`: a TorchAO NVFP4Tensor [N, K] (row-major, weight-only)."""
        from torchao.prototype.mx_formats.utils import from_blocked

        super().__init__()
        n, k = weight.shape
        if weight.block_size != GROUP or weight.act_quant_kwargs is not None:
            raise ValueError("NvFp4Linear takes weight-only NVFP4 with blocks of 16")
        scales = weight.scale
        if weight.is_swizzled_scales:  # the tensor-core tile layout -> plain [N, K/16] rows
            scales = from_blocked(scales, n, k // GROUP)
        self.register_buffer("codes", weight.qdata.view(torch.uint8).reshape(n, k // 2).clone())
        self.register_buffer("scales", scales.view(torch.uint8).reshape(n, k // GROUP).clone())
        self.tensor_scale = 1.0 if weight.per_tensor_scale is None else float(weight.per_tensor_scale)
        self.dtype = weight.orig_dtype
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        w = dequantize_nvfp4(self.codes, self.scales, self.tensor_scale, self.dtype)
        return torch.nn.functional.linear(x, w, self.bias)


def to_exportable(model: torch.nn.Module) -> torch.nn.Module:
    """Replaces, in place, each linear with an NVFP4Tensor weight by an equivalent NvFp4Linear."""
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.Linear) and type(child.weight).__name__ == "NVFP4Tensor":
            setattr(model, name, NvFp4Linear(child.weight, child.bias))
        else:
            to_exportable(child)
    return model
