// Running a .pte through ExecuTorch's Module API with the EtGpuBackend registered; nodes outside
// the delegate run on ExecuTorch's CPU kernels (linked when the wheel ships them).
#pragma once

#include <map>
#include <string>

#include "run_inputs.h"

namespace etgpu::tools {

// device "auto" leaves each delegate's compile spec in charge; "cuda"/"cpu" override it (through
// ETGPU_DEVICE, which the backend reads at init). Returns the process exit code.
int run_pte(const std::string& path, const std::string& device, int iters, std::map<int, InputSpec>& specs);

}  // namespace etgpu::tools
