// The narrow interface every engine (CPU reference, CUDA) provides: memory, transfers, and one
// entry point that runs an instruction. Everything an engine needs is allocated in `init`-time
// calls (allocate/upload); `run` allocates nothing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "engine/ops.h"
#include "etgpu/status.h"

namespace etgpu {

struct EngineStats {
  size_t bytes_allocated = 0;
  size_t peak_bytes_allocated = 0;
  size_t workspace_bytes = 0;     // fixed engine scratch (cuBLASLt, attention), not in the above
  uint64_t graphs_captured = 0;   // CUDA graphs recorded (one per repeating shape key)
  uint64_t graph_launches = 0;    // steps executed by launching a recorded graph
  // Instructions an engine ran inside another's launch (run_next: CUDA runs a layer's q and k
  // Ropes and v's cache write as one launch, and quantized linears that read one x as one GEMV),
  // counted when the step runs or is captured, not when it replays.
  uint64_t instructions_folded = 0;
  // GPU time of the last execute's instructions (events around begin_step..end_step on the
  // engine's stream, input and output copies excluded); -1 when the engine does not measure it.
  double last_step_gpu_ms = -1.0;
};

// Which engine allocations are live and how many bytes they hold (both engines keep the same
// bookkeeping for their stats and for releasing what a failed init left behind).
class AllocationTracker {
 public:
  void record(void* p, size_t bytes, EngineStats* stats) {
    sizes_[p] = bytes;
    stats->bytes_allocated += bytes;
    stats->peak_bytes_allocated = std::max(stats->peak_bytes_allocated, stats->bytes_allocated);
  }
  // False when `p` is not a live allocation of this engine (then nothing changes).
  bool forget(void* p, EngineStats* stats) {
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return false;
    stats->bytes_allocated -= it->second;
    sizes_.erase(it);
    return true;
  }
  template <class Free>
  void release_all(Free&& free) {
    for (auto& entry : sizes_) free(entry.first);
    sizes_.clear();
  }

 private:
  std::unordered_map<void*, size_t> sizes_;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const char* name() const = 0;
  // True when engine memory is host memory: constants can then be used where they lie.
  virtual bool uses_host_memory() const = 0;

  virtual Result<void*> allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual Status upload(void* dst, const void* src, size_t bytes) = 0;
  virtual Status download(void* dst, const void* src, size_t bytes) = 0;
  virtual Status zero(void* dst, size_t bytes) = 0;
  // Waits for all queued work; reports any asynchronous failure.
  virtual Status synchronize() = 0;

  virtual Status run(const Node& node) = 0;
  // Runs nodes[0], given the `count` - 1 instructions of the step that follow it: an engine may
  // run some of those too, as one piece of work with nodes[0] (the CUDA engine's rope groups and
  // sibling quantized GEMVs; ops.h `independent` says which may run together).
  // *ran says how many instructions ran, at least 1; on failure, how many the failed work took.
  virtual Status run_next(const Node* nodes, size_t count, size_t* ran) {
    *ran = 1;
    return run(nodes[0]);
  }
  // Called once per execute around the instruction stream. An engine that can replay a recorded
  // step for these bound shapes (CUDA graphs) does so in begin_step and sets *replayed; the
  // executor then skips `run` for this step.
  virtual Status begin_step(uint64_t /*shape_key*/, bool* replayed) {
    *replayed = false;
    return Status::ok();
  }
  virtual Status end_step() { return Status::ok(); }

  // Asked after a call failed: a non-empty answer says the engine can never run again (a sticky
  // CUDA error poisons the whole context until the process ends) and why.
  virtual std::string lasting_fault() { return {}; }

  virtual EngineStats stats() const = 0;
};

std::unique_ptr<Engine> make_cpu_engine(int num_threads);
// Null when the CUDA engine was not built or no usable GPU exists; `why` says which.
std::unique_ptr<Engine> make_cuda_engine(std::string* why);

}  // namespace etgpu
