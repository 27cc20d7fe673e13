// etgpu_run: runs a .etgpu file with inputs read from raw files or filled with a seeded pattern,
// prints each output's shape and a summary, and the run statistics.
//   etgpu_run model.etgpu [--device auto|cuda|cpu] [--iters N] [--input i=file.bin:d0,d1,...]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu/cpu_common.h"
#include "etgpu/model.h"
#include "exec/executor.h"

namespace {

struct InputSpec {
  std::string file;
  std::vector<int64_t> shape;
};

int usage() {
  std::fprintf(stderr, "usage: etgpu_run MODEL.etgpu [--device auto|cuda|cpu] [--iters N]\n"
                       "                 [--input INDEX=FILE:D0,D1,...]  (raw little-endian bytes)\n");
  return 2;
}

bool parse_input(const std::string& arg, std::map<int, InputSpec>* specs) {
  const size_t eq = arg.find('='), colon = arg.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) return false;
  InputSpec spec{arg.substr(eq + 1, colon - eq - 1), {}};
  std::string dims = arg.substr(colon + 1);
  for (size_t pos = 0; pos <= dims.size();) {
    size_t next = dims.find(',', pos);
    if (next == std::string::npos) next = dims.size();
    if (next > pos) spec.shape.push_back(std::stoll(dims.substr(pos, next - pos)));
    pos = next + 1;
  }
  (*specs)[std::stoi(arg.substr(0, eq))] = spec;
  return true;
}

std::vector<uint8_t> seeded_input(etgpu::DType dtype, const std::vector<int64_t>& shape, int seed) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * etgpu::dtype_size(dtype));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (int64_t i = 0; i < count; ++i) {
    const double v = etgpu::is_floating(dtype) ? uniform(rng) : static_cast<double>(rng() % 4);
    etgpu::cpu::store(bytes.data(), dtype, i, v);
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  etgpu::ModelOptions options;
  int iters = 1;
  std::map<int, InputSpec> specs;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--device" && i + 1 < argc) options.device = argv[++i];
    else if (arg == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--input" && i + 1 < argc && parse_input(argv[i + 1], &specs)) ++i;
    else return usage();
  }
  auto opened = etgpu::Model::open_file(argv[1], options);
  if (!opened.is_ok()) {
    std::fprintf(stderr, "etgpu_run: %s\n", opened.status().message().c_str());
    return 1;
  }
  etgpu::Executor& exec = opened.value()->executor();
  std::vector<std::vector<uint8_t>> buffers(exec.num_inputs());
  std::vector<std::vector<int64_t>> shapes(exec.num_inputs());
  std::vector<etgpu::HostTensor> inputs(exec.num_inputs());
  for (size_t i = 0; i < exec.num_inputs(); ++i) {
    const etgpu::DType dtype = exec.input_dtype(i);
    if (specs.count(static_cast<int>(i))) {
      shapes[i] = specs[static_cast<int>(i)].shape;
      std::ifstream file(specs[static_cast<int>(i)].file, std::ios::binary);
      buffers[i].assign(std::istreambuf_iterator<char>(file), {});
    } else {
      shapes[i] = exec.max_input_shape(i);
      buffers[i] = seeded_input(dtype, shapes[i], static_cast<int>(i) + 1);
    }
    inputs[i] = {buffers[i].data(), dtype, static_cast<int>(shapes[i].size()), shapes[i].data()};
  }
  double best_ms = 1e30;
  for (int it = 0; it < iters; ++it) {
    const auto start = std::chrono::steady_clock::now();
    etgpu::Status status = exec.execute(inputs);
    if (!status.is_ok()) {
      std::fprintf(stderr, "etgpu_run: %s\n", status.message().c_str());
      return 1;
    }
    std::vector<std::vector<uint8_t>> outputs(exec.num_outputs());
    for (size_t o = 0; o < exec.num_outputs(); ++o) {
      std::vector<int64_t> shape = exec.output_shape(o);
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      outputs[o].resize(static_cast<size_t>(count) * etgpu::dtype_size(exec.output_dtype(o)));
      status = exec.read_output(o, outputs[o].data(), outputs[o].size());
      if (!status.is_ok()) {
        std::fprintf(stderr, "etgpu_run: %s\n", status.message().c_str());
        return 1;
      }
      if (it + 1 == iters) {
        double sum = 0, abs_sum = 0;
        for (int64_t e = 0; e < count; ++e) {
          const double v = etgpu::cpu::load(outputs[o].data(), exec.output_dtype(o), e);
          sum += v;
          abs_sum += std::fabs(v);
        }
        std::printf("output %zu: %s [", o, etgpu::dtype_name(exec.output_dtype(o)));
        for (size_t d = 0; d < shape.size(); ++d) std::printf("%s%lld", d ? ", " : "", static_cast<long long>(shape[d]));
        std::printf("] sum=%.6g mean_abs=%.6g\n", sum, count ? abs_sum / count : 0.0);
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    best_ms = std::min(best_ms, ms);
  }
  std::printf("best of %d: %.3f ms\nstats: %s\n", iters, best_ms, opened.value()->stats_json().c_str());
  return 0;
}
