// Uses only the installed C API: runs the reference add model (y = x + {1, 2, 3}) given on the
// command line and checks the result, then checks that a bad file is refused with a message.
#include <cmath>
#include <cstdio>
#include <cstring>

#include <etgpu/etgpu.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: etgpu_consumer ADD_MODEL.etgpu\n");
    return 2;
  }
  etgpu_model* model = nullptr;
  if (etgpu_open_file(argv[1], "cpu", &model) != 0) {
    std::fprintf(stderr, "open failed: %s\n", etgpu_last_error());
    return 1;
  }
  const float x[6] = {0, 1, 2, 3, 4, 5};
  const void* data[1] = {x};
  const int8_t dtypes[1] = {0};  // f32
  const int32_t ranks[1] = {2};
  const int64_t shape[2] = {2, 3};
  const int64_t* shapes[1] = {shape};
  float y[6] = {0};
  if (etgpu_execute(model, 1, data, dtypes, ranks, shapes) != 0 ||
      etgpu_read_output(model, 0, y, sizeof(y)) != 0) {
    std::fprintf(stderr, "run failed: %s\n", etgpu_last_error());
    return 1;
  }
  for (int i = 0; i < 6; ++i) {
    const float expected = x[i] + static_cast<float>(i % 3 + 1);
    if (std::fabs(y[i] - expected) > 0) {
      std::fprintf(stderr, "y[%d] = %g, expected %g\n", i, y[i], expected);
      return 1;
    }
  }
  etgpu_close(model);

  const char junk[16] = "not a model";
  etgpu_model* bad = nullptr;
  if (etgpu_open_bytes(junk, sizeof(junk), "cpu", &bad) == 0 || std::strlen(etgpu_last_error()) == 0) {
    std::fprintf(stderr, "a junk buffer was not refused with a message\n");
    return 1;
  }
  std::printf("etgpu consumer: ok (installed package, C API, CPU run)\n");
  return 0;
}
