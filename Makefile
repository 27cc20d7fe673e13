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

.PHONY: setup build test test-cpp test-python demo gpu-test clean

setup:
	bash scripts/setup_env.sh

build:
	$(CMAKE) -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DPython3_EXECUTABLE=$(PYTHON) $(CMAKE_ARGS)
	$(CMAKE) --build $(BUILD_DIR) -j $(JOBS)

test-cpp: build
	cd $(BUILD_DIR) && $(dir $(PYTHON))ctest --output-on-failure

test-python: build
	$(PYTHON) -m pytest -q tests

test: test-cpp test-python

gpu-test:
	bash scripts/gpu_test.sh

clean:
	rm -rf $(BUILD_DIR)
