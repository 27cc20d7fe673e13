#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"

namespace etgpu {

// device: "auto" (GPU when usable, else CPU), "cuda" or "cpu". `note` says what was picked and why.
Result<std::unique_ptr<Engine>> make_engine(const std::string& device, std::string* note);

}  // namespace etgpu
