// Quantized GEMV / GEMM benchmark on one GPU (no arguments; CUDA events, medians).
//  1. device-to-device copy bandwidth (bytes read + written): the roofline the GEMV is held to;
//  2. GEMV (M = 1) for int4-g32, int8 per-channel, int2-g32, nvfp4 at N x K = 2048 x 8192 and
//     8192 x 2048 (N outputs, K inputs), bf16 x: weight bytes (codes + scales + zeros), GB/s and %
//     of copy bandwidth, and the time of a kernel that only reads the same bytes (read_floor.cu:
//     the floor of any one-launch kernel at this size) and of a device-to-device copy. Weights rotate
//     over enough copies to exceed L2; each timing is a CUDA graph of one launch per copy (the
//     graph's time over the launches), so launch gaps shrink but still count;
//     The bf16 GEMV (no quantization) on the same shapes, for reference;
//     then two weights taller than one wave of blocks (int4-g32 16384 x 2048, int8 32768 x 2048);
//  3. more rows of x (prefill), int4-g32 at M = 16 .. 2048 and the other formats at M = 16, 512,
//     2048: the path quant_linear picks and each path forced (GEMV passes up to 64 rows,
//     dequantize + cuBLASLt), against plain bf16 cuBLASLt.
// Exits 77 without a GPU. The table is printed last.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>

#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/gemv.h"
#include "quant_host.h"
#include "read_floor.h"

using namespace etgpu;

namespace {

#define CHECK(call)                                                                          \
  do {                                                                                       \
    cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess) {                                                                 \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);  \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

void check(const Status& s, const char* what) {
  if (!s.is_ok()) {
    std::printf("%s failed: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

void* device_copy(const std::vector<uint8_t>& bytes) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, std::max<size_t>(bytes.size(), 1)));
  CHECK(cudaMemcpy(p, bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  return p;
}

TensorRef tensor(void* data, DType d, std::initializer_list<int64_t> shape) {
  TensorRef t;
  t.data = data;
  t.dtype = d;
  for (int64_t s : shape) t.shape[t.rank++] = s;
  return t;
}

// Median milliseconds of `fn` (which enqueues work on `stream`) over `reps` event-timed runs.
template <class Fn>
double median_ms(cudaStream_t stream, int reps, Fn&& fn) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 5; ++i) fn();  // warm-up: plans, module load, clocks
  std::vector<float> ms(reps);
  for (auto& t : ms) {
    CHECK(cudaEventRecord(a, stream));
    fn();
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&t, a, b));
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2];
}

// Median milliseconds of one replay of a CUDA graph of what `enqueue` puts on `stream` (run once
// eagerly first: plans, module load).
template <class Fn>
double graph_ms(cudaStream_t stream, int reps, Fn&& enqueue) {
  enqueue();
  CHECK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  enqueue();
  CHECK(cudaStreamEndCapture(stream, &graph));
  CHECK(cudaGraphInstantiate(&exec, graph, 0));
  const double ms = median_ms(stream, reps, [&] { CHECK(cudaGraphLaunch(exec, stream)); });
  CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphDestroy(graph));
  return ms;
}

double copy_bandwidth(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 30;
  void *src, *dst;
  CHECK(cudaMalloc(&src, bytes));
  CHECK(cudaMalloc(&dst, bytes));
  CHECK(cudaMemsetAsync(src, 1, bytes, stream));
  const double ms = median_ms(stream, 20, [&] { CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream)); });
  CHECK(cudaFree(src));
  CHECK(cudaFree(dst));
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

// Median time of one device-to-device copy of `bytes` (a graph of `copies` copies between
// disjoint regions, like the GEMV's rotating weights): what moving that many bytes costs at this
// size, launch and ramp included. The GEMV only reads its bytes; a copy also writes them.
double copy_us(cudaStream_t stream, size_t bytes, int copies) {
  void *src, *dst;
  CHECK(cudaMalloc(&src, bytes * copies));
  CHECK(cudaMalloc(&dst, bytes * copies));
  CHECK(cudaMemsetAsync(src, 1, bytes * copies, stream));
  const double ms = graph_ms(stream, 20, [&] {
    for (int i = 0; i < copies; ++i) {
      CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + i * bytes, static_cast<char*>(src) + i * bytes, bytes,
                            cudaMemcpyDeviceToDevice, stream));
    }
  });
  CHECK(cudaFree(src));
  CHECK(cudaFree(dst));
  return ms * 1e3 / copies;
}

// Median time of a kernel that only reads `bytes` (read_floor.cu), timed as copy_us: the floor
// under the GEMV of those bytes.
double read_only_us(cudaStream_t stream, size_t bytes, int copies) {
  const size_t stride = (bytes + 255) / 256 * 256;  // 256-byte aligned regions
  void* data;
  CHECK(cudaMalloc(&data, stride * copies));
  CHECK(cudaMemsetAsync(data, 1, stride * copies, stream));
  const double ms = graph_ms(stream, 20, [&] {
    for (int i = 0; i < copies; ++i) CHECK(launch_read_only(static_cast<char*>(data) + i * stride, bytes, stream));
  });
  CHECK(cudaFree(data));
  return ms * 1e3 / copies;
}

struct Case {
  std::string name;
  QuantWeightParams p;
};

// Packed weight copies plus the matching Nodes (x [m, K] bf16 -> out [m, N]).
struct Problem {
  std::vector<Node> nodes;
  std::vector<void*> buffers;
  size_t weight_bytes = 0;
  ~Problem() {
    for (void* p : buffers) cudaFree(p);
  }
};

void build(Problem& pr, const Case& c, int64_t m, int64_t n, int64_t k, int copies, std::mt19937& rng) {
  const qhost::Weight q = qhost::make_weight(c.p, n, k, DType::BF16, rng);
  pr.weight_bytes = q.codes.size() + q.scales.size() + q.zeros.size();
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> x(m * k);
  for (auto& v : x) v = dist(rng);
  void* xd = device_copy(qhost::encode(x, DType::BF16));
  void* out = device_copy(std::vector<uint8_t>(m * n * 2, 0));
  pr.buffers.insert(pr.buffers.end(), {xd, out});
  for (int i = 0; i < copies; ++i) {
    Node node{QuantLinearParams{c.p, ActQuant::None, false}, {}, tensor(out, DType::BF16, {m, n})};
    node.in.push_back(tensor(xd, DType::BF16, {m, k}));
    void* codes = device_copy(q.codes);
    void* scales = device_copy(q.scales);
    pr.buffers.insert(pr.buffers.end(), {codes, scales});
    node.in.push_back(tensor(codes, DType::U8, {n, static_cast<int64_t>(q.codes.size()) / n}));
    node.in.push_back(tensor(scales, q.param_dtype, {n, q.groups()}));
    if (c.p.has_zeros) {
      void* zeros = device_copy(q.zeros);
      pr.buffers.push_back(zeros);
      node.in.push_back(tensor(zeros, q.param_dtype, {n, q.groups()}));
    }
    pr.nodes.push_back(node);
  }
}

using LinearFn = Status (*)(const cuda::Context&, const Node&, const QuantLinearParams&);

// Median time of one launch: a graph of one launch per weight copy, replayed.
double time_nodes(const cuda::Context& ctx, const std::vector<Node>& nodes, int reps,
                  LinearFn linear = cuda::quant_linear) {
  return graph_ms(ctx.stream, reps, [&] {
           for (const Node& n : nodes) check(linear(ctx, n, std::get<QuantLinearParams>(n.params)), "quant_linear");
         }) /
         nodes.size();
}

// The bf16 GEMV (cuda::gemv, M = 1) on rotating copies of an N x K weight, timed as time_nodes
// does: the unquantized reference point for the same shapes (4x the bytes of int4).
double time_bf16_gemv(const cuda::Context& ctx, int64_t n, int64_t k, int copies, int reps) {
  std::vector<void*> weights(copies);
  for (auto& w : weights) {
    CHECK(cudaMalloc(&w, n * k * 2));
    CHECK(cudaMemsetAsync(w, 0x3c, n * k * 2, ctx.stream));  // bf16 ~0.01, not zeros
  }
  void *x, *out;
  CHECK(cudaMalloc(&x, k * 2));
  CHECK(cudaMalloc(&out, n * 2));
  CHECK(cudaMemsetAsync(x, 0x3c, k * 2, ctx.stream));
  const cuda::GemmProblem g{DType::BF16, true, 1, n, k, 1, 0, 0, 0, false};
  auto enqueue_all = [&] {
    for (void* w : weights) {
      bool handled = false;
      check(cuda::gemv(ctx, g, x, w, cuda::single_output(out, n), &handled), "gemv");
      if (!handled) check(Status::error("shape not taken by the GEMV"), "gemv");
    }
  };
  const double ms = graph_ms(ctx.stream, reps, enqueue_all);
  for (void* w : weights) CHECK(cudaFree(w));
  CHECK(cudaFree(x));
  CHECK(cudaFree(out));
  return ms / copies;
}

}  // namespace

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  cuda::Context ctx;
  CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  auto blas = cuda::CublasLt::create(32u << 20);
  check(blas.status(), "cublasLt");
  ctx.blas = blas.value();
  CHECK(cudaMalloc(&ctx.error_flag, sizeof(int)));
  CHECK(cudaMemset(ctx.error_flag, 0, sizeof(int)));
  CHECK(cudaMalloc(&ctx.quant_scratch, cuda::kQuantScratchBytes));
  ctx.quant_scratch_bytes = cuda::kQuantScratchBytes;
  ctx.num_sms = prop.multiProcessorCount;

  const double copy_gbs = copy_bandwidth(ctx.stream);
  std::mt19937 rng(7);
  const Case cases[] = {
      {"int4-g32", {QuantScheme::Affine, 4, 32, true, false, 1.f}},
      {"int8-pc", {QuantScheme::Affine, 8, 0, false, false, 1.f}},
      {"int2-g32", {QuantScheme::Affine, 2, 32, true, false, 1.f}},
      {"nvfp4", {QuantScheme::NvFp4, 4, 16, false, false, 1.f}},
  };
  const int64_t shapes[2][2] = {{2048, 8192}, {8192, 2048}};
  std::vector<std::string> rows;
  char line[320];
  // Every format at both shapes, then weights taller than one wave of blocks (int4 16384 x 2048
  // is a gate/up pair of llama3.2-1b; int8 32768 x 2048 a quarter of its int8 LM head).
  std::vector<std::tuple<Case, int64_t, int64_t>> gemvs;
  for (const auto& shape : shapes) {
    for (const Case& c : cases) gemvs.emplace_back(c, shape[0], shape[1]);
  }
  gemvs.emplace_back(cases[0], 16384, 2048);
  gemvs.emplace_back(cases[1], 32768, 2048);
  for (auto [c, n, k] : gemvs) {
    if (c.p.group == 0) c.p.group = k;  // per-channel
    Problem pr;
    const int copies = static_cast<int>(std::max<size_t>(8, (size_t(400) << 20) / (n * k / 2)));
    build(pr, c, 1, n, k, std::min(copies, 64), rng);
    const double ms = time_nodes(ctx, pr.nodes, 50);
    const double gbs = pr.weight_bytes / (ms * 1e-3) / 1e9;
    const int launches = static_cast<int>(pr.nodes.size());
    const double ref_us = copy_us(ctx.stream, pr.weight_bytes, launches);
    const double read_us = read_only_us(ctx.stream, pr.weight_bytes, launches);
    std::snprintf(line, sizeof line,
                  "gemv %-9s N=%-5lld K=%-5lld M=1    %8.2f MB %9.2f us %8.0f GB/s %6.1f%%  (read-only kernel %.2f us "
                  "%.1f%%; copy %.2f us)",
                  c.name.c_str(), (long long)n, (long long)k, pr.weight_bytes / 1e6, ms * 1e3, gbs,
                  100.0 * gbs / copy_gbs, read_us, 100.0 * pr.weight_bytes / (read_us * 1e-6) / 1e9 / copy_gbs, ref_us);
    rows.push_back(line);
  }
  for (const auto& shape : shapes) {
    const int64_t n = shape[0], k = shape[1];
    const double bytes = double(n) * k * 2, us = time_bf16_gemv(ctx, n, k, 16, 50) * 1e3;
    const double gbs = bytes / (us * 1e-6) / 1e9;
    std::snprintf(line, sizeof line,
                  "gemv %-9s N=%-5lld K=%-5lld M=1    %8.2f MB %9.2f us %8.0f GB/s %6.1f%%  (copy of these bytes %.2f us)",
                  "bf16", (long long)n, (long long)k, bytes / 1e6, us, gbs, 100.0 * gbs / copy_gbs,
                  copy_us(ctx.stream, static_cast<size_t>(bytes), 16));
    rows.push_back(line);
  }
  // More than one row of x: what quant_linear picks, each path forced (GEMV passes of 8 rows, up
  // to 64 rows whatever kMaxGemvRows is, and dequantize + cuBLASLt), and plain bf16 cuBLASLt on the
  // same shape. kMaxGemvRows is set from these rows.
  const LinearFn paths[] = {cuda::quant_linear, cuda::quant_linear_gemv, cuda::quant_linear_dequant};
  for (const auto& shape : shapes) {
    for (Case c : cases) {
      for (int64_t m : {16, 32, 64, 128, 512, 2048}) {
        if (c.name != "int4-g32" && m != 16 && m < 512) continue;
        const int64_t n = shape[0], k = shape[1];
        if (c.p.group == 0) c.p.group = k;  // per-channel
        Problem pr;
        build(pr, c, m, n, k, 1, rng);
        double ms[3] = {};
        for (int i = 0; i < 3; ++i) {
          if (i == 1 && m > 64) continue;
          ms[i] = time_nodes(ctx, pr.nodes, 20, paths[i]);
        }
        void* w = device_copy(std::vector<uint8_t>(n * k * 2, 0x3c));  // bf16 ~0.01, not zeros
        cuda::GemmProblem g{DType::BF16, true, m, n, k, 1, 0, 0, 0, false};
        const Node& node = pr.nodes[0];
        const double ref_ms = median_ms(ctx.stream, 20, [&] {
          check(ctx.blas->gemm(g, node.in[0].data, w, node.out.data, ctx.stream), "gemm");
        });
        CHECK(cudaFree(w));
        char gemv[32] = "     -";
        if (ms[1] > 0) std::snprintf(gemv, sizeof gemv, "%6.3f", ms[1]);
        std::snprintf(line, sizeof line,
                      "mm   %-9s N=%-5lld K=%-5lld M=%-5lld picked %6.3f ms  gemv %s  dequant+lt %6.3f  bf16 %6.3f  "
                      "picked/bf16 x%.2f",
                      c.name.c_str(), (long long)n, (long long)k, (long long)m, ms[0], gemv, ms[2], ref_ms,
                      ms[0] / ref_ms);
        rows.push_back(line);
      }
    }
  }
  std::printf("\n%s, copy bandwidth (read + write) %.0f GB/s\n", prop.name, copy_gbs);
  for (const auto& r : rows) std::printf("%s\n", r.c_str());
  delete ctx.blas;
  return 0;
}
