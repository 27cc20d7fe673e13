// Runs a verified Program on an Engine: binds symbolic dims from input shapes, keeps every
// buffer the program needs (arena, constants, mutable state) allocated from init to destruction,
// and dispatches the decoded instruction stream. Nothing is allocated in execute().
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "exec/decode.h"
#include "program/constants.h"
#include "program/program.h"

namespace etgpu {

// A caller's host tensor (contiguous).
struct HostTensor {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int rank = 0;
  const int64_t* shape = nullptr;
};

struct ExecutorStats {
  uint64_t executions = 0;
  uint64_t instructions_run = 0;
  uint64_t steps_replayed = 0;
  size_t arena_bytes = 0;
  size_t constant_bytes = 0;
  size_t mutable_bytes = 0;
};

class Executor {
 public:
  static Result<std::unique_ptr<Executor>> create(std::shared_ptr<const Program> program,
                                                  ConstantSource* constants,
                                                  std::unique_ptr<Engine> engine);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  size_t num_inputs() const { return graph().inputs()->size(); }
  size_t num_outputs() const { return graph().outputs()->size(); }
  DType input_dtype(size_t i) const;
  DType output_dtype(size_t i) const;
  // Shapes at the symbols' upper bounds (what callers plan buffers for).
  std::vector<int64_t> max_input_shape(size_t i) const;
  std::vector<int64_t> max_output_shape(size_t i) const;

  // Runs the program. Inputs are checked (dtype, rank, every dim against its bound) first; a
  // failed check changes no state. Kernel-side failures (an index or cache position flagged out
  // of range on the device) surface at the next synchronizing call, read_output. After an error
  // the executor stays usable, unless the engine reports a lasting fault: then this call and
  // every later one fail with a message saying the model cannot run again.
  //
  // Thread safety: execute, output_shape, read_output and stats may be called from several
  // threads at once; each call holds the executor's mutex, so calls on one executor run one at
  // a time (they share one arena) and never corrupt memory. A caller that needs the outputs of
  // *its own* execute must hold its own lock across execute + read_output (etgpu.Model.run
  // does); separate executors of one program share nothing mutable and run in parallel.
  Status execute(const std::vector<HostTensor>& inputs);
  // Valid after a successful execute.
  std::vector<int64_t> output_shape(size_t i) const;
  Status read_output(size_t i, void* dst, size_t dst_bytes);

  Engine& engine() { return *engine_; }
  ExecutorStats stats() const;

 private:
  Executor(std::shared_ptr<const Program> program, std::unique_ptr<Engine> engine);
  const ir::Graph& graph() const { return program_->graph(); }
  Status allocate_storage(ConstantSource* constants);
  Status bind_constant(int id, ConstantSource* constants);
  Status bind_encoded_constant(int id, ConstantBytes source);
  Status decode_into_engine(int id, const ConstantBytes& source);
  Result<void*> allocate_owned(uint64_t bytes);
  std::string constant_label(int id) const;
  std::string input_label(size_t i) const;
  std::string describe_instructions(size_t first, size_t count) const;
  Status bind_symbols(const std::vector<HostTensor>& inputs, std::vector<int64_t>* syms) const;
  Status resolve_shapes(const std::vector<int64_t>& syms);
  Status execute_locked(const std::vector<HostTensor>& inputs);
  Status read_output_locked(size_t i, void* dst, size_t dst_bytes);
  Status note_fault(Status status);
  TensorRef tensor_ref(int id) const;
  std::vector<int64_t> max_shape(int id) const;

  std::shared_ptr<const Program> program_;
  std::unique_ptr<Engine> engine_;
  std::vector<DecodedInstruction> instructions_;
  std::vector<Node> nodes_;                  // instructions_ resolved for bound_syms_
  std::vector<void*> tensor_data_;           // engine pointer of every tensor
  std::vector<std::vector<int64_t>> shapes_; // concrete shapes for bound_syms_
  std::vector<int64_t> bound_syms_;
  bool shapes_valid_ = false;
  void* arena_ = nullptr;
  std::vector<void*> owned_;                 // engine allocations freed on destruction
  std::vector<ConstantBytes> borrowed_;      // host constants used in place (released at end)
  ExecutorStats stats_;
  std::string lasting_fault_;  // non-empty once the engine can never run again
  mutable std::mutex mutex_;  // serializes execute / read_output / output_shape / stats
};

}  // namespace etgpu
