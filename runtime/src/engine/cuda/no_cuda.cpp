// Linked instead of the CUDA engine when the build found no CUDA toolkit.
#include "engine/engine.h"

namespace etgpu {
std::unique_ptr<Engine> make_cuda_engine(std::string* why) {
  *why = "etgpu was built without the CUDA engine";
  return nullptr;
}
}  // namespace etgpu
