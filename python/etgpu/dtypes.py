"""The one mapping between torch dtypes and IR dtype codes (codes equal schema/etgpu.fbs DType)."""

import torch

TORCH_TO_CODE = {
    torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int64: 3, torch.int32: 4,
    torch.int16: 5, torch.int8: 6, torch.uint8: 7, torch.bool: 8,
}
CODE_TO_TORCH = {code: dtype for dtype, code in TORCH_TO_CODE.items()}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def dtype_code(dtype: torch.dtype) -> int:
    if dtype not in TORCH_TO_CODE:
        raise TypeError(f"etgpu has no IR dtype for {dtype}")
    return TORCH_TO_CODE[dtype]
