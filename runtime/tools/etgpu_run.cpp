// etgpu_run: runs a .etgpu file (etgpu's executor directly) or a .pte file (ExecuTorch's Module
// with the EtGpuBackend and ExecuTorch's CPU kernels, when built with the ExecuTorch backend),
// with inputs read from raw files or filled with a seeded pattern; prints each output's shape
// and a summary, and the best time.
//   etgpu_run MODEL.etgpu|MODEL.pte [--device auto|cuda|cpu] [--iters N] [--input i=file.bin:d0,d1,...]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "etgpu/model.h"
#include "exec/executor.h"
#include "run_inputs.h"
#ifdef ETGPU_RUN_WITH_EXECUTORCH
#include "pte_runner.h"
#endif

namespace {

using etgpu::tools::InputSpec;

int usage() {
  std::fprintf(stderr, "usage: etgpu_run MODEL.etgpu|MODEL.pte [--device auto|cuda|cpu] [--iters N]\n"
                       "                 [--input INDEX=FILE:D0,D1,...]  (raw little-endian bytes)\n");
  return 2;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int fail(const etgpu::Status& status) {
  std::fprintf(stderr, "etgpu_run: %s\n", status.message().c_str());
  return 1;
}

// One run: execute, then read every output (and print it when `print`).
etgpu::Status run_once(etgpu::Executor& exec, const std::vector<etgpu::HostTensor>& inputs, bool print) {
  ETGPU_RETURN_IF_ERROR(exec.execute(inputs));
  for (size_t o = 0; o < exec.num_outputs(); ++o) {
    const std::vector<int64_t> shape = exec.output_shape(o);
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<uint8_t> out(static_cast<size_t>(count) * etgpu::dtype_size(exec.output_dtype(o)));
    ETGPU_RETURN_IF_ERROR(exec.read_output(o, out.data(), out.size()));
    if (print) etgpu::tools::print_summary(o, exec.output_dtype(o), shape, out.data());
  }
  return etgpu::Status::ok();
}

int run_etgpu(const std::string& path, const std::string& device, int iters, std::map<int, InputSpec>& specs) {
  etgpu::ModelOptions options;
  options.device = device;
  auto opened = etgpu::Model::open_file(path, options);
  if (!opened.is_ok()) return fail(opened.status());
  etgpu::Executor& exec = opened.value()->executor();
  std::vector<std::vector<uint8_t>> buffers(exec.num_inputs());
  std::vector<std::vector<int64_t>> shapes(exec.num_inputs());
  std::vector<etgpu::HostTensor> inputs(exec.num_inputs());
  for (size_t i = 0; i < exec.num_inputs(); ++i) {
    const etgpu::DType dtype = exec.input_dtype(i);
    if (specs.count(static_cast<int>(i))) {
      shapes[i] = specs[static_cast<int>(i)].shape;
      buffers[i] = etgpu::tools::read_bytes(specs[static_cast<int>(i)].file);
    } else {
      shapes[i] = exec.max_input_shape(i);
      buffers[i] = etgpu::tools::seeded_input(dtype, shapes[i], static_cast<int>(i) + 1);
    }
    inputs[i] = {buffers[i].data(), dtype, static_cast<int>(shapes[i].size()), shapes[i].data()};
  }
  double best_ms = 1e30;
  for (int it = 0; it < iters; ++it) {
    const auto start = std::chrono::steady_clock::now();
    etgpu::Status status = run_once(exec, inputs, it + 1 == iters);
    if (!status.is_ok()) return fail(status);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    best_ms = std::min(best_ms, ms);
  }
  std::printf("best of %d: %.3f ms\nstats: %s\n", iters, best_ms, opened.value()->stats_json().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string device = "auto";
  int iters = 1;
  std::map<int, InputSpec> specs;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--device" && i + 1 < argc) device = argv[++i];
    else if (arg == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--input" && i + 1 < argc && etgpu::tools::parse_input(argv[i + 1], &specs)) ++i;
    else return usage();
  }
  const std::string path = argv[1];
  if (!ends_with(path, ".pte")) return run_etgpu(path, device, iters, specs);
#ifdef ETGPU_RUN_WITH_EXECUTORCH
  return etgpu::tools::run_pte(path, device, iters, specs);
#else
  std::fprintf(stderr, "etgpu_run: %s is a .pte file, but this etgpu_run was built without the "
                       "ExecuTorch backend (configure with the executorch wheel available)\n", path.c_str());
  return 2;
#endif
}
