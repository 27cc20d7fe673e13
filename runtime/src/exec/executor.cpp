#include "exec/executor.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "program/huffman_bytes.h"
#include "program/packed_float.h"
#include "program/verify.h"

namespace etgpu {
namespace {

DType to_dtype(ir::DType d) { return static_cast<DType>(static_cast<int8_t>(d)); }

// Mixes bound symbol values into one key (graph capture and shape caches are keyed by it).
uint64_t shape_key(const std::vector<int64_t>& syms) {
  uint64_t key = 1469598103934665603ull;
  for (int64_t s : syms) key = (key ^ static_cast<uint64_t>(s)) * 1099511628211ull;
  return key;
}

}  // namespace

Executor::Executor(std::shared_ptr<const Program> program, std::unique_ptr<Engine> engine)
    : program_(std::move(program)), engine_(std::move(engine)) {}

Executor::~Executor() {
  if (engine_) {
    engine_->synchronize();
    for (void* p : owned_) engine_->release(p);
  }
  for (ConstantBytes& c : borrowed_) {
    if (c.release) c.release();
  }
}

Result<std::unique_ptr<Executor>> Executor::create(std::shared_ptr<const Program> program,
                                                   ConstantSource* constants,
                                                   std::unique_ptr<Engine> engine) {
  ETGPU_CHECK(program && engine, "executor needs a program and an engine");
  std::unique_ptr<Executor> exec(new Executor(std::move(program), std::move(engine)));
  const ir::Graph& g = exec->graph();
  for (size_t i = 0; i < g.instructions()->size(); ++i) {
    auto decoded = decode_instruction(g, static_cast<int>(i));
    ETGPU_RETURN_IF_ERROR(decoded.status());
    exec->instructions_.push_back(decoded.take());
  }
  std::vector<InstructionOperands> operands;
  operands.reserve(exec->instructions_.size());
  for (const DecodedInstruction& d : exec->instructions_) {
    std::vector<int> writes{d.out};
    writes.insert(writes.end(), d.extra_outputs.begin(), d.extra_outputs.end());
    operands.push_back({d.inputs, std::move(writes)});
  }
  ETGPU_RETURN_IF_ERROR(verify_plan(g, operands));
  ETGPU_RETURN_IF_ERROR(exec->allocate_storage(constants));
  ETGPU_RETURN_IF_ERROR(exec->engine_->synchronize());
  return exec;
}

Status Executor::allocate_storage(ConstantSource* constants) {
  const ir::Graph& g = graph();
  const size_t n = g.tensors()->size();
  tensor_data_.assign(n, nullptr);
  shapes_.assign(n, {});
  if (g.arena_bytes() > 0) {
    auto arena = engine_->allocate(g.arena_bytes());
    ETGPU_RETURN_IF_ERROR(arena.status());
    arena_ = arena.value();
    owned_.push_back(arena_);
    stats_.arena_bytes = g.arena_bytes();
  }
  for (size_t i = 0; i < n; ++i) {
    const ir::Tensor& t = *g.tensors()->Get(i);
    switch (t.storage()) {
      case ir::Storage::Arena:
        tensor_data_[i] = static_cast<uint8_t*>(arena_) + t.offset();
        break;
      case ir::Storage::Alias:
        tensor_data_[i] = tensor_data_[t.alias_of()];
        break;
      case ir::Storage::Constant:
      case ir::Storage::Mutable:
        ETGPU_RETURN_IF_ERROR(bind_constant(static_cast<int>(i), constants));
        break;
    }
  }
  return Status::ok();
}

// "constant 'key'" (or "tensor 7" for inline data): how load errors name a constant.
std::string Executor::constant_label(int id) const {
  const ir::Tensor& t = *graph().tensors()->Get(id);
  return t.key() ? "constant '" + t.key()->str() + "'" : "tensor " + std::to_string(id);
}

// Engine memory that lives as long as the executor.
Result<void*> Executor::allocate_owned(uint64_t bytes) {
  auto memory = engine_->allocate(bytes == 0 ? 1 : bytes);
  ETGPU_RETURN_IF_ERROR(memory.status());
  owned_.push_back(memory.value());
  return memory.value();
}

// Constants and mutable state: resolve their bytes and place them in engine memory. A CPU engine
// reads constants where the source holds them; mutable state always gets its own copy.
Status Executor::bind_constant(int id, ConstantSource* constants) {
  const ir::Tensor& t = *graph().tensors()->Get(id);
  const bool is_mutable = t.storage() == ir::Storage::Mutable;
  const uint64_t bytes = t.nbytes();
  ConstantBytes source;
  if (t.data()) {
    source = {t.data()->data(), t.data()->size(), {}};
  } else if (t.key()) {
    ETGPU_CHECK(constants != nullptr, "tensor ", id, " needs constant '", t.key()->str(),
                "' but no constant source was given");
    auto found = constants->get(t.key()->str());
    ETGPU_RETURN_IF_ERROR(found.status());
    source = found.take();
  }
  if (t.encoding() != ir::ConstantEncoding::Raw) return bind_encoded_constant(id, std::move(source));
  // Checked for every source (inline data too): the upload below copies `bytes` from it.
  if (source.data && source.size != bytes) {
    if (source.release) source.release();
    return err(constant_label(id), " has ", source.size, " bytes; its declared shape needs ", bytes);
  }
  // Kernels load elements through typed pointers, so a constant is used in place only when it is
  // aligned (16 bytes covers every dtype); a file may place constants at any offset, so a
  // misaligned one is copied into (aligned) engine memory instead.
  const bool aligned = reinterpret_cast<uintptr_t>(source.data) % 16 == 0;
  if (!is_mutable && source.data && aligned && engine_->uses_host_memory()) {
    tensor_data_[id] = const_cast<void*>(source.data);
    borrowed_.push_back(std::move(source));
    stats_.constant_bytes += bytes;
    return Status::ok();
  }
  auto memory = allocate_owned(bytes);
  if (!memory.is_ok()) {
    if (source.release) source.release();
    return memory.status();
  }
  tensor_data_[id] = memory.value();
  Status status = source.data ? engine_->upload(memory.value(), source.data, bytes)
                              : engine_->zero(memory.value(), bytes);
  if (source.release) {
    // The upload may be asynchronous: the source must outlive it.
    Status synced = engine_->synchronize();
    source.release();
    if (status.is_ok()) status = synced;
  }
  (is_mutable ? stats_.mutable_bytes : stats_.constant_bytes) += bytes;
  return status;
}

// A PackedFloat or HuffmanBytes constant (verify_graph allows each encoding only on the dtypes it
// decodes to). The stored bytes are released once decoded: the engine then holds the only copy.
Status Executor::bind_encoded_constant(int id, ConstantBytes source) {
  Status status = decode_into_engine(id, source);
  if (source.release) source.release();
  ETGPU_CHECK(status.is_ok(), constant_label(id), ": ", status.message());
  stats_.constant_bytes += graph().tensors()->Get(id)->nbytes();
  return Status::ok();
}

// The constant's stored bytes, decoded by its encoding's decoder into `out` (`out_bytes`, its nbytes).
static Status decode_constant(const ir::Tensor& t, const ConstantBytes& source, void* out, uint64_t out_bytes) {
  const auto* stored = static_cast<const uint8_t*>(source.data);
  if (t.encoding() == ir::ConstantEncoding::HuffmanBytes) {
    return decode_huffman_bytes(stored, source.size, out, out_bytes);
  }
  return decode_packed_float(stored, source.size, t.dtype(), out, out_bytes);
}

// Decodes straight into a host-memory engine's allocation; for a device engine, into a host
// buffer that is then uploaded.
Status Executor::decode_into_engine(int id, const ConstantBytes& source) {
  const ir::Tensor& t = *graph().tensors()->Get(id);
  const uint64_t bytes = t.nbytes();
  auto memory = allocate_owned(bytes);
  ETGPU_RETURN_IF_ERROR(memory.status());
  tensor_data_[id] = memory.value();
  if (engine_->uses_host_memory()) return decode_constant(t, source, memory.value(), bytes);
  std::vector<uint8_t> decoded(bytes);
  ETGPU_RETURN_IF_ERROR(decode_constant(t, source, decoded.data(), bytes));
  ETGPU_RETURN_IF_ERROR(engine_->upload(memory.value(), decoded.data(), bytes));
  return engine_->synchronize();  // the upload may be asynchronous: `decoded` must outlive it
}

DType Executor::input_dtype(size_t i) const {
  return to_dtype(graph().tensors()->Get(graph().inputs()->Get(i))->dtype());
}

DType Executor::output_dtype(size_t i) const {
  return to_dtype(graph().tensors()->Get(graph().outputs()->Get(i))->dtype());
}

std::vector<int64_t> Executor::max_shape(int id) const {
  std::vector<int64_t> maxs;
  if (graph().sym_dims()) {
    for (const ir::SymDim* s : *graph().sym_dims()) maxs.push_back(s->max());
  }
  std::vector<int64_t> shape;
  const ir::Tensor& t = *graph().tensors()->Get(id);
  if (t.shape()) {
    for (const ir::Dim* d : *t.shape()) shape.push_back(eval_dim(*d, maxs.data()));
  }
  return shape;
}

std::vector<int64_t> Executor::max_input_shape(size_t i) const { return max_shape(graph().inputs()->Get(i)); }
std::vector<int64_t> Executor::max_output_shape(size_t i) const { return max_shape(graph().outputs()->Get(i)); }

// Binds each symbol from the first input dim that is exactly that symbol, then checks every
// input dim against its expression and every symbol against its bounds.
// "input 1 ('y')": error messages name the input by position and by its exported name.
std::string Executor::input_label(size_t i) const {
  const ir::Tensor& t = *graph().tensors()->Get(graph().inputs()->Get(i));
  return "input " + std::to_string(i) + (t.name() ? " ('" + t.name()->str() + "')" : std::string());
}

// "instruction 4 (rope)", or "instructions 4-6 (rope, rope, index_copy)" for instructions an
// engine ran as one piece of work (Engine::run_next).
std::string Executor::describe_instructions(size_t first, size_t count) const {
  std::string names = op_name(nodes_[first].params);
  for (size_t j = 1; j < count; ++j) names += std::string(", ") + op_name(nodes_[first + j].params);
  const std::string at = count > 1 ? "instructions " + std::to_string(first) + "-" + std::to_string(first + count - 1)
                                   : "instruction " + std::to_string(first);
  return at + " (" + names + ")";
}

Status Executor::bind_symbols(const std::vector<HostTensor>& inputs, std::vector<int64_t>* syms) const {
  const ir::Graph& g = graph();
  ETGPU_CHECK(inputs.size() == num_inputs(), "expected ", num_inputs(), " inputs, got ", inputs.size());
  const size_t num_syms = g.sym_dims() ? g.sym_dims()->size() : 0;
  syms->assign(num_syms, -1);
  std::vector<std::string> bound_by(num_syms);  // which input dim gave each symbol its value
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Tensor& t = *g.tensors()->Get(g.inputs()->Get(i));
    const HostTensor& in = inputs[i];
    const int rank = t.shape() ? static_cast<int>(t.shape()->size()) : 0;
    ETGPU_CHECK(in.dtype == to_dtype(t.dtype()), input_label(i), ": expected dtype ",
                dtype_name(to_dtype(t.dtype())), ", got ", dtype_name(in.dtype));
    ETGPU_CHECK(in.rank == rank, input_label(i), ": expected rank ", rank, ", got ", in.rank);
    for (int d = 0; d < rank; ++d) {
      const ir::Dim& dim = *t.shape()->Get(d);
      if (dim.sym() >= 0 && dim.mul() == 1 && dim.add() == 0 && dim.div() == 1 && (*syms)[dim.sym()] < 0) {
        (*syms)[dim.sym()] = in.shape[d];
        bound_by[dim.sym()] = input_label(i) + " dim " + std::to_string(d);
      }
    }
  }
  for (size_t s = 0; s < num_syms; ++s) {
    const ir::SymDim& sym = *g.sym_dims()->Get(s);
    const char* name = sym.name() ? sym.name()->c_str() : "?";
    ETGPU_CHECK((*syms)[s] >= 0, "symbolic dim '", name, "' is not bound by any input");
    ETGPU_CHECK((*syms)[s] >= sym.min() && (*syms)[s] <= sym.max(), bound_by[s], ": size ", (*syms)[s],
                " (symbolic dim '", name, "') is outside its bounds [", sym.min(), ", ", sym.max(), "]");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Tensor& t = *g.tensors()->Get(g.inputs()->Get(i));
    for (int d = 0; d < inputs[i].rank; ++d) {
      const int64_t expected = eval_dim(*t.shape()->Get(d), syms->data());
      ETGPU_CHECK(inputs[i].shape[d] == expected, input_label(i), ": dim ", d, " is ", inputs[i].shape[d],
                  ", expected ", expected);
    }
  }
  return Status::ok();
}

TensorRef Executor::tensor_ref(int id) const {
  TensorRef ref;
  ref.data = tensor_data_[id];
  ref.dtype = to_dtype(graph().tensors()->Get(id)->dtype());
  ref.rank = static_cast<int>(shapes_[id].size());
  std::copy(shapes_[id].begin(), shapes_[id].end(), ref.shape);
  return ref;
}

// Concrete shapes for the bound symbols, then every node rebuilt and validated. Runs only when
// the binding changes, so repeated decode steps skip it.
Status Executor::resolve_shapes(const std::vector<int64_t>& syms) {
  if (shapes_valid_ && syms == bound_syms_) return Status::ok();
  shapes_valid_ = false;
  const ir::Graph& g = graph();
  for (size_t i = 0; i < shapes_.size(); ++i) {
    const ir::Tensor& t = *g.tensors()->Get(i);
    shapes_[i].clear();
    if (!t.shape()) continue;
    for (const ir::Dim* d : *t.shape()) {
      const int64_t size = eval_dim(*d, syms.data());
      ETGPU_CHECK(size >= 0, "tensor ", i, " has a negative size for these inputs");
      shapes_[i].push_back(size);
    }
  }
  nodes_.clear();
  nodes_.reserve(instructions_.size());
  for (size_t i = 0; i < instructions_.size(); ++i) {
    const DecodedInstruction& d = instructions_[i];
    Node node{d.params, {}, tensor_ref(d.out)};
    for (int id : d.inputs) node.in.push_back(tensor_ref(id));
    for (int id : d.extra_outputs) node.extra_out.push_back(tensor_ref(id));
    if (d.dynamic_scalar) {
      const TensorRef& indexed = std::holds_alternative<CopyIntoParams>(d.params) ? node.out : node.in[0];
      int dim = 0;
      if (auto* p = std::get_if<SliceParams>(&d.params)) dim = p->dim;
      if (auto* p = std::get_if<SelectParams>(&d.params)) dim = p->dim;
      if (auto* p = std::get_if<CopyIntoParams>(&d.params)) dim = p->dim;
      const int nd = dim < 0 ? dim + indexed.rank : dim;
      const int64_t size = (nd >= 0 && nd < indexed.rank) ? indexed.shape[nd] : 0;
      apply_dynamic_scalar(&node.params, eval_dim(*d.dynamic_scalar, syms.data()), size);
    }
    Status valid = validate_node(node);
    ETGPU_CHECK(valid.is_ok(), "instruction ", i, " (", op_name(node.params), "): ", valid.message());
    nodes_.push_back(std::move(node));
  }
  bound_syms_ = syms;
  shapes_valid_ = true;
  return Status::ok();
}

// Every engine-facing call goes through here: a lasting fault is named once in the failing call
// and then refuses every later call up front, instead of a stream of unrelated-looking errors.
Status Executor::note_fault(Status status) {
  if (status.is_ok() || !lasting_fault_.empty()) return status;
  lasting_fault_ = engine_->lasting_fault();
  if (lasting_fault_.empty()) return status;
  return err(status.message(), "; the model is unusable from now on: ", lasting_fault_);
}

Status Executor::execute(const std::vector<HostTensor>& inputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  ETGPU_CHECK(lasting_fault_.empty(), "the model is unusable: ", lasting_fault_);
  return note_fault(execute_locked(inputs));
}

Status Executor::execute_locked(const std::vector<HostTensor>& inputs) {
  std::vector<int64_t> syms;
  ETGPU_RETURN_IF_ERROR(bind_symbols(inputs, &syms));
  ETGPU_RETURN_IF_ERROR(resolve_shapes(syms));
  const ir::Graph& g = graph();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int id = g.inputs()->Get(i);
    const size_t bytes = tensor_ref(id).nbytes();
    ETGPU_CHECK(inputs[i].data != nullptr || bytes == 0, "input ", i, " has no data pointer");
    ETGPU_RETURN_IF_ERROR(engine_->upload(tensor_data_[id], inputs[i].data, bytes));
  }
  bool replayed = false;
  ETGPU_RETURN_IF_ERROR(engine_->begin_step(shape_key(syms), &replayed));
  if (!replayed) {
    for (size_t i = 0, ran = 1; i < nodes_.size(); i += ran) {
      ran = 1;
      Status status = engine_->run_next(&nodes_[i], nodes_.size() - i, &ran);
      ETGPU_CHECK(status.is_ok(), describe_instructions(i, ran), " failed: ", status.message());
    }
    stats_.instructions_run += nodes_.size();
  } else {
    ++stats_.steps_replayed;
  }
  ETGPU_RETURN_IF_ERROR(engine_->end_step());
  ++stats_.executions;
  return Status::ok();
}

ExecutorStats Executor::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

std::vector<int64_t> Executor::output_shape(size_t i) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return shapes_[graph().outputs()->Get(i)];
}

Status Executor::read_output(size_t i, void* dst, size_t dst_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  ETGPU_CHECK(lasting_fault_.empty(), "the model is unusable: ", lasting_fault_);
  return note_fault(read_output_locked(i, dst, dst_bytes));
}

Status Executor::read_output_locked(size_t i, void* dst, size_t dst_bytes) {
  ETGPU_CHECK(shapes_valid_, "read_output before a successful execute");
  ETGPU_CHECK(i < num_outputs(), "output ", i, " does not exist (", num_outputs(), " outputs)");
  const int id = graph().outputs()->Get(i);
  const size_t bytes = tensor_ref(id).nbytes();
  ETGPU_CHECK(dst_bytes >= bytes, "output ", i, " needs ", bytes, " bytes, the buffer has ", dst_bytes);
  ETGPU_RETURN_IF_ERROR(engine_->download(dst, tensor_data_[id], bytes));
  return engine_->synchronize();
}

}  // namespace etgpu
