#include "executorch/dtype_map.h"

namespace etgpu {

using executorch::aten::ScalarType;

Result<DType> dtype_from_scalar_type(ScalarType type) {
  switch (type) {
    case ScalarType::Float: return DType::F32;
    case ScalarType::Half: return DType::F16;
    case ScalarType::BFloat16: return DType::BF16;
    case ScalarType::Long: return DType::I64;
    case ScalarType::Int: return DType::I32;
    case ScalarType::Short: return DType::I16;
    case ScalarType::Char: return DType::I8;
    case ScalarType::Byte: return DType::U8;
    case ScalarType::Bool: return DType::Bool;
    default: return err("ExecuTorch scalar type ", static_cast<int>(type), " has no etgpu dtype");
  }
}

}  // namespace etgpu
