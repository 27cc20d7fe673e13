// Constants for the executor from ExecuTorch's named data (the .pte's or a .ptd's), by key.
#pragma once

#include <executorch/runtime/core/named_data_map.h>

#include "program/constants.h"

namespace etgpu {

class NamedDataSource : public ConstantSource {
 public:
  explicit NamedDataSource(const executorch::runtime::NamedDataMap* map) : map_(map) {}
  // The returned bytes stay valid until `release` runs (or the ConstantBytes is destroyed):
  // the executor calls it once the engine has its own copy, or at its end when it reads the
  // bytes in place (CPU engine).
  Result<ConstantBytes> get(const std::string& key) override;

 private:
  const executorch::runtime::NamedDataMap* map_;
};

}  // namespace etgpu
