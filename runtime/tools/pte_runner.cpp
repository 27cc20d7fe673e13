#include "pte_runner.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/platform/runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "executorch/dtype_map.h"

// Exported by libetgpu_executorch.so. Calling it makes the link to the library real (a library
// that is only registered from a static initializer is otherwise dropped by --as-needed) and says
// whether its registration succeeded.
extern "C" int etgpu_executorch_backend_registered();

namespace etgpu::tools {
namespace {

using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::EValue;
namespace et = executorch::runtime;

int fail(const std::string& what, et::Error error) {
  std::fprintf(stderr, "etgpu_run: %s failed (executorch error 0x%x)\n", what.c_str(), static_cast<unsigned>(error));
  return 1;
}

std::string pick_method(Module& module) {
  auto names = module.method_names();
  if (!names.ok() || names->empty() || names->count("forward")) return "forward";
  return *names->begin();
}

// Input tensors at the planned (upper bound) shapes with seeded data, or from --input files.
bool make_inputs(const et::MethodMeta& meta, std::map<int, InputSpec>& specs,
                 std::vector<std::vector<uint8_t>>* storage, std::vector<TensorPtr>* tensors) {
  for (size_t i = 0; i < meta.num_inputs(); ++i) {
    auto info = meta.input_tensor_meta(i);
    if (!info.ok()) {
      std::fprintf(stderr, "etgpu_run: input %zu is not a tensor; only tensor inputs are supported\n", i);
      return false;
    }
    auto dtype = dtype_from_scalar_type(info->scalar_type());
    if (!dtype.is_ok()) {
      std::fprintf(stderr, "etgpu_run: input %zu: %s\n", i, dtype.status().message().c_str());
      return false;
    }
    std::vector<int64_t> shape(info->sizes().begin(), info->sizes().end());
    auto spec = specs.find(static_cast<int>(i));
    if (spec != specs.end()) shape = spec->second.shape;
    storage->push_back(spec != specs.end() ? read_bytes(spec->second.file)
                                           : seeded_input(dtype.value(), shape, static_cast<int>(i) + 1));
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    if (storage->back().size() != static_cast<size_t>(count) * dtype_size(dtype.value())) {
      std::fprintf(stderr, "etgpu_run: input %zu has %zu bytes; its shape needs %lld\n", i, storage->back().size(),
                   static_cast<long long>(count * static_cast<int64_t>(dtype_size(dtype.value()))));
      return false;
    }
    std::vector<executorch::aten::SizesType> sizes(shape.begin(), shape.end());
    tensors->push_back(executorch::extension::make_tensor_ptr(sizes, storage->back().data(), info->scalar_type()));
  }
  return true;
}

void print_outputs(const std::vector<EValue>& outputs) {
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (!outputs[o].isTensor()) {
      std::printf("output %zu: (not a tensor, tag %d)\n", o, static_cast<int>(outputs[o].tag));
      continue;
    }
    const auto& t = outputs[o].toTensor();
    auto dtype = dtype_from_scalar_type(t.scalar_type());
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (dtype.is_ok()) print_summary(o, dtype.value(), shape, t.const_data_ptr());
    else std::printf("output %zu: %s\n", o, dtype.status().message().c_str());
  }
}

}  // namespace

int run_pte(const std::string& path, const std::string& device, int iters, std::map<int, InputSpec>& specs) {
  et::runtime_init();
  if (!etgpu_executorch_backend_registered()) {
    std::fprintf(stderr, "etgpu_run: EtGpuBackend did not register with ExecuTorch\n");
    return 1;
  }
  if (device != "auto") setenv("ETGPU_DEVICE", device.c_str(), 1);
  Module module(path, Module::LoadMode::Mmap);
  if (const et::Error e = module.load(); e != et::Error::Ok) return fail("loading " + path, e);
  const std::string method = pick_method(module);
  if (const et::Error e = module.load_method(method); e != et::Error::Ok) return fail("loading method " + method, e);
  auto meta = module.method_meta(method);
  if (!meta.ok()) return fail("method_meta", meta.error());
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorPtr> tensors;
  storage.reserve(meta->num_inputs());  // tensors point into storage: no reallocation
  if (!make_inputs(*meta, specs, &storage, &tensors)) return 1;
  std::vector<EValue> inputs(tensors.begin(), tensors.end());
  double best_ms = 1e30;
  for (int it = 0; it < iters; ++it) {
    const auto start = std::chrono::steady_clock::now();
    auto outputs = module.execute(method, inputs);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!outputs.ok()) return fail("executing " + method, outputs.error());
    best_ms = std::min(best_ms, ms);
    if (it + 1 == iters) print_outputs(*outputs);
  }
  std::printf("method %s: best of %d: %.3f ms\n", method.c_str(), iters, best_ms);
  return 0;
}

}  // namespace etgpu::tools
