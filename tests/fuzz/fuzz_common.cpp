#include "fuzz_common.h"

#include <algorithm>

#include "program/verify.h"

namespace etgpu::fuzz {

LoadLimits limits() {
  LoadLimits l;
  l.max_arena_bytes = kMaxDeviceBytes;
  l.max_device_bytes = kMaxDeviceBytes;
  l.max_tensors = 1u << 14;
  l.max_instructions = 1u << 14;
  return l;
}

ZeroConstants::ZeroConstants(const ir::Graph& graph) {
  // Only called on verified graphs, whose constant bytes are within the cap.
  for (const ir::Tensor* t : *graph.tensors()) {
    if (t->key() == nullptr) continue;
    std::vector<uint8_t>& bytes = bytes_[t->key()->str()];
    bytes.resize(std::max<size_t>(bytes.size(), t->nbytes()));
  }
}

Result<ConstantBytes> ZeroConstants::get(const std::string& key) {
  auto it = bytes_.find(key);
  ETGPU_CHECK(it != bytes_.end(), "no constant '", key, "'");
  return ConstantBytes{it->second.data(), it->second.size(), {}};
}

namespace {

struct Inputs {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<uint8_t>> data;
  std::vector<HostTensor> tensors;
};

bool make_inputs(const ir::Graph& graph, const uint8_t* fill, size_t fill_size, Inputs* in) {
  std::vector<int64_t> mins;
  if (graph.sym_dims()) {
    for (const ir::SymDim* s : *graph.sym_dims()) mins.push_back(s->min());
  }
  const size_t n = graph.inputs()->size();
  in->shapes.resize(n);
  in->data.resize(n);
  size_t cursor = 0;
  for (size_t i = 0; i < n; ++i) {
    const ir::Tensor& t = *graph.tensors()->Get(graph.inputs()->Get(i));
    if (t.shape()) {
      for (const ir::Dim* d : *t.shape()) in->shapes[i].push_back(eval_dim(*d, mins.data()));
    }
    auto bytes = tensor_bytes(t, mins.data());
    if (!bytes.is_ok() || bytes.value() > kMaxDeviceBytes) return false;
    in->data[i].resize(bytes.value());
    for (uint8_t& b : in->data[i]) b = fill_size ? fill[cursor++ % fill_size] : 0;
    in->tensors.push_back({in->data[i].data(), static_cast<DType>(static_cast<int8_t>(t.dtype())),
                           static_cast<int>(in->shapes[i].size()), in->shapes[i].data()});
  }
  return true;
}

}  // namespace

void run_at_min_shapes(Executor& executor, const ir::Graph& graph, const uint8_t* fill, size_t fill_size) {
  Inputs inputs;
  if (!make_inputs(graph, fill, fill_size, &inputs)) return;
  if (!executor.execute(inputs.tensors).is_ok()) return;
  for (size_t i = 0; i < executor.num_outputs(); ++i) {
    size_t bytes = dtype_size(executor.output_dtype(i));
    for (int64_t d : executor.output_shape(i)) bytes *= static_cast<size_t>(d);
    std::vector<uint8_t> out(bytes);
    (void)executor.read_output(i, out.data(), out.size());
  }
}

}  // namespace etgpu::fuzz
