// Parity of the CUDA engine's quant_linear / quant_embedding against an fp64 host reference
// (quant_host.h), through the engine's own run(): every format (int2/4/8, nvfp4) x group (32,
// 128, whole row; 16 for nvfp4) x zeros (none, integer, float domain) x dtype x M in
// {1, 3, 8, 11, 64} (11: two GEMV passes, the second partial; 64: the dequantize path) x bias x
// 8da act quant, on a K that the GEMV tiles (256), one it does not (96), a long row (2560 bytes,
// fewer combinations), and N = 72 (a partial 16-row tile). Then every GEMV instance (parameter
// dtype, zero domain, groups per step) at M = 1..8.
// Then the prefill sizes, M in {65, 128, 200, 512} (dequantize + cuBLASLt): every format x group
// (16 too) x zeros x f16/bf16 (f32 once per M) on K with a partial 16-word step, without one, and
// int2 at K = 96 (6 words), N = 72 or 200, bias / 8da cycling over the cases.
// Then groups of three linears that read one x through run_next (one GEMV launch on CUDA), and
// gate/up pairs with their Glu (the Glu in that launch's epilogue).
// Outputs are poisoned (NaN) before every run.
// Prints the worst rel-err per (format, dtype, path) and exits 1 on any failure, 77 without a GPU.
// --quick runs a subset (for compute-sanitizer).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>

#include "engine/cuda/quant_internal.h"
#include "engine/engine.h"
#include "quant_host.h"

using namespace etgpu;

namespace {

struct Device {
  Engine* e;
  std::vector<void*> owned;
  ~Device() {
    for (void* p : owned) e->release(p);
  }
  TensorRef put(const std::vector<uint8_t>& bytes, DType d, std::vector<int64_t> shape) {
    TensorRef t;
    t.dtype = d;
    t.rank = static_cast<int>(shape.size());
    for (int i = 0; i < t.rank; ++i) t.shape[i] = shape[i];
    auto p = e->allocate(t.nbytes());
    if (!p.status().is_ok()) return t;
    t.data = p.value();
    owned.push_back(t.data);
    if (!bytes.empty()) e->upload(t.data, bytes.data(), bytes.size());
    else e->upload(t.data, std::vector<uint8_t>(t.nbytes(), 0xFF).data(), t.nbytes());  // NaN poison
    return t;
  }
};

const char* dtype_str(DType d) { return d == DType::F32 ? "f32" : d == DType::F16 ? "f16" : "bf16"; }
double tolerance(DType d) { return d == DType::F32 ? 1e-4 : 1e-2; }

std::vector<float> random_floats(size_t n, float lo, float hi, DType d, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = qhost::round_to(dist(rng), d);
  return v;
}

std::string format_name(const QuantWeightParams& p) {
  if (p.scheme == QuantScheme::NvFp4) return "nvfp4";
  return "int" + std::to_string(p.bits);
}

struct Worst {
  double err = 0;
  int cases = 0, failures = 0;
};

// A quantized weight's operands on the device, appended to node->in: codes, scales, the zeros
// when the weight has them, and a linear's bias (of x's dtype d) when given.
void put_weight(Device& dev, const qhost::Weight& q, const std::vector<float>* bias, DType d, Node* node) {
  const int64_t n = q.n;
  node->in.push_back(dev.put(q.codes, DType::U8, {n, static_cast<int64_t>(q.codes.size()) / n}));
  node->in.push_back(dev.put(q.scales, q.param_dtype, {n, q.groups()}));
  if (q.p.has_zeros) node->in.push_back(dev.put(q.zeros, q.param_dtype, {n, q.groups()}));
  if (bias) node->in.push_back(dev.put(qhost::encode(*bias, d), d, {n}));
}

// One quant_linear case; returns its rel-err (infinity on an engine error).
double linear_case(Engine* e, const QuantWeightParams& wp, DType d, DType param_dtype, int64_t m, int64_t n,
                   int64_t k, bool bias, bool act, std::mt19937& rng, std::string* error) {
  const qhost::Weight q = qhost::make_weight(wp, n, k, param_dtype, rng);
  const std::vector<float> x = random_floats(m * k, -2.f, 2.f, d, rng);
  const std::vector<float> b = random_floats(n, -1.f, 1.f, d, rng);
  Device dev{e, {}};
  QuantLinearParams p{wp, act ? ActQuant::Int8PerTokenAsym : ActQuant::None, bias};
  Node node{p, {}, {}};
  node.in.push_back(dev.put(qhost::encode(x, d), d, {m, k}));
  put_weight(dev, q, bias ? &b : nullptr, d, &node);
  node.out = dev.put({}, d, {m, n});
  Status s = e->run(node);
  if (s.is_ok()) s = e->synchronize();
  if (!s.is_ok()) {
    *error = s.message();
    return INFINITY;
  }
  std::vector<uint8_t> got(node.out.nbytes());
  e->download(got.data(), node.out.data, got.size());
  e->synchronize();
  return qhost::rel_err(qhost::decode(got, d), qhost::linear_ref(q, x, m, bias ? b.data() : nullptr, act, d));
}

// The bytes of a device tensor.
std::vector<uint8_t> fetch(Engine* e, const TensorRef& t) {
  std::vector<uint8_t> bytes(t.nbytes());
  e->download(bytes.data(), t.data, bytes.size());
  e->synchronize();
  return bytes;
}

// Whether ETGPU_QLINEAR_GROUP=0 turned the engine's grouping off (every instruction runs alone).
bool grouping_off() {
  const char* v = std::getenv("ETGPU_QLINEAR_GROUP");
  return v && std::string(v) == "0";
}

// Runs `nodes` as the executor does (run_next), then synchronizes. *first_launch: how many
// instructions the first launch took.
Status run_as_executor(Engine* e, const std::vector<Node>& nodes, size_t* first_launch) {
  Status status = Status::ok();
  for (size_t i = 0, ran = 1; i < nodes.size() && status.is_ok(); i += ran) {
    status = e->run_next(&nodes[i], nodes.size() - i, &ran);
    if (i == 0) *first_launch = ran;
  }
  return status.is_ok() ? e->synchronize() : status;
}

// Quantized linears that read one x, run as the executor runs them (run_next): the CUDA engine
// takes up to three as one GEMV launch (quant_linear_group). Each output must match its own
// reference, and the group must take exactly the siblings that read x: with `share_all` false the
// third reads an equal copy of x at another address and must run on its own. Returns the number
// of failed outputs; the worst rel-err goes to *worst.
int sibling_case(Engine* e, const QuantWeightParams& wp, DType d, DType param_dtype, int64_t m, int64_t k,
                 bool share_all, std::mt19937& rng, double* worst) {
  const int64_t rows[3] = {72, 16, 40};  // partial, whole and partial 16-row tiles
  const std::vector<float> x = random_floats(m * k, -2.f, 2.f, d, rng);
  Device dev{e, {}};
  const TensorRef x_dev = dev.put(qhost::encode(x, d), d, {m, k});
  const TensorRef x_copy = dev.put(qhost::encode(x, d), d, {m, k});
  std::vector<qhost::Weight> weights;
  std::vector<std::vector<float>> biases;
  std::vector<Node> nodes;
  for (int s = 0; s < 3; ++s) {
    weights.push_back(qhost::make_weight(wp, rows[s], k, param_dtype, rng));
    biases.push_back(random_floats(rows[s], -1.f, 1.f, d, rng));
    const qhost::Weight& q = weights.back();
    const bool bias = s != 1;
    Node node{QuantLinearParams{wp, ActQuant::None, bias}, {}, {}};
    node.in.push_back(s == 2 && !share_all ? x_copy : x_dev);
    put_weight(dev, q, bias ? &biases.back() : nullptr, d, &node);
    node.out = dev.put({}, d, {m, rows[s]});
    nodes.push_back(node);
  }
  const size_t expected = grouping_off() ? 1 : share_all ? 3 : 2;
  int failures = 0;
  size_t first_launch = 0;
  const Status status = run_as_executor(e, nodes, &first_launch);
  if (status.is_ok() && first_launch != expected) {
    std::printf("FAIL siblings %s %s share_all=%d: the first launch took %zu linears, expected %zu\n",
                format_name(wp).c_str(), dtype_str(d), share_all, first_launch, expected);
    ++failures;
  }
  for (int s = 0; s < 3; ++s) {
    const std::vector<uint8_t> got = fetch(e, nodes[s].out);
    const double err = status.is_ok() ? qhost::rel_err(qhost::decode(got, d),
                                                       qhost::linear_ref(weights[s], x, m,
                                                                         s != 1 ? biases[s].data() : nullptr,
                                                                         false, d))
                                      : INFINITY;
    *worst = std::max(*worst, err);
    if (!(err <= tolerance(d))) {
      std::printf("FAIL siblings %s g%lld %s M=%lld share_all=%d, sibling %d: rel-err %.3g %s\n",
                  format_name(wp).c_str(), (long long)wp.group, dtype_str(d), (long long)m, share_all, s, err,
                  status.message().c_str());
      ++failures;
    }
  }
  return failures;
}

// A gated MLP's gate and up linears and the Glu of their outputs, run as the executor runs them
// (run_next): the CUDA engine takes the three as one GEMV launch, the Glu in its epilogue. The
// outputs must equal, byte for byte, the three run one at a time (run); N = 76 leaves a partial
// 8-row pair. With `overlap` the Glu's output takes x's bytes, so the launch must leave the Glu
// out (x is uploaded again before each run). Returns the number of failures.
int glu_case(Engine* e, const QuantWeightParams& wp, DType d, DType param_dtype, int64_t m, int64_t k, UnaryOp act,
             bool overlap, std::mt19937& rng) {
  const int64_t n = 76;
  const std::vector<uint8_t> x = qhost::encode(random_floats(m * k, -2.f, 2.f, d, rng), d);
  const qhost::Weight gate = qhost::make_weight(wp, n, k, param_dtype, rng), up = qhost::make_weight(wp, n, k, param_dtype, rng);
  const std::vector<float> bias = random_floats(n, -1.f, 1.f, d, rng);
  Device dev{e, {}};
  const TensorRef x_dev = dev.put(x, d, {m, k});
  TensorRef glu_over_x = x_dev;
  glu_over_x.rank = 2, glu_over_x.shape[0] = m, glu_over_x.shape[1] = n;
  auto make_nodes = [&] {
    std::vector<Node> nodes(3, Node{QuantLinearParams{wp, ActQuant::None, true}, {}, {}});
    nodes[1].params = QuantLinearParams{wp, ActQuant::None, false};
    for (int s = 0; s < 2; ++s) {
      nodes[s].in.push_back(x_dev);
      put_weight(dev, s == 0 ? gate : up, s == 0 ? &bias : nullptr, d, &nodes[s]);
      nodes[s].out = dev.put({}, d, {m, n});
    }
    nodes[2] = Node{GluParams{act}, {nodes[0].out, nodes[1].out}, overlap ? glu_over_x : dev.put({}, d, {m, n})};
    return nodes;
  };
  const std::vector<Node> alone = make_nodes(), together = make_nodes();
  Status status = Status::ok();
  for (const Node& node : alone) {
    if (status.is_ok()) status = e->run(node);
  }
  std::vector<std::vector<uint8_t>> expected;
  for (const Node& node : alone) expected.push_back(fetch(e, node.out));
  e->upload(x_dev.data, x.data(), x.size());
  const size_t expected_launch = grouping_off() ? 1 : overlap ? 2 : 3;
  int failures = 0;
  size_t first_launch = 0;
  if (status.is_ok()) status = run_as_executor(e, together, &first_launch);
  if (status.is_ok() && first_launch != expected_launch) {
    std::printf("FAIL glu %s %s overlap=%d: the first launch took %zu instructions, expected %zu\n",
                format_name(wp).c_str(), dtype_str(d), overlap, first_launch, expected_launch);
    ++failures;
  }
  for (int s = 0; s < 3; ++s) {
    if (status.is_ok() && fetch(e, together[s].out) == expected[s]) continue;
    std::printf("FAIL glu %s g%lld %s M=%lld act=%d overlap=%d: output %d differs from the instructions run alone %s\n",
                format_name(wp).c_str(), (long long)wp.group, dtype_str(d), (long long)m, int(act), overlap, s,
                status.message().c_str());
    ++failures;
  }
  return failures;
}

// quant_embedding: in-range (and one negative, wrapped) indices match the reference rows; an
// out-of-range index must surface as an error at synchronize.
bool embedding_cases(Engine* e, std::mt19937& rng) {
  bool ok = true;
  for (int bits : {2, 4, 8, 0}) {
    for (DType d : {DType::F32, DType::F16, DType::BF16}) {
      const bool fp4 = bits == 0;
      QuantWeightParams wp{fp4 ? QuantScheme::NvFp4 : QuantScheme::Affine, fp4 ? 4 : bits, fp4 ? 16 : 32,
                           !fp4, false, 0.5f};
      const int64_t rows = 50, k = 128, count = 7;
      const qhost::Weight q = qhost::make_weight(wp, rows, k, d, rng);
      std::vector<int64_t> idx = {0, 49, 3, -1, 17, 17, 25};
      for (int bad = 0; bad < 2; ++bad) {
        if (bad) idx[2] = 50;
        Device dev{e, {}};
        Node node{QuantEmbeddingParams{wp}, {}, {}};
        std::vector<uint8_t> ib(count * 8);
        std::memcpy(ib.data(), idx.data(), ib.size());
        node.in.push_back(dev.put(ib, DType::I64, {count}));
        put_weight(dev, q, nullptr, d, &node);
        node.out = dev.put({}, d, {count, k});
        Status s = e->run(node);
        if (s.is_ok()) s = e->synchronize();
        if (bad) {
          if (s.is_ok()) std::printf("FAIL embedding %s %s: out-of-range index not reported\n",
                                     format_name(wp).c_str(), dtype_str(d));
          ok &= !s.is_ok();
          continue;
        }
        std::vector<uint8_t> got(node.out.nbytes());
        e->download(got.data(), node.out.data, got.size());
        e->synchronize();
        std::vector<double> ref(count * k);
        for (int64_t i = 0; i < count; ++i) {
          const int64_t r = idx[i] < 0 ? idx[i] + rows : idx[i];
          for (int64_t c = 0; c < k; ++c) ref[i * k + c] = q.w[r * k + c];
        }
        const double err = s.is_ok() ? qhost::rel_err(qhost::decode(got, d), ref) : INFINITY;
        const bool pass = err <= tolerance(d) / 2;
        if (!pass) std::printf("FAIL embedding %s %s: rel-err %.3g %s\n", format_name(wp).c_str(), dtype_str(d),
                               err, s.message().c_str());
        ok &= pass;
      }
    }
  }
  std::printf("embedding: %s\n", ok ? "ok" : "FAILED");
  return ok;
}

// The kernel quant_linear routes a bf16/f16/f32 case to (mirrors quant.cu / quant_gemv.cu):
// "gemv" (bf16/f16, M <= kMaxGemvRows, whole 16-word steps, <= 2 groups per 4 words), else
// "dequant" (dequantize + cuBLASLt).
const char* path_of(const QuantWeightParams& wp, DType d, int64_t m, int64_t k) {
  const int64_t per_word = wp.scheme == QuantScheme::NvFp4 ? 8 : 32 / wp.bits, words = k / per_word;
  const int64_t quad_groups = wp.group == k ? 1 : 4 * per_word / wp.group;
  const bool gemv = d != DType::F32 && m <= cuda::kMaxGemvRows && words % 16 == 0 && quad_groups <= 2;
  return gemv ? "gemv" : "dequant";
}

// Calls fn(weight params, zero domain) for every format x zero domain (none, integer, float) at
// the group the grouped GEMV cases use (32; nvfp4's 16).
template <class Fn>
void for_each_grouped_format(Fn&& fn) {
  for (int fmt : {2, 4, 8, 0}) {
    const bool fp4 = fmt == 0;
    for (int zeros = 0; zeros < (fp4 ? 1 : 3); ++zeros) {
      fn(QuantWeightParams{fp4 ? QuantScheme::NvFp4 : QuantScheme::Affine, fp4 ? 4 : fmt, fp4 ? 16 : 32, zeros > 0,
                           zeros == 2, fp4 ? 0.75f : 1.f},
         zeros);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --quick: fewer cases (no long rows, no f32, M in {1, 8, 11}), for compute-sanitizer runs.
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  std::string why;
  std::unique_ptr<Engine> engine = make_cuda_engine(&why);
  if (!engine) {
    std::printf("SKIP: %s\n", why.c_str());
    return 77;
  }
  std::mt19937 rng(1234);
  std::map<std::tuple<std::string, std::string, std::string>, Worst> table;
  int failures = 0, cases = 0;
  const DType dtypes[] = {DType::F32, DType::F16, DType::BF16};
  // One linear case against the CPU reference (parameter dtypes rotate over the cases), its
  // worst error kept per (format, dtype, path), the first 40 failures printed.
  auto run_case = [&](const QuantWeightParams& wp, DType d, int64_t m, int64_t n, int64_t k, bool bias, bool act,
                      const DType* param = nullptr) {
    std::string error;
    const DType param_dtype = param ? *param : dtypes[cases % 3];
    const double err = linear_case(engine.get(), wp, d, param_dtype, m, n, k, bias, act, rng, &error);
    auto& w = table[{format_name(wp), dtype_str(d), path_of(wp, d, m, k)}];
    w.err = std::max(w.err, err);
    ++w.cases;
    ++cases;
    if (!(err <= tolerance(d))) {
      ++w.failures;
      if (++failures <= 40)
        std::printf("FAIL %s g%lld zeros=%d %s M=%lld N=%lld K=%lld bias=%d act=%d: rel-err %.3g %s\n",
                    format_name(wp).c_str(), (long long)wp.group, int(wp.has_zeros) + int(wp.zero_is_float),
                    dtype_str(d), (long long)m, (long long)n, (long long)k, bias, act, err, error.c_str());
    }
  };
  for (int fmt : {2, 4, 8, 0}) {
    const bool fp4 = fmt == 0;
    // 40 steps of 64 bytes per row: the GEMV's 16-warp variant, with a partial last round.
    const int64_t long_k = 2560 * 8 / (fp4 ? 4 : fmt);
    for (int64_t k : {int64_t(256), int64_t(96), long_k}) {
      const bool long_row = k == long_k;
      if (quick && long_row) continue;
      for (int64_t group : fp4 ? std::vector<int64_t>{16} : std::vector<int64_t>{32, 128, k}) {
        if (k % group || (long_row && group == 32)) continue;
        for (int zeros = 0; zeros < (fp4 ? 1 : 3); ++zeros) {
          const QuantWeightParams wp{fp4 ? QuantScheme::NvFp4 : QuantScheme::Affine, fp4 ? 4 : fmt, group,
                                     zeros > 0, zeros == 2, fp4 ? 0.75f : 1.f};
          for (DType d : dtypes) {
            for (int64_t m : {1, 3, 8, 11, 64}) {
              if ((long_row || quick) && (d == DType::F32 || m == 3 || m == 64)) continue;
              for (int flags = 0; flags < 4; ++flags) {
                const bool bias = flags & 1, act = flags & 2;
                if (long_row && !bias) continue;
                run_case(wp, d, m, 72, k, bias, act);
              }
            }
          }
        }
      }
    }
  }
  // The GEMV's instances (format x dtype x parameter dtype x zero domain x groups per step)
  // at every pass width, M = 1..8 (a pass's x rows past M read row M - 1), K = 256: groups of
  // 16 (two per step for int4, nvfp4), 32 (two for int2), 128 and the whole row.
  for (int fmt : {2, 4, 8, 0}) {
    const bool fp4 = fmt == 0;
    for (int64_t group : fp4 ? std::vector<int64_t>{16} : std::vector<int64_t>{16, 32, 128, 256}) {
      if (fmt == 2 && group == 16) continue;  // four groups per step: not the GEMV
      for (int zeros = 0; zeros < (fp4 ? 1 : 3); ++zeros) {
        const QuantWeightParams wp{fp4 ? QuantScheme::NvFp4 : QuantScheme::Affine, fp4 ? 4 : fmt, group, zeros > 0,
                                   zeros == 2, fp4 ? 0.75f : 1.f};
        for (DType d : {DType::F16, DType::BF16}) {
          for (int pi = 0; pi < (fp4 ? 1 : 3); ++pi) {  // nvfp4's scales are always e4m3
            for (int64_t m = 1; m <= (quick ? 2 : 8); ++m) run_case(wp, d, m, 72, 256, m % 2, false, &dtypes[pi]);
          }
        }
      }
    }
  }
  // Prefill sizes: dequantize + cuBLASLt.
  int prefill = 0;
  for (int fmt : {2, 4, 8, 0}) {
    const bool fp4 = fmt == 0;
    const int64_t per_word = fp4 ? 8 : 32 / fmt;
    // 40 words (2 full 16-word steps + a partial one), 32 words (whole steps), 96 (int2: not quads).
    for (int64_t k : {40 * per_word, 32 * per_word, int64_t(96)}) {
      if (quick && k != 40 * per_word) continue;
      for (int64_t group : fp4 ? std::vector<int64_t>{16} : std::vector<int64_t>{16, 32, 128, k}) {
        if (k % group || (k == 96 && group != k && fmt != 2)) continue;
        for (int zeros = 0; zeros < (fp4 ? 1 : 3); ++zeros) {
          const QuantWeightParams wp{fp4 ? QuantScheme::NvFp4 : QuantScheme::Affine, fp4 ? 4 : fmt, group,
                                     zeros > 0, zeros == 2, fp4 ? 0.75f : 1.f};
          for (DType d : dtypes) {
            for (int64_t m : {65, 128, 200, 512}) {
              if (quick && m != 200) continue;
              // f32 (the dequantize path, unchanged) once per format and K.
              if (d == DType::F32 && (m != 65 || zeros != 0 || group != k)) continue;
              const int flags = prefill % 4;
              const bool bias = flags & 1, act = flags & 2;
              const int64_t n = (prefill / 4) % 2 ? 200 : 72;
              ++prefill;
              run_case(wp, d, m, n, k, bias, act);
            }
          }
        }
      }
    }
  }
  // Siblings (one GEMV launch for the linears that read one x), every format x zero domain x
  // f16/bf16 at M = 1 and 3, K = 256.
  int sibling_cases = 0, sibling_failures = 0;
  double sibling_worst = 0;
  for_each_grouped_format([&](const QuantWeightParams& wp, int zeros) {
    for (DType d : {DType::F16, DType::BF16}) {
      for (int64_t m : {1, 3}) {
        for (bool share_all : {true, false}) {
          sibling_failures += sibling_case(engine.get(), wp, d, dtypes[(sibling_cases + zeros) % 3], m, 256,
                                           share_all, rng, &sibling_worst);
          ++sibling_cases;
        }
      }
    }
  });
  std::printf("sibling groups: %d cases, %d failed outputs, max rel-err %.3g\n", sibling_cases, sibling_failures,
              sibling_worst);
  failures += sibling_failures;
  // Gate/up pairs with the Glu in the GEMV's epilogue: every format x zero domain x f16/bf16 x
  // M = 1, 3, the three Glu activations in turn, and the Glu over x's bytes (no fold) once per format.
  int glu_cases = 0, glu_failures = 0;
  const UnaryOp acts[] = {UnaryOp::Silu, UnaryOp::GeluTanh, UnaryOp::GeluErf};
  for_each_grouped_format([&](const QuantWeightParams& wp, int zeros) {
    for (DType d : {DType::F16, DType::BF16}) {
      for (int64_t m : {1, 3}) {
        const bool overlap = zeros == 0 && d == DType::F16 && m == 1;
        glu_failures += glu_case(engine.get(), wp, d, dtypes[(glu_cases + zeros) % 3], m, 256, acts[glu_cases % 3],
                                 overlap, rng);
        ++glu_cases;
      }
    }
  });
  std::printf("glu pairs: %d cases, %d failures\n", glu_cases, glu_failures);
  failures += glu_failures;
  const bool embedding_ok = embedding_cases(engine.get(), rng);
  std::printf("\n%-6s %-5s %-7s %6s %6s %10s\n", "format", "dtype", "path", "cases", "fails", "max relerr");
  for (const auto& [key, w] : table) {
    std::printf("%-6s %-5s %-7s %6d %6d %10.3g\n", std::get<0>(key).c_str(), std::get<1>(key).c_str(),
                std::get<2>(key).c_str(), w.cases, w.failures, w.err);
  }
  std::printf("%d linear cases, %d failed; embedding %s\n", cases, failures, embedding_ok ? "ok" : "FAILED");
  return failures == 0 && embedding_ok ? 0 : 1;
}
