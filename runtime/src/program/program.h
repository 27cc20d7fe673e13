// A verified IR payload. Loading checks the FlatBuffer structure and then every semantic fact
// the executor relies on, so nothing downstream indexes or sizes anything unchecked.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "etgpu/status.h"
#include "etgpu_generated.h"

namespace etgpu {

// The cap on arena + constant + mutable bytes one program may ask for: ETGPU_MAX_DEVICE_BYTES
// (a byte count) when set, else kDefaultMaxDeviceBytes. A payload is untrusted, so a small file
// must not be able to make the runtime allocate terabytes.
constexpr uint64_t kDefaultMaxDeviceBytes = uint64_t{256} << 30;  // 256 GiB: above any one GPU
uint64_t default_max_device_bytes();

struct LoadLimits {
  uint64_t max_arena_bytes = uint64_t{1} << 40;  // 1 TiB: a cap on what a payload may ask for
  uint64_t max_device_bytes = default_max_device_bytes();  // arena + constants + mutable state
  uint64_t max_tensors = 1u << 20;
  uint64_t max_instructions = 1u << 22;
};

// Evaluates a symbolic dim for bound symbol values.
int64_t eval_dim(const ir::Dim& dim, const int64_t* sym_values);

class Program {
 public:
  static Result<std::shared_ptr<const Program>> load(const void* data, size_t size,
                                                     const LoadLimits& limits = {});
  const ir::Graph& graph() const { return *graph_; }

 private:
  std::vector<uint64_t> storage_;  // 8-byte aligned copy of the payload
  const ir::Graph* graph_ = nullptr;
};

}  // namespace etgpu
