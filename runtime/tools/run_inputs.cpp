#include "run_inputs.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "engine/cpu/cpu_common.h"

namespace etgpu::tools {

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

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

std::vector<uint8_t> seeded_input(DType dtype, const std::vector<int64_t>& shape, int seed) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * dtype_size(dtype));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (int64_t i = 0; i < count; ++i) {
    const double v = is_floating(dtype) ? uniform(rng) : static_cast<double>(rng() % 4);
    cpu::store(bytes.data(), dtype, i, v);
  }
  return bytes;
}

void print_summary(size_t index, DType dtype, const std::vector<int64_t>& shape, const void* data) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  double sum = 0, abs_sum = 0;
  for (int64_t e = 0; e < count; ++e) {
    const double v = cpu::load(data, dtype, e);
    sum += v;
    abs_sum += std::fabs(v);
  }
  std::printf("output %zu: %s [", index, dtype_name(dtype));
  for (size_t d = 0; d < shape.size(); ++d) std::printf("%s%lld", d ? ", " : "", static_cast<long long>(shape[d]));
  std::printf("] sum=%.6g mean_abs=%.6g\n", sum, count ? abs_sum / count : 0.0);
}

}  // namespace etgpu::tools
