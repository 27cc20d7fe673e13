# Install rules, split into components so each consumer takes only what it needs:
#   runtime     the shared libraries
#   development the public header (etgpu.h, the C API) and the CMake package:
#               find_package(etgpu) -> etgpu::etgpu (and etgpu::etgpu_executorch when built)
#   python      the flatc-generated IR reader (etgpu/ir), for the pip wheel
# `cmake --install build --prefix P` installs runtime + development; the pip build (scikit-build-core,
# which defines SKBUILD) installs runtime + python into the wheel's etgpu/ package.
#
# Only the C API is public: the C++ classes (model.h, status.h) expose the executor's internal
# headers and are not exported from libetgpu.so (static etgpu_core behind --exclude-libs), so
# installing them would promise an API the library does not provide.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(SKBUILD)
  set(_etgpu_default_libdir etgpu/lib)  # python/etgpu/_paths.py looks here
  set(_etgpu_default_python_ir ON)
else()
  set(_etgpu_default_libdir ${CMAKE_INSTALL_LIBDIR})
  set(_etgpu_default_python_ir OFF)
endif()
set(ETGPU_INSTALL_LIBDIR ${_etgpu_default_libdir} CACHE STRING "Where libraries are installed")
option(ETGPU_INSTALL_PYTHON_IR "Install the generated Python IR package (etgpu/ir)" ${_etgpu_default_python_ir})

set(ETGPU_INSTALL_TARGETS etgpu)
if(TARGET etgpu_executorch)
  list(APPEND ETGPU_INSTALL_TARGETS etgpu_executorch)
  # The backend finds libexecutorch.so where the executorch wheel keeps it: beside it in a wheel
  # install (site-packages/executorch/lib), else where the build found it.
  if(SKBUILD)
    set_target_properties(etgpu_executorch PROPERTIES INSTALL_RPATH "$ORIGIN/../../executorch/lib")
  else()
    set_target_properties(etgpu_executorch PROPERTIES INSTALL_RPATH "${EXECUTORCH_RUNTIME_LIBRARY_DIR}")
  endif()
endif()

install(TARGETS ${ETGPU_INSTALL_TARGETS} EXPORT etgpuTargets
        LIBRARY DESTINATION ${ETGPU_INSTALL_LIBDIR} COMPONENT runtime
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/etgpu/etgpu.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/etgpu COMPONENT development)
install(EXPORT etgpuTargets NAMESPACE etgpu:: DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu
        COMPONENT development)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/etgpuConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfig.cmake INSTALL_DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/etgpuConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfigVersion.cmake
        DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu COMPONENT development)

if(ETGPU_INSTALL_PYTHON_IR)
  # The wheel's package root is the install prefix (site-packages), so this lands in etgpu/ir.
  install(DIRECTORY ${ETGPU_GENERATED_PYTHON_DIR}/etgpu/ir DESTINATION etgpu COMPONENT python
          FILES_MATCHING PATTERN "*.py")
endif()
