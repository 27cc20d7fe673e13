#include "executorch/named_data_source.h"

#include <memory>
#include <utility>

namespace etgpu {

using executorch::runtime::Error;
using executorch::runtime::FreeableBuffer;

Result<ConstantBytes> NamedDataSource::get(const std::string& key) {
  ETGPU_CHECK(map_ != nullptr, "constant '", key,
              "' is needed but the program has no named data (was the .ptd file given?)");
  auto found = map_->get_data(key);
  ETGPU_CHECK(found.ok(), "constant '", key, "' not found in the program's named data (error ",
              static_cast<int>(found.error()), ")");
  // FreeableBuffer is move-only; ConstantBytes::release is a copyable std::function, so the
  // buffer lives behind a shared_ptr that the function owns. Dropping the function frees it too.
  auto buffer = std::make_shared<FreeableBuffer>(std::move(found.get()));
  auto data = buffer->data_safe();
  ETGPU_CHECK(data.ok(), "constant '", key, "' is not addressable host memory");
  ConstantBytes bytes;
  bytes.data = data.get();
  bytes.size = buffer->size();
  bytes.release = [buffer]() { buffer->Free(); };
  return bytes;
}

}  // namespace etgpu
