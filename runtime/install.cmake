# Installs the libraries, headers and a CMake package: find_package(etgpu) -> etgpu::etgpu
# (and etgpu::etgpu_executorch when built).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(ETGPU_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR} CACHE STRING "Where libraries are installed")
set(ETGPU_INSTALL_TARGETS etgpu)
if(TARGET etgpu_executorch)
  list(APPEND ETGPU_INSTALL_TARGETS etgpu_executorch)
endif()
install(TARGETS ${ETGPU_INSTALL_TARGETS} EXPORT etgpuTargets
        LIBRARY DESTINATION ${ETGPU_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/etgpu DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "etgpu.h")
install(EXPORT etgpuTargets NAMESPACE etgpu:: DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/etgpuConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfig.cmake INSTALL_DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/etgpuConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/etgpuConfigVersion.cmake
        DESTINATION ${ETGPU_INSTALL_LIBDIR}/cmake/etgpu)
