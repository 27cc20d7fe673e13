#include "program/program.h"

#include <cstdlib>
#include <cstring>

#include "program/verify.h"

namespace etgpu {

uint64_t default_max_device_bytes() {
  const char* text = std::getenv("ETGPU_MAX_DEVICE_BYTES");
  if (text == nullptr || *text == '\0') return kDefaultMaxDeviceBytes;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  // A malformed value must not silently lift the cap: fall back to the default.
  return (end != nullptr && *end == '\0' && value > 0) ? value : kDefaultMaxDeviceBytes;
}

int64_t eval_dim(const ir::Dim& dim, const int64_t* sym_values) {
  if (dim.sym() < 0) return dim.add();
  return (dim.mul() * sym_values[dim.sym()] + dim.add()) / dim.div();
}

Result<std::shared_ptr<const Program>> Program::load(const void* data, size_t size,
                                                     const LoadLimits& limits) {
  ETGPU_CHECK(data != nullptr && size >= 8, "payload is empty or truncated (", size, " bytes)");
  ETGPU_CHECK(size < (uint64_t{1} << 31), "payload of ", size, " bytes exceeds the 2 GiB limit");
  auto program = std::shared_ptr<Program>(new Program());
  program->storage_.resize((size + 7) / 8);
  std::memcpy(program->storage_.data(), data, size);
  const auto* bytes = reinterpret_cast<const uint8_t*>(program->storage_.data());
  ETGPU_CHECK(ir::ProgramBufferHasIdentifier(bytes),
              "payload is not an etgpu program (missing identifier 'ETGP')");
  flatbuffers::Verifier verifier(bytes, size);
  ETGPU_CHECK(ir::VerifyProgramBuffer(verifier), "payload failed FlatBuffer verification "
              "(truncated or corrupted)");
  const ir::Program* root = ir::GetProgram(bytes);
  ETGPU_CHECK(root->version() == static_cast<uint32_t>(ir::FormatVersion::MAJOR),
              "payload format version ", root->version(), " is not supported (this runtime reads ",
              static_cast<uint32_t>(ir::FormatVersion::MAJOR), ")");
  ETGPU_CHECK(root->graph() != nullptr, "payload has no graph");
  ETGPU_RETURN_IF_ERROR(verify_graph(*root->graph(), limits));
  program->graph_ = root->graph();
  return std::shared_ptr<const Program>(std::move(program));
}

}  // namespace etgpu
