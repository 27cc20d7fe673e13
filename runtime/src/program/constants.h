// Where constant bytes (weights) come from: the .etgpu container or ExecuTorch's named data.
// Bytes stay where the source holds them; `release` returns them once the engine has its copy.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "etgpu/status.h"

namespace etgpu {

struct ConstantBytes {
  const void* data = nullptr;
  size_t size = 0;
  std::function<void()> release;  // may be empty
};

class ConstantSource {
 public:
  virtual ~ConstantSource() = default;
  virtual Result<ConstantBytes> get(const std::string& key) = 0;
};

}  // namespace etgpu
