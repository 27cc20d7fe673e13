#include "engine/select.h"

namespace etgpu {

Result<std::unique_ptr<Engine>> make_engine(const std::string& device, std::string* note) {
  if (device == "cpu") {
    *note = "cpu (requested)";
    return make_cpu_engine(0);
  }
  ETGPU_CHECK(device == "auto" || device == "cuda", "unknown device '", device,
              "' (expected auto, cuda or cpu)");
  std::string why;
  std::unique_ptr<Engine> cuda = make_cuda_engine(&why);
  if (cuda) {
    *note = "cuda";
    return cuda;
  }
  ETGPU_CHECK(device == "auto", "device 'cuda' requested but unusable: ", why);
  *note = "cpu (no usable GPU: " + why + ")";
  return make_cpu_engine(0);
}

}  // namespace etgpu
