# cmake -P script (run by ctest): install the etgpu build, then configure, build and run the
# consumer project against the installed package only.
foreach(var ETGPU_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR MODEL_WRITER GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer_test.cmake needs -D${var}=...")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
run_step("install" ${CMAKE_COMMAND} --install ${ETGPU_BUILD_DIR} --prefix ${prefix})
foreach(installed include/etgpu/etgpu.h)
  if(NOT EXISTS ${prefix}/${installed})
    message(FATAL_ERROR "the install lacks ${installed}")
  endif()
endforeach()
# Only the C API is public; internal headers must not leak into the install.
file(GLOB_RECURSE headers RELATIVE ${prefix}/include ${prefix}/include/*)
if(NOT headers STREQUAL "etgpu/etgpu.h")
  message(FATAL_ERROR "unexpected installed headers: ${headers}")
endif()
run_step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
         -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
         "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_LINK_FLAGS}")
run_step("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step("write model" ${MODEL_WRITER} ${WORK_DIR}/add.etgpu)
run_step("run consumer" ${WORK_DIR}/build/etgpu_consumer ${WORK_DIR}/add.etgpu)
