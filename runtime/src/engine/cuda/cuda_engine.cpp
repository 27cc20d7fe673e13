// The CUDA engine: every IR instruction runs as our kernels or cuBLASLt on one stream owned by
// the engine. Memory is plain cudaMalloc (tracked: bytes and peak); transfers and zeroing are
// asynchronous on the stream; `synchronize` reports any asynchronous failure and the kernels'
// bad-index flag. Fixed workspaces (cuBLASLt, split-KV attention, quantized-linear scratch, the error word) are allocated
// once when the engine is created, so `run` never allocates.
//
// CUDA graphs: the executor brackets each step with begin_step / end_step and a key of the bound
// shapes. The first time a key is seen the step runs eagerly; the second time its launches are
// captured (stream capture) into a graph, which is instantiated and launched; from then on the
// graph replays and the executor skips `run`. Inputs are uploaded into the arena before
// begin_step, at fixed addresses, so a replay reads the new inputs. ETGPU_CUDA_GRAPHS=0 turns
// graphs off.
//
// Grouping: run_next runs a layer's q and k Ropes and v's cache IndexCopy as one launch (rope.cu
// rope_group; ETGPU_ROPE_GROUP=0 turns that off), and quantized linears that read one x (q/k/v,
// gate/up) as one GEMV launch (quant.cu quant_linear_group; ETGPU_QLINEAR_GROUP=0 turns it off).
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"
#include "engine/engine.h"

namespace etgpu {
namespace {

using cuda::cuda_status;

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

constexpr size_t kCublasWorkspaceBytes = 32u << 20;    // what cuBLASLt suggests for Hopper
constexpr size_t kAttentionScratchBytes = 16u << 20;    // split-KV partials
constexpr int kAttentionCounters = 4096;                 // decode blocks that merge their own splits

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

class CudaEngine final : public Engine {
 public:
  ~CudaEngine() override {
    if (capturing_) abandon_capture();
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    delete blas_;
    if (ctx_.error_flag) cudaFree(ctx_.error_flag);
    if (ctx_.attn_scratch) cudaFree(ctx_.attn_scratch);
    if (ctx_.attn_counters) cudaFree(ctx_.attn_counters);
    if (ctx_.quant_scratch) cudaFree(ctx_.quant_scratch);
    if (host_flag_) cudaFreeHost(host_flag_);
    allocations_.release_all([](void* p) { cudaFree(p); });
    if (step_start_) cudaEventDestroy(step_start_);
    if (step_end_) cudaEventDestroy(step_end_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init(int device) {
    ETGPU_CUDA_CHECK(cudaSetDevice(device));
    device_ = device;
    ETGPU_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ctx_.stream = stream_;
    ETGPU_CUDA_CHECK(cudaEventCreate(&step_start_));
    ETGPU_CUDA_CHECK(cudaEventCreate(&step_end_));
    ETGPU_CUDA_CHECK(cudaDeviceGetAttribute(&ctx_.num_sms, cudaDevAttrMultiProcessorCount, device));
    auto blas = cuda::CublasLt::create(kCublasWorkspaceBytes);
    ETGPU_RETURN_IF_ERROR(blas.status());
    blas_ = blas.value();
    ctx_.blas = blas_;
    ETGPU_CUDA_CHECK(cudaMalloc(&ctx_.error_flag, sizeof(int)));
    // Zeroed on the engine's own stream: it is non-blocking, so a legacy-stream cudaMemset need
    // not finish before the first synchronize reads the word back (a stale value then showed up
    // as a bogus kernel error code).
    ETGPU_CUDA_CHECK(cudaMemsetAsync(ctx_.error_flag, 0, sizeof(int), stream_));
    ETGPU_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ETGPU_CUDA_CHECK(cudaMallocHost(&host_flag_, sizeof(int)));
    ETGPU_CUDA_CHECK(cudaMalloc(&ctx_.attn_scratch, kAttentionScratchBytes));
    ctx_.attn_scratch_floats = kAttentionScratchBytes / sizeof(float);
    ETGPU_CUDA_CHECK(cudaMalloc(&ctx_.attn_counters, kAttentionCounters * sizeof(unsigned)));
    ETGPU_CUDA_CHECK(cudaMemsetAsync(ctx_.attn_counters, 0, kAttentionCounters * sizeof(unsigned), stream_));
    ETGPU_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ctx_.attn_counter_count = kAttentionCounters;
    ETGPU_CUDA_CHECK(cudaMalloc(&ctx_.quant_scratch, cuda::kQuantScratchBytes));
    ctx_.quant_scratch_bytes = cuda::kQuantScratchBytes;
    ETGPU_RETURN_IF_ERROR(cuda::attention_init());
    graphs_enabled_ = !env_off("ETGPU_CUDA_GRAPHS");
    // Read with the engine, as ETGPU_CUDA_GRAPHS: a captured graph keeps the launches it recorded.
    group_ropes_ = !env_off("ETGPU_ROPE_GROUP");
    group_linears_ = !env_off("ETGPU_QLINEAR_GROUP");
    stats_.workspace_bytes = kCublasWorkspaceBytes + kAttentionScratchBytes + kAttentionCounters * sizeof(unsigned) +
                            cuda::kQuantScratchBytes + sizeof(int);
    return Status::ok();
  }

  const char* name() const override { return "cuda"; }
  bool uses_host_memory() const override { return false; }

  Result<void*> allocate(size_t bytes) override {
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();  // an out-of-memory error is not sticky: clear it
      return err("cuda: cannot allocate ", bytes, " bytes of device memory: ", cudaGetErrorString(e));
    }
    allocations_.record(p, bytes, &stats_);
    return p;
  }

  void release(void* p) override {
    // Queued work may still use the buffer.
    if (stream_) cudaStreamSynchronize(stream_);
    if (allocations_.forget(p, &stats_)) cudaFree(p);
  }

  Status upload(void* dst, const void* src, size_t bytes) override {
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    if (bytes == 0) return Status::ok();
    // From pageable memory the copy is staged by the driver before the call returns, so the
    // caller may reuse `src` at once.
    ETGPU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    return Status::ok();
  }

  Status download(void* dst, const void* src, size_t bytes) override {
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    if (bytes == 0) return Status::ok();
    ETGPU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    return Status::ok();
  }

  Status zero(void* dst, size_t bytes) override {
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    if (bytes) ETGPU_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
    return Status::ok();
  }

  Status synchronize() override {
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    ETGPU_CUDA_CHECK(cudaMemcpyAsync(host_flag_, ctx_.error_flag, sizeof(int), cudaMemcpyDeviceToHost, stream_));
    ETGPU_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (*host_flag_ != cuda::kNoError) {
      const int code = *host_flag_;
      ETGPU_CUDA_CHECK(cudaMemsetAsync(ctx_.error_flag, 0, sizeof(int), stream_));
      ETGPU_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (code == cuda::kIndexOutOfRange) return err("cuda: an index was out of range (the element was zeroed)");
      return err("cuda: kernel error code ", code);
    }
    return Status::ok();
  }

  Status run(const Node& node) override {
    using namespace cuda;
    const Context& c = ctx_;
    return std::visit(
        Overloaded{[&](const UnaryParams& p) { return unary(c, node, p); },
                   [&](const BinaryParams& p) { return binary(c, node, p); },
                   [&](const WhereParams& p) { return where(c, node, p); },
                   [&](const CastParams& p) { return cast(c, node, p); },
                   [&](const FillParams& p) { return fill(c, node, p); },
                   [&](const ArangeParams& p) { return arange(c, node, p); },
                   [&](const MatMulParams& p) { return matmul(c, node, p); },
                   [&](const ReduceParams& p) { return reduce(c, node, p); },
                   [&](const SoftmaxParams& p) { return softmax(c, node, p); },
                   [&](const LayerNormParams& p) { return layer_norm(c, node, p); },
                   [&](const RmsNormParams& p) { return rms_norm(c, node, p); },
                   [&](const PermuteParams& p) { return permute(c, node, p); },
                   [&](const ExpandParams& p) { return expand(c, node, p); },
                   [&](const SliceParams& p) { return slice(c, node, p); },
                   [&](const SelectParams& p) { return select(c, node, p); },
                   [&](const CatParams& p) { return cat(c, node, p); },
                   [&](const IndexSelectParams& p) { return index_select(c, node, p); },
                   [&](const GatherParams& p) { return gather(c, node, p); },
                   [&](const SdpaParams& p) { return sdpa(c, node, p); },
                   [&](const CopyIntoParams& p) { return copy_into(c, node, p); },
                   [&](const IndexCopyParams& p) { return index_copy(c, node, p); },
                   [&](const QuantLinearParams& p) { return quant_linear(c, node, p); },
                   [&](const QuantEmbeddingParams& p) { return quant_embedding(c, node, p); },
                   [&](const RopeParams& p) { return rope(c, node, p); },
                   [&](const GluParams& p) { return glu(c, node, p); },
                   [&](const AddRmsNormParams& p) { return add_rms_norm(c, node, p); },
                   [&](const SplitLinearParams& p) { return split_linear(c, node, p); }},
        node.params);
  }

  // A layer's q and k rotations and v's cache write run as one launch, and so do quantized
  // linears that read one x (rope_group / quant_linear_group decide from this run's nodes). Each
  // saves launches and links of the chain of dependent kernels: decode is launch-bound.
  Status run_next(const Node* nodes, size_t count, size_t* ran) override {
    *ran = 1;
    if (count < 2) return run(nodes[0]);
    using Group = Status (*)(const cuda::Context&, const Node*, size_t, size_t*);
    const std::pair<bool, Group> groups[] = {{group_ropes_, cuda::rope_group},
                                             {group_linears_, cuda::quant_linear_group}};
    for (const auto& [enabled, group] : groups) {
      if (!enabled) continue;
      size_t grouped = 0;
      const Status status = group(ctx_, nodes, count, &grouped);
      if (grouped) {
        *ran = grouped;  // on failure too: the executor's message names every instruction of the group
        if (status.is_ok()) stats_.instructions_folded += grouped - 1;
        return status;
      }
      ETGPU_RETURN_IF_ERROR(status);
    }
    return run(nodes[0]);
  }

  Status begin_step(uint64_t shape_key, bool* replayed) override {
    *replayed = false;
    ETGPU_RETURN_IF_ERROR(end_open_capture());
    // Recorded before a capture begins, so it is a real event on the stream, not a graph node.
    step_timed_ = false;
    ETGPU_CUDA_CHECK(cudaEventRecord(step_start_, stream_));
    if (!graphs_enabled_ || failed_keys_.count(shape_key)) return Status::ok();
    auto found = graphs_.find(shape_key);
    if (found != graphs_.end()) {
      ETGPU_CUDA_CHECK(cudaGraphLaunch(found->second, stream_));
      ++stats_.graph_launches;
      *replayed = true;
      return Status::ok();
    }
    if (seen_keys_.insert(shape_key).second) return Status::ok();  // first time: run eagerly
    // Second time: record this step's launches. Relaxed mode: other threads' CUDA calls (the
    // host program's own) are not disturbed by our capture.
    ETGPU_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    capturing_ = true;
    capture_key_ = shape_key;
    return Status::ok();
  }

  Status end_step() override {
    if (!capturing_) return record_step_end();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    Status s = cuda_status(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    if (s.is_ok()) s = cuda_status(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    if (graph) cudaGraphDestroy(graph);
    if (!s.is_ok()) {
      // The step's work was recorded, not run, and cannot be redone here: report it, and run
      // this key eagerly from now on.
      cudaGetLastError();
      failed_keys_.insert(capture_key_);
      return err("cuda graph capture failed (graphs now off for these shapes): ", s.message());
    }
    graphs_[capture_key_] = exec;
    ++stats_.graphs_captured;
    // Capturing did not execute anything: launch the new graph to perform this step.
    ETGPU_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    ++stats_.graph_launches;
    return record_step_end();
  }

  // Asynchronous faults (an illegal address, a device-side assert, one raised by another CUDA
  // user of this process such as torch) are sticky: the stream keeps failing after the error is
  // read. A second failing wait tells them from one-off errors (a refused allocation, a bad launch
  // configuration), which leave the engine usable.
  std::string lasting_fault() override {
    if (capturing_) abandon_capture();  // waiting on a capturing stream would itself fail
    if (cudaStreamSynchronize(stream_) == cudaSuccess) return {};
    cudaGetLastError();
    const cudaError_t again = cudaStreamSynchronize(stream_);
    if (again == cudaSuccess) return {};
    return std::string("the CUDA context has a sticky error (") + cudaGetErrorString(again) +
           "): no CUDA work can run in this process again; restart it";
  }

  EngineStats stats() const override {
    EngineStats s = stats_;
    float ms = 0.0f;
    if (step_timed_) {
      // Complete once the step's outputs were read (that synchronizes); before then the events
      // are not ready, which is not a sticky error: clear it and report no time.
      if (cudaEventElapsedTime(&ms, step_start_, step_end_) == cudaSuccess) {
        s.last_step_gpu_ms = ms;
      } else {
        cudaGetLastError();
      }
    }
    return s;
  }

 private:
  // A step that failed between begin_step and end_step leaves the stream capturing; the next
  // engine call ends that capture (its recording is discarded) before doing anything else.
  Status end_open_capture() {
    if (!capturing_) return Status::ok();
    abandon_capture();
    return Status::ok();
  }
  Status record_step_end() {
    ETGPU_CUDA_CHECK(cudaEventRecord(step_end_, stream_));
    step_timed_ = true;
    return Status::ok();
  }
  void abandon_capture() {
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    failed_keys_.insert(capture_key_);
  }

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cuda::Context ctx_;
  cuda::CublasLt* blas_ = nullptr;
  int* host_flag_ = nullptr;
  AllocationTracker allocations_;
  EngineStats stats_;
  bool graphs_enabled_ = true;
  bool group_ropes_ = true;    // ETGPU_ROPE_GROUP
  bool group_linears_ = true;  // ETGPU_QLINEAR_GROUP
  bool capturing_ = false;
  uint64_t capture_key_ = 0;
  cudaEvent_t step_start_ = nullptr, step_end_ = nullptr;  // around the last step, for stats
  bool step_timed_ = false;
  std::unordered_set<uint64_t> seen_keys_, failed_keys_;
  std::unordered_map<uint64_t, cudaGraphExec_t> graphs_;
};

}  // namespace

bool cuda::overlap_enabled() {
  static const bool enabled = !env_off("ETGPU_PDL");  // read once: a graph keeps what it captured
  return enabled;
}

std::unique_ptr<Engine> make_cuda_engine(std::string* why) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *why = std::string("no CUDA device (") + cudaGetErrorString(e) + ")";
    return nullptr;
  }
  if (count == 0) {
    *why = "no CUDA device";
    return nullptr;
  }
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    *why = "cannot query the CUDA device";
    return nullptr;
  }
  if (major < 8) {
    *why = "GPU compute capability " + std::to_string(major) + "." + std::to_string(minor) +
           " is below the 8.0 the CUDA engine needs";
    return nullptr;
  }
  auto engine = std::make_unique<CudaEngine>();
  Status s = engine->init(device);
  if (!s.is_ok()) {
    *why = "CUDA engine initialisation failed: " + s.message();
    return nullptr;
  }
  return engine;
}

}  // namespace etgpu
