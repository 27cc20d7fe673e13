#include "executorch/tensor_bridge.h"

#include <executorch/runtime/core/exec_aten/util/dim_order_util.h>
#include <executorch/runtime/core/exec_aten/util/tensor_util.h>

namespace etgpu {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::runtime::EValue;

namespace {

// The executor reads dense row-major bytes; ExecuTorch describes layout by dim order.
Status check_contiguous(const Tensor& t, const char* what, size_t index) {
  const auto order = t.dim_order();
  ETGPU_CHECK(executorch::runtime::is_contiguous_dim_order(order.data(), order.size()), what, " ",
              index, " is not in contiguous dim order (channels-last tensors are not supported)");
  return Status::ok();
}

}  // namespace

Result<HostTensor> host_tensor_from(const EValue& value, size_t index, std::vector<int64_t>* shape) {
  ETGPU_CHECK(value.isTensor(), "delegate input ", index, " is not a tensor (EValue tag ",
              static_cast<int>(value.tag), ")");
  const Tensor& t = value.toTensor();
  ETGPU_RETURN_IF_ERROR(check_contiguous(t, "input", index));
  auto dtype = dtype_from_scalar_type(t.scalar_type());
  ETGPU_RETURN_IF_ERROR(dtype.status());
  shape->assign(t.sizes().begin(), t.sizes().end());
  HostTensor host;
  host.data = t.const_data_ptr();
  host.dtype = dtype.value();
  host.rank = static_cast<int>(t.dim());
  host.shape = shape->data();
  return host;
}

Status copy_output(Executor& executor, size_t index, EValue& value) {
  ETGPU_CHECK(value.isTensor(), "delegate output ", index, " is not a tensor");
  Tensor t = value.toTensor();
  ETGPU_RETURN_IF_ERROR(check_contiguous(t, "output", index));
  auto dtype = dtype_from_scalar_type(t.scalar_type());
  ETGPU_RETURN_IF_ERROR(dtype.status());
  ETGPU_CHECK(dtype.value() == executor.output_dtype(index), "output ", index, " is ",
              dtype_name(dtype.value()), " in the ExecuTorch program but ",
              dtype_name(executor.output_dtype(index)), " in the etgpu payload");
  const std::vector<int64_t> shape = executor.output_shape(index);
  ETGPU_CHECK(static_cast<size_t>(t.dim()) == shape.size(), "output ", index, " has rank ", t.dim(),
              " in the ExecuTorch program but ", shape.size(), " in the etgpu payload");
  std::vector<executorch::aten::SizesType> sizes(shape.begin(), shape.end());
  const auto resized = executorch::runtime::resize_tensor(t, {sizes.data(), sizes.size()});
  ETGPU_CHECK(resized == executorch::runtime::Error::Ok, "output ", index,
              " could not be resized to its actual shape (larger than its planned upper bound?)");
  return executor.read_output(index, t.mutable_data_ptr(), t.nbytes());
}

}  // namespace etgpu
