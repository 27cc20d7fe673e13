// libFuzzer target: a whole .etgpu file through Container::parse and Model::open_bytes (the
// public loading path, with its constants), then one execution at the smallest legal shapes.
#include "etgpu/model.h"
#include "fuzz_common.h"
#include "program/container.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etgpu;
  auto bytes = std::make_shared<std::vector<uint8_t>>(data, data + size);
  auto container = Container::parse(bytes);
  if (!container.is_ok()) return 0;
  // The graph (for input shapes) comes from the same payload Model loads.
  const ByteSpan payload = container.value()->payload();
  auto program = Program::load(payload.data, payload.size, fuzz::limits());
  ModelOptions options;
  options.device = "cpu";
  options.max_device_bytes = fuzz::kMaxDeviceBytes;
  auto model = Model::open_bytes(std::vector<uint8_t>(data, data + size), options);
  if (!model.is_ok() || !program.is_ok()) return 0;
  fuzz::run_at_min_shapes(model.value()->executor(), program.value()->graph(), data, size);
  return 0;
}
