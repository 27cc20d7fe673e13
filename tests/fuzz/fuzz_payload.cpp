// libFuzzer target: an IR payload (untrusted FlatBuffer) through Program::load, Executor::create
// on the CPU engine, and one execution at the inputs' smallest legal shapes.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etgpu;
  auto program = Program::load(data, size, fuzz::limits());
  if (!program.is_ok()) return 0;
  std::shared_ptr<const Program> loaded = program.take();
  fuzz::ZeroConstants constants(loaded->graph());
  auto executor = Executor::create(loaded, &constants, make_cpu_engine(0));
  if (!executor.is_ok()) return 0;
  fuzz::run_at_min_shapes(*executor.value(), loaded->graph(), data, size);
  return 0;
}
