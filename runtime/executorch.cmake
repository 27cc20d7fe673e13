# libetgpu_executorch: the ExecuTorch backend (registers "EtGpuBackend"), linked against the
# executorch wheel's libexecutorch.so. Found through the Python that runs the build, or
# executorch_DIR / CMAKE_PREFIX_PATH.
set(ETGPU_HAVE_EXECUTORCH OFF)
if(NOT ETGPU_EXECUTORCH STREQUAL "OFF")
  if(NOT executorch_DIR)
    find_package(Python3 COMPONENTS Interpreter QUIET)
    if(Python3_Interpreter_FOUND)
      execute_process(
        # `executorch` is a namespace package in the wheel (no __init__.py): spec.origin is None,
        # so the package folder comes from submodule_search_locations.
        COMMAND ${Python3_EXECUTABLE} -c "import importlib.util;s=importlib.util.find_spec('executorch');print(list(s.submodule_search_locations)[0] if s else '')"
        OUTPUT_VARIABLE ETGPU_EXECUTORCH_PY_DIR OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(ETGPU_EXECUTORCH_PY_DIR)
        list(APPEND CMAKE_PREFIX_PATH ${ETGPU_EXECUTORCH_PY_DIR})
      endif()
    endif()
  endif()
  find_package(executorch CONFIG QUIET)
  # A checkout without backend sources (the skeleton) still configures; ON insists on them.
  file(GLOB ETGPU_ET_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/executorch/*.cpp)
  if(NOT ETGPU_ET_SOURCES AND NOT ETGPU_EXECUTORCH STREQUAL "ON")
    message(STATUS "etgpu: no sources in runtime/src/executorch; the ExecuTorch backend is not built")
  elseif(executorch_FOUND AND TARGET executorch::runtime)
    set(ETGPU_HAVE_EXECUTORCH ON)
  elseif(ETGPU_EXECUTORCH STREQUAL "ON")
    message(FATAL_ERROR "ETGPU_EXECUTORCH=ON but find_package(executorch) found no executorch::runtime")
  endif()
endif()
message(STATUS "etgpu: ExecuTorch backend ${ETGPU_HAVE_EXECUTORCH}")

if(ETGPU_HAVE_EXECUTORCH)
  add_library(etgpu_executorch SHARED ${ETGPU_ET_SOURCES})
  target_link_libraries(etgpu_executorch PRIVATE etgpu_core PUBLIC executorch::runtime)
  target_compile_definitions(etgpu_executorch PRIVATE ${EXECUTORCH_COMPILE_DEFINITIONS})
  target_link_options(etgpu_executorch PRIVATE -Wl,--exclude-libs,ALL)
  set_target_properties(etgpu_executorch PROPERTIES BUILD_RPATH "${EXECUTORCH_RUNTIME_LIBRARY_DIR}")
endif()
