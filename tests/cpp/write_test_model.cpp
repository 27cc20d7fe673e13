// Writes the reference add model (y = x + {1, 2, 3}, x: f32[s, 3], s in [1, 8]) as a .etgpu file,
// for tests that need a model file without Python (the installed-package consumer test).
#include <cstdio>
#include <fstream>

#include "payload_builder.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: etgpu_write_test_model OUT.etgpu\n");
    return 2;
  }
  const auto bytes = etgpu::testing::add_model_file();
  std::ofstream out(argv[1], std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return out.good() ? 0 : 1;
}
