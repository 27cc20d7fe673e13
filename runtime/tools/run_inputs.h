// Inputs for the run tools: raw files given on the command line, or a seeded pattern.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace etgpu::tools {

struct InputSpec {
  std::string file;
  std::vector<int64_t> shape;
};

// Parses "INDEX=FILE:D0,D1,..." into specs[INDEX].
bool parse_input(const std::string& arg, std::map<int, InputSpec>* specs);
// Reads a whole file (raw little-endian bytes).
std::vector<uint8_t> read_bytes(const std::string& path);
// Uniform [-1, 1) floats or small non-negative integers, reproducible per seed.
std::vector<uint8_t> seeded_input(DType dtype, const std::vector<int64_t>& shape, int seed);
// "output I: DTYPE [D0, D1] sum=... mean_abs=..." on stdout.
void print_summary(size_t index, DType dtype, const std::vector<int64_t>& shape, const void* data);

}  // namespace etgpu::tools
