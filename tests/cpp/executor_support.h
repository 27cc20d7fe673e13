// Shared by the executor-level C++ tests: constants held in memory by key, and a GraphDesc's
// payload loaded (Program::load) or made into an executor on the CPU engine.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "exec/executor.h"
#include "payload_builder.h"
#include "program/constants.h"

namespace etgpu::testing {

// What a container or ExecuTorch's named data would give the executor: bytes by key.
class MapConstants : public ConstantSource {
 public:
  std::map<std::string, std::vector<uint8_t>> bytes;
  Result<ConstantBytes> get(const std::string& key) override {
    auto it = bytes.find(key);
    ETGPU_CHECK(it != bytes.end(), "no constant '", key, "'");
    return ConstantBytes{it->second.data(), it->second.size(), {}};
  }
};

inline Result<std::unique_ptr<Executor>> make_executor(const GraphDesc& g, ConstantSource* constants) {
  const auto bytes = build_payload(g);
  auto program = Program::load(bytes.data(), bytes.size());
  ETGPU_RETURN_IF_ERROR(program.status());
  return Executor::create(program.take(), constants, make_cpu_engine(1));
}

// Program::load's verdict on g's payload.
inline Status load_status(const GraphDesc& g) {
  const auto bytes = build_payload(g);
  return Program::load(bytes.data(), bytes.size()).status();
}

}  // namespace etgpu::testing
