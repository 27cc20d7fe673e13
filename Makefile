# etgpu developer commands. `make setup` creates .venv with pinned dependencies; `make test` builds
# and runs every test that this machine can run (GPU tests skip with a reason when no GPU exists).
PYTHON ?= $(CURDIR)/.venv/bin/python
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CMAKE ?= $(dir $(PYTHON))cmake
CMAKE_ARGS ?=
JOBS ?= $(shell nproc)
export ETGPU_BUILD_DIR := $(abspath $(BUILD_DIR))
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup build test test-cpp test-python demo pip-smoke readme-ops gpu-test gpu-bench clean

setup:
	bash scripts/setup_env.sh

# A fresh clone sets itself up on first use: `make demo` and `make test` need nothing before.
$(PYTHON):
	bash scripts/setup_env.sh

build: | $(PYTHON)
	$(CMAKE) -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DPython3_EXECUTABLE=$(PYTHON) $(CMAKE_ARGS)
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS)

test-cpp: build
	cd $(BUILD_DIR) && $(dir $(PYTHON))ctest --output-on-failure

test-python: build
	$(PYTHON) -m pytest -q -n $(JOBS) tests

test: test-cpp test-python

# The bundled demo transformer: export, compile, run on the GPU engine (CPU engine without a GPU),
# compare with PyTorch eager.
demo: build
	$(PYTHON) -m etgpu demo

# README.md's supported-op list, regenerated from the lowering registry.
readme-ops:
	$(PYTHON) scripts/gen_supported_ops.py

# `pip install .` into a scratch venv layered on .venv, then the installed `etgpu` command.
pip-smoke:
	bash scripts/pip_smoke.sh $(PYTHON)

gpu-test:
	bash scripts/gpu_test.sh

# Prefill/decode speed of issue #6's five recipes against PyTorch eager and torch.compile, with
# the targets (scripts/gpu_bench.sh: BENCH_ARGS=--quick, BENCH_RECIPES="llama3.2-1b:bf16:none", BENCH_GPUS=0,1).
gpu-bench:
	bash scripts/gpu_bench.sh

clean:
	rm -rf $(BUILD_DIR)
