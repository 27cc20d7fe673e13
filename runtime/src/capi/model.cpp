#include "etgpu/model.h"

#include <sstream>

#include "engine/select.h"
#include "exec/executor.h"
#include "program/container.h"

namespace etgpu {
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::open_file(const std::string& path, const ModelOptions& options) {
  auto container = Container::read_file(path);
  ETGPU_RETURN_IF_ERROR(container.status());
  return from_container(container.take(), options);
}

Result<std::unique_ptr<Model>> Model::open_bytes(std::vector<uint8_t> bytes, const ModelOptions& options) {
  auto container = Container::parse(std::make_shared<std::vector<uint8_t>>(std::move(bytes)));
  ETGPU_RETURN_IF_ERROR(container.status());
  return from_container(container.take(), options);
}

Result<std::unique_ptr<Model>> Model::from_container(std::shared_ptr<Container> container,
                                                     const ModelOptions& options) {
  std::unique_ptr<Model> model(new Model());
  LoadLimits limits;
  if (options.max_device_bytes > 0) limits.max_device_bytes = options.max_device_bytes;
  auto program = Program::load(container->payload().data, container->payload().size, limits);
  ETGPU_RETURN_IF_ERROR(program.status());
  auto engine = make_engine(options.device, &model->engine_note_);
  ETGPU_RETURN_IF_ERROR(engine.status());
  auto executor = Executor::create(program.take(), container.get(), engine.take());
  ETGPU_RETURN_IF_ERROR(executor.status());
  model->constants_ = std::move(container);
  model->executor_ = executor.take();
  return model;
}

std::string Model::stats_json() const {
  const ExecutorStats s = executor_->stats();
  const EngineStats e = executor_->engine().stats();
  std::ostringstream out;
  out << "{\"engine\": \"" << executor_->engine().name() << "\", \"engine_note\": \"" << engine_note_
      << "\", \"executions\": " << s.executions << ", \"instructions_run\": " << s.instructions_run
      << ", \"steps_replayed\": " << s.steps_replayed << ", \"arena_bytes\": " << s.arena_bytes
      << ", \"constant_bytes\": " << s.constant_bytes << ", \"mutable_bytes\": " << s.mutable_bytes
      << ", \"device_bytes_allocated\": " << e.bytes_allocated
      << ", \"device_peak_bytes\": " << e.peak_bytes_allocated
      << ", \"engine_workspace_bytes\": " << e.workspace_bytes
      << ", \"graphs_captured\": " << e.graphs_captured << ", \"graph_launches\": " << e.graph_launches
      << ", \"instructions_folded\": " << e.instructions_folded
      << ", \"last_step_gpu_ms\": " << e.last_step_gpu_ms << "}";
  return out.str();
}

}  // namespace etgpu
