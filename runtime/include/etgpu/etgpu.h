/* etgpu C API: load a .etgpu file (or a bare payload) and run it without ExecuTorch.
 * Every call returns 0 on success; on failure, etgpu_last_error() says why (thread-local). */
#ifndef ETGPU_ETGPU_H_
#define ETGPU_ETGPU_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct etgpu_model etgpu_model;

/* dtype codes: 0 f32, 1 f16, 2 bf16, 3 i64, 4 i32, 5 i16, 6 i8, 7 u8, 8 bool. */

/* device: "auto", "cuda" or "cpu". */
int etgpu_open_file(const char* path, const char* device, etgpu_model** out);
int etgpu_open_bytes(const void* bytes, size_t size, const char* device, etgpu_model** out);
/* As above, with a cap on the device memory (arena + constants + mutable state) the program may
 * ask for; 0 means the default (ETGPU_MAX_DEVICE_BYTES when set, else 256 GiB). */
int etgpu_open_file_limited(const char* path, const char* device, uint64_t max_device_bytes, etgpu_model** out);
int etgpu_open_bytes_limited(const void* bytes, size_t size, const char* device, uint64_t max_device_bytes,
                             etgpu_model** out);
void etgpu_close(etgpu_model* model);

int etgpu_num_inputs(const etgpu_model* model);
int etgpu_num_outputs(const etgpu_model* model);

/* Thread safety: calls on one model may come from several threads; they run one at a time (one
 * arena). To read the outputs of your own execute, hold your own lock across etgpu_execute and
 * the etgpu_output_* / etgpu_read_output calls that follow it. Different models run in parallel. */
int etgpu_execute(etgpu_model* model, int num_inputs, const void* const* data, const int8_t* dtypes,
                  const int32_t* ranks, const int64_t* const* shapes);
int etgpu_output_dtype(const etgpu_model* model, int index, int8_t* dtype);
int etgpu_output_shape(const etgpu_model* model, int index, int32_t* rank, int64_t* shape /* [8] */);
int etgpu_read_output(etgpu_model* model, int index, void* dst, size_t dst_bytes);

/* Run statistics as JSON (engine, executions, memory). Returns the length needed (excluding NUL). */
size_t etgpu_stats_json(const etgpu_model* model, char* buffer, size_t size);

const char* etgpu_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ETGPU_ETGPU_H_ */
