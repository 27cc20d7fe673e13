# FlatBuffers: the compiler generates the IR's C++ and Python code at build time; the headers
# are the C++ runtime. FLATC and FLATBUFFERS_INCLUDE_DIR may point at a carried copy.
find_program(FLATC NAMES flatc HINTS ${FLATBUFFERS_ROOT}/bin ENV FLATBUFFERS_ROOT PATH_SUFFIXES bin REQUIRED)
find_path(FLATBUFFERS_INCLUDE_DIR flatbuffers/flatbuffers.h HINTS ${FLATBUFFERS_ROOT}/include ENV FLATBUFFERS_ROOT
          PATH_SUFFIXES include REQUIRED)

set(ETGPU_GENERATED_DIR ${CMAKE_CURRENT_BINARY_DIR}/generated)
set(ETGPU_GENERATED_PYTHON_DIR ${CMAKE_CURRENT_BINARY_DIR}/python)

function(etgpu_generate_schema schema)
  set(header ${ETGPU_GENERATED_DIR}/etgpu_generated.h)
  set(py_stamp ${ETGPU_GENERATED_PYTHON_DIR}/etgpu/ir/__init__.py)
  add_custom_command(
    OUTPUT ${header} ${py_stamp}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${ETGPU_GENERATED_DIR} ${ETGPU_GENERATED_PYTHON_DIR}
    COMMAND ${FLATC} --cpp --scoped-enums -o ${ETGPU_GENERATED_DIR} ${schema}
    COMMAND ${FLATC} --python --gen-object-api -o ${ETGPU_GENERATED_PYTHON_DIR} ${schema}
    DEPENDS ${schema}
    COMMENT "Generating etgpu IR code from ${schema}")
  add_custom_target(etgpu_schema ALL DEPENDS ${header} ${py_stamp})
  add_library(etgpu_schema_headers INTERFACE)
  add_dependencies(etgpu_schema_headers etgpu_schema)
  target_include_directories(etgpu_schema_headers INTERFACE
    $<BUILD_INTERFACE:${ETGPU_GENERATED_DIR}> $<BUILD_INTERFACE:${FLATBUFFERS_INCLUDE_DIR}>)
endfunction()
