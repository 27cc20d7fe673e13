#include "engine/tensor.h"

namespace etgpu {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I64: return 8;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  static const char* names[kNumDTypes] = {"float32", "float16", "bfloat16", "int64", "int32",
                                          "int16",   "int8",    "uint8",    "bool"};
  int i = static_cast<int>(dtype);
  return (i >= 0 && i < kNumDTypes) ? names[i] : "invalid";
}

}  // namespace etgpu
