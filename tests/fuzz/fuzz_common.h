// Shared pieces of the libFuzzer targets: small load limits (so a fuzzed program cannot ask for
// more memory than a fuzzing job has), constants for a bare payload, and one execution with the
// inputs at the symbols' lower bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "exec/executor.h"
#include "program/constants.h"
#include "program/program.h"

namespace etgpu::fuzz {

// 1 MiB of device memory: keeps every kernel's work (even a matmul, cubic in its dims) short.
constexpr uint64_t kMaxDeviceBytes = uint64_t{1} << 20;

LoadLimits limits();

// Constants for a bare payload: zero bytes of the size each key's tensor declares.
class ZeroConstants : public ConstantSource {
 public:
  explicit ZeroConstants(const ir::Graph& graph);
  Result<ConstantBytes> get(const std::string& key) override;

 private:
  std::map<std::string, std::vector<uint8_t>> bytes_;
};

// Executes once with every input at its shape for the symbols' lower bounds, its bytes taken
// cyclically from `fill` (so the fuzzer also chooses NaNs, infinities and huge integers), then
// reads every output. Errors are expected and ignored; crashes and sanitizer reports are not.
void run_at_min_shapes(Executor& executor, const ir::Graph& graph, const uint8_t* fill, size_t fill_size);

}  // namespace etgpu::fuzz
