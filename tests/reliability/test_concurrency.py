"""Threads. ctypes releases the GIL during foreign calls, so these threads really run the C++
runtime concurrently. Two Models of one program share nothing mutable; one Model shared by
threads is safe: the executor serializes calls (a mutex), and Model.run holds the Model's lock
from execute to its last output read so each caller gets its own results."""

import ctypes
import threading

import torch

import etgpu
from etgpu.runtime import _library
from models import SEQ_MAX, elementwise_program, elementwise_reference
from parity import assert_close

ITERATIONS = 60


def run_threads(target, count):
    errors = []

    def guarded(index):
        try:
            target(index)
        except BaseException as e:  # noqa: BLE001 - reported below with the thread's index
            errors.append(f"thread {index}: {e!r}")

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def check_calls(model, index):
    """Runs ITERATIONS calls with shapes of its own and checks every result."""
    generator = torch.Generator().manual_seed(index)
    for step in range(ITERATIONS):
        seq = 3 + (index * 7 + step) % (SEQ_MAX - 2)
        x, y = torch.randn(seq, 3, generator=generator), torch.randn(seq, 3, generator=generator)
        for actual, expected in zip(model.run([x, y]), elementwise_reference(x, y)):
            assert_close(actual, expected, what=f"step {step}")


def test_two_models_of_one_program_in_parallel():
    data = elementwise_program()
    models = [etgpu.Model(data, device="cpu") for _ in range(2)]
    run_threads(lambda i: check_calls(models[i], i), 2)


def test_one_model_shared_by_threads():
    model = etgpu.Model(elementwise_program(), device="cpu")
    run_threads(lambda i: check_calls(model, i), 4)
    assert model.stats()["executions"] == 4 * ITERATIONS


def test_raw_c_api_calls_from_threads_are_memory_safe():
    """Without Model.run's lock: etgpu_execute / etgpu_output_shape / etgpu_read_output from
    four threads at once, with different shapes. Each call must succeed and see a consistent
    state (an output shape some call produced); without the executor's mutex one thread
    rebuilds the resolved nodes while another runs them."""
    lib = _library()
    model = etgpu.Model(elementwise_program(), device="cpu")
    handle = model._handle
    out = torch.empty(SEQ_MAX, 3)

    def hammer(index):
        for step in range(ITERATIONS * 3):
            seq = 3 + (index * 13 + step) % (SEQ_MAX - 2)
            x, y = torch.randn(seq, 3), torch.randn(seq, 3)
            data = (ctypes.c_void_p * 2)(x.data_ptr(), y.data_ptr())
            dtypes = (ctypes.c_int8 * 2)(0, 0)
            ranks = (ctypes.c_int32 * 2)(2, 2)
            dims = [(ctypes.c_int64 * 2)(seq, 3) for _ in range(2)]
            shapes = (ctypes.POINTER(ctypes.c_int64) * 2)(*[ctypes.cast(d, ctypes.POINTER(ctypes.c_int64)) for d in dims])
            assert lib.etgpu_execute(handle, 2, data, dtypes, ranks, shapes) == 0, lib.etgpu_last_error()
            rank, shape = ctypes.c_int32(), (ctypes.c_int64 * 8)()
            assert lib.etgpu_output_shape(handle, 0, ctypes.byref(rank), shape) == 0
            assert rank.value == 2 and 2 <= shape[0] <= SEQ_MAX and shape[1] == 3
            buffer = out.clone()
            assert lib.etgpu_read_output(handle, 0, ctypes.c_void_p(buffer.data_ptr()), buffer.numel() * 4) == 0, \
                lib.etgpu_last_error()

    run_threads(hammer, 4)
    assert model.stats()["executions"] == 4 * ITERATIONS * 3
    check_calls(model, 99)  # still correct afterwards


def test_close_while_other_threads_run():
    """close() waits for a run in progress instead of freeing the model under it."""
    model = etgpu.Model(elementwise_program(), device="cpu")
    started = threading.Event()

    def runner_or_closer(index):
        if index == 1:
            started.wait()
            model.close()
            return
        for step in range(ITERATIONS):
            try:
                model.run([torch.randn(SEQ_MAX, 3), torch.randn(SEQ_MAX, 3)])
            except etgpu.runtime.EtGpuError as e:
                assert "null argument" in str(e), str(e)  # the model was closed: a clean error
                return
            started.set()

    run_threads(runner_or_closer, 2)
