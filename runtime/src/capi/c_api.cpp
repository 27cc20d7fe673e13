// The C API over Model: what Python (ctypes) and other languages call.
#include <cstring>
#include <string>

#include "etgpu/etgpu.h"
#include "etgpu/model.h"
#include "exec/executor.h"

struct etgpu_model {
  std::unique_ptr<etgpu::Model> model;
};

namespace {

thread_local std::string g_last_error;

int fail(const std::string& message) {
  g_last_error = message;
  return 1;
}

int fail_status(const etgpu::Status& status) { return fail(status.message()); }

int open_result(etgpu::Result<std::unique_ptr<etgpu::Model>> result, etgpu_model** out) {
  if (!result.is_ok()) return fail_status(result.status());
  *out = new etgpu_model{result.take()};
  return 0;
}

bool valid_output(const etgpu_model* m, int index) {
  return m && index >= 0 && static_cast<size_t>(index) < m->model->executor().num_outputs();
}

}  // namespace

extern "C" {

int etgpu_open_file_limited(const char* path, const char* device, uint64_t max_device_bytes, etgpu_model** out) {
  if (!path || !out) return fail("etgpu_open_file: null argument");
  etgpu::ModelOptions options;
  if (device) options.device = device;
  options.max_device_bytes = max_device_bytes;
  return open_result(etgpu::Model::open_file(path, options), out);
}

int etgpu_open_bytes_limited(const void* bytes, size_t size, const char* device, uint64_t max_device_bytes,
                             etgpu_model** out) {
  if (!bytes || !out) return fail("etgpu_open_bytes: null argument");
  etgpu::ModelOptions options;
  if (device) options.device = device;
  options.max_device_bytes = max_device_bytes;
  const auto* begin = static_cast<const uint8_t*>(bytes);
  return open_result(etgpu::Model::open_bytes(std::vector<uint8_t>(begin, begin + size), options), out);
}

int etgpu_open_file(const char* path, const char* device, etgpu_model** out) {
  return etgpu_open_file_limited(path, device, 0, out);
}

int etgpu_open_bytes(const void* bytes, size_t size, const char* device, etgpu_model** out) {
  return etgpu_open_bytes_limited(bytes, size, device, 0, out);
}

void etgpu_close(etgpu_model* model) { delete model; }

int etgpu_num_inputs(const etgpu_model* m) { return m ? static_cast<int>(m->model->executor().num_inputs()) : -1; }
int etgpu_num_outputs(const etgpu_model* m) { return m ? static_cast<int>(m->model->executor().num_outputs()) : -1; }

int etgpu_execute(etgpu_model* m, int num_inputs, const void* const* data, const int8_t* dtypes,
                  const int32_t* ranks, const int64_t* const* shapes) {
  if (!m || num_inputs < 0 || (num_inputs > 0 && (!data || !dtypes || !ranks || !shapes))) {
    return fail("etgpu_execute: null argument");
  }
  std::vector<etgpu::HostTensor> inputs(num_inputs);
  for (int i = 0; i < num_inputs; ++i) {
    if (dtypes[i] < 0 || dtypes[i] >= etgpu::kNumDTypes) return fail("etgpu_execute: input " + std::to_string(i) + " has an invalid dtype code");
    if (ranks[i] < 0 || ranks[i] > etgpu::kMaxRank) return fail("etgpu_execute: input " + std::to_string(i) + " has an invalid rank");
    if (ranks[i] > 0 && !shapes[i]) return fail("etgpu_execute: input " + std::to_string(i) + " has no shape array");
    inputs[i] = {data[i], static_cast<etgpu::DType>(dtypes[i]), ranks[i], shapes[i]};
  }
  etgpu::Status status = m->model->executor().execute(inputs);
  return status.is_ok() ? 0 : fail_status(status);
}

int etgpu_output_dtype(const etgpu_model* m, int index, int8_t* dtype) {
  if (!valid_output(m, index) || !dtype) return fail("etgpu_output_dtype: bad model or index");
  *dtype = static_cast<int8_t>(m->model->executor().output_dtype(index));
  return 0;
}

int etgpu_output_shape(const etgpu_model* m, int index, int32_t* rank, int64_t* shape) {
  if (!valid_output(m, index) || !rank || !shape) return fail("etgpu_output_shape: bad model or index");
  const std::vector<int64_t> s = m->model->executor().output_shape(index);
  *rank = static_cast<int32_t>(s.size());
  std::copy(s.begin(), s.end(), shape);
  return 0;
}

int etgpu_read_output(etgpu_model* m, int index, void* dst, size_t dst_bytes) {
  if (!valid_output(m, index) || !dst) return fail("etgpu_read_output: bad model or index");
  etgpu::Status status = m->model->executor().read_output(index, dst, dst_bytes);
  return status.is_ok() ? 0 : fail_status(status);
}

size_t etgpu_stats_json(const etgpu_model* m, char* buffer, size_t size) {
  if (!m) return 0;
  const std::string json = m->model->stats_json();
  if (buffer && size > 0) {
    const size_t n = std::min(size - 1, json.size());
    std::memcpy(buffer, json.data(), n);
    buffer[n] = '\0';
  }
  return json.size();
}

const char* etgpu_last_error(void) { return g_last_error.c_str(); }

}  // extern "C"
