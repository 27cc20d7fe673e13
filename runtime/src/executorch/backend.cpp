// EtGpuBackend: the ExecuTorch BackendInterface over etgpu's executor. init verifies the payload,
// resolves constants from the program's named data and plans/uploads everything; execute maps
// EValues to host tensors, runs, and resizes + fills the outputs; destroy frees it all.
// Failures are logged with ET_LOG and returned as an executorch Error; nothing here aborts.
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/platform/log.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/select.h"
#include "exec/executor.h"
#include "executorch/named_data_source.h"
#include "executorch/tensor_bridge.h"
#include "program/program.h"

namespace etgpu {
namespace {

namespace et = executorch::runtime;

constexpr const char* kBackendName = "EtGpuBackend";

// One delegated subgraph, ready to run. Allocated with `new` rather than the runtime allocator:
// it owns non-trivially-destructible members (executor, engine memory), and `destroy` must run
// their destructors; the runtime allocator's arena memory is reclaimed without any.
struct Delegate {
  std::unique_ptr<Executor> executor;
  std::string engine_note;
  std::vector<HostTensor> inputs;              // reused every execute: no allocation there
  std::vector<std::vector<int64_t>> shapes;
};

et::Error fail(const char* stage, const Status& status, et::Error code = et::Error::InvalidArgument) {
  ET_LOG(Error, "EtGpuBackend %s: %s", stage, status.message().c_str());
  return code;
}

// Compile spec `device` (auto | cuda | cpu), overridden by the environment variable ETGPU_DEVICE
// so a deployed .pte can be moved between engines without re-lowering.
Result<std::string> device_from(et::ArrayRef<et::CompileSpec> specs) {
  std::string device = "auto";
  for (const et::CompileSpec& spec : specs) {
    if (std::strcmp(spec.key, "device") != 0) continue;
    ETGPU_CHECK(spec.value.buffer != nullptr || spec.value.nbytes == 0, "compile spec 'device' has no value");
    device.assign(static_cast<const char*>(spec.value.buffer), spec.value.nbytes);
  }
  if (const char* env = std::getenv("ETGPU_DEVICE"); env != nullptr && *env != '\0') device = env;
  ETGPU_CHECK(device == "auto" || device == "cuda" || device == "cpu", "device '", device,
              "' is not one of auto, cuda, cpu");
  return device;
}

Result<std::unique_ptr<Delegate>> create_delegate(et::BackendInitContext& context, et::FreeableBuffer* processed,
                                                  et::ArrayRef<et::CompileSpec> specs) {
  ETGPU_CHECK(processed != nullptr, "no payload");
  auto payload = processed->data_safe();
  ETGPU_CHECK(payload.ok(), "the payload is not addressable host memory");
  auto program = Program::load(payload.get(), processed->size());
  ETGPU_RETURN_IF_ERROR(program.status());
  processed->Free();  // Program::load keeps its own aligned copy
  auto device = device_from(specs);
  ETGPU_RETURN_IF_ERROR(device.status());
  auto delegate = std::make_unique<Delegate>();
  auto engine = make_engine(device.value(), &delegate->engine_note);
  ETGPU_RETURN_IF_ERROR(engine.status());
  NamedDataSource constants(context.get_named_data_map());
  auto executor = Executor::create(program.take(), &constants, engine.take());
  ETGPU_RETURN_IF_ERROR(executor.status());
  delegate->executor = executor.take();
  delegate->inputs.resize(delegate->executor->num_inputs());
  delegate->shapes.resize(delegate->executor->num_inputs());
  return delegate;
}

Status run(Delegate& d, et::Span<et::EValue*> args) {
  Executor& exec = *d.executor;
  const size_t n_in = exec.num_inputs(), n_out = exec.num_outputs();
  ETGPU_CHECK(args.size() == n_in + n_out, "the delegate call has ", args.size(), " arguments; the payload has ",
              n_in, " inputs and ", n_out, " outputs");
  for (size_t i = 0; i < n_in; ++i) {
    auto host = host_tensor_from(*args[i], i, &d.shapes[i]);
    ETGPU_RETURN_IF_ERROR(host.status());
    d.inputs[i] = host.value();
  }
  ETGPU_RETURN_IF_ERROR(exec.execute(d.inputs));
  for (size_t o = 0; o < n_out; ++o) ETGPU_RETURN_IF_ERROR(copy_output(exec, o, *args[n_in + o]));
  return Status::ok();
}

class EtGpuBackend final : public et::BackendInterface {
 public:
  bool is_available() const override { return true; }  // the CPU engine always is

  et::Result<et::DelegateHandle*> init(et::BackendInitContext& context, et::FreeableBuffer* processed,
                                       et::ArrayRef<et::CompileSpec> compile_specs) const override {
    auto delegate = create_delegate(context, processed, compile_specs);
    if (!delegate.is_ok()) return fail("init", delegate.status());
    ET_LOG(Info, "EtGpuBackend: method %s on %s", context.get_method_name() ? context.get_method_name() : "?",
           delegate.value()->engine_note.c_str());
    return static_cast<et::DelegateHandle*>(delegate.take().release());
  }

  et::Error execute(et::BackendExecutionContext&, et::DelegateHandle* handle,
                    et::Span<et::EValue*> args) const override {
    if (handle == nullptr) return fail("execute", err("null delegate handle"), et::Error::InvalidState);
    Status status = run(*static_cast<Delegate*>(handle), args);
    return status.is_ok() ? et::Error::Ok : fail("execute", status);
  }

  void destroy(et::DelegateHandle* handle) const override { delete static_cast<Delegate*>(handle); }
};

EtGpuBackend backend_instance;
// Static registration: loading this library (linking it, or dlopen after libexecutorch.so is in
// the process) makes "EtGpuBackend" resolvable by every ExecuTorch program in the process.
const et::Error registered = et::register_backend(et::Backend{kBackendName, &backend_instance});

}  // namespace
}  // namespace etgpu

// For tools that link this library: 1 when "EtGpuBackend" is registered. Referencing it keeps the
// library on the link line (its registration alone references nothing).
extern "C" __attribute__((visibility("default"))) int etgpu_executorch_backend_registered() {
  return etgpu::registered == executorch::runtime::Error::Ok &&
         executorch::runtime::get_backend_class(etgpu::kBackendName) != nullptr;
}
