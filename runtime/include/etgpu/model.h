// C++ API: a loaded model (program + constants + executor on an engine).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "etgpu/status.h"

namespace etgpu {

class Executor;
class ConstantSource;
class Container;
struct HostTensor;

struct ModelOptions {
  std::string device = "auto";  // auto | cuda | cpu
  // Cap on the device memory (arena + constants + mutable state) the program may ask for; a
  // program over it fails to load. 0: ETGPU_MAX_DEVICE_BYTES when set, else 256 GiB.
  uint64_t max_device_bytes = 0;
};

class Model {
 public:
  // Loads a .etgpu file.
  static Result<std::unique_ptr<Model>> open_file(const std::string& path, const ModelOptions& options = {});
  // Loads a .etgpu container held in memory.
  static Result<std::unique_ptr<Model>> open_bytes(std::vector<uint8_t> bytes, const ModelOptions& options = {});
  ~Model();

  Executor& executor() { return *executor_; }
  const std::string& engine_note() const { return engine_note_; }
  std::string stats_json() const;

 private:
  Model() = default;
  static Result<std::unique_ptr<Model>> from_container(std::shared_ptr<Container> container,
                                                       const ModelOptions& options);
  std::shared_ptr<ConstantSource> constants_;
  std::unique_ptr<Executor> executor_;
  std::string engine_note_;
};

}  // namespace etgpu
