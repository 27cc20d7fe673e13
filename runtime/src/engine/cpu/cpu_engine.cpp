// The CPU engine: the portable reference every other engine is tested against. Memory is host
// memory, so constants are read where they lie.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "engine/cpu/cpu_common.h"
#include "engine/engine.h"

namespace etgpu {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

class CpuEngine final : public Engine {
 public:
  const char* name() const override { return "cpu"; }
  bool uses_host_memory() const override { return true; }

  Result<void*> allocate(size_t bytes) override {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    ETGPU_CHECK(p != nullptr, "cpu engine: out of host memory allocating ", bytes, " bytes");
    allocations_.record(p, bytes, &stats_);
    return p;
  }
  void release(void* p) override {
    if (allocations_.forget(p, &stats_)) std::free(p);
  }
  Status upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
    return Status::ok();
  }
  Status download(void* dst, const void* src, size_t bytes) override { return upload(dst, src, bytes); }
  Status zero(void* dst, size_t bytes) override {
    std::memset(dst, 0, bytes);
    return Status::ok();
  }
  Status synchronize() override { return Status::ok(); }

  Status run(const Node& node) override {
    using namespace cpu;
    return std::visit(
        Overloaded{[&](const UnaryParams& p) { return unary(node, p); },
                   [&](const BinaryParams& p) { return binary(node, p); },
                   [&](const WhereParams& p) { return where(node, p); },
                   [&](const CastParams& p) { return cast(node, p); },
                   [&](const FillParams& p) { return fill(node, p); },
                   [&](const ArangeParams& p) { return arange(node, p); },
                   [&](const MatMulParams& p) { return matmul(node, p); },
                   [&](const ReduceParams& p) { return reduce(node, p); },
                   [&](const SoftmaxParams& p) { return softmax(node, p); },
                   [&](const LayerNormParams& p) { return layer_norm(node, p); },
                   [&](const RmsNormParams& p) { return rms_norm(node, p); },
                   [&](const PermuteParams& p) { return permute(node, p); },
                   [&](const ExpandParams& p) { return expand(node, p); },
                   [&](const SliceParams& p) { return slice(node, p); },
                   [&](const SelectParams& p) { return select(node, p); },
                   [&](const CatParams& p) { return cat(node, p); },
                   [&](const IndexSelectParams& p) { return index_select(node, p); },
                   [&](const GatherParams& p) { return gather(node, p); },
                   [&](const SdpaParams& p) { return sdpa(node, p); },
                   [&](const CopyIntoParams& p) { return copy_into(node, p); },
                   [&](const IndexCopyParams& p) { return index_copy(node, p); },
                   [&](const QuantLinearParams& p) { return quant_linear(node, p); },
                   [&](const QuantEmbeddingParams& p) { return quant_embedding(node, p); },
                   [&](const RopeParams& p) { return rope(node, p); },
                   [&](const GluParams& p) { return glu(node, p); },
                   [&](const AddRmsNormParams& p) { return add_rms_norm(node, p); },
                   [&](const SplitLinearParams& p) { return split_linear(node, p); }},
        node.params);
  }

  EngineStats stats() const override { return stats_; }

 private:
  AllocationTracker allocations_;
  EngineStats stats_;
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(int /*num_threads*/) { return std::make_unique<CpuEngine>(); }

}  // namespace etgpu
