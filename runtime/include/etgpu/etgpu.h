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
void etgpu_close(etgpu_model* model);

int etgpu_num_inputs(const etgpu_model* model);
int etgpu_num_outputs(const etgpu_model* model);

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
