# Adds the IREE runtime from IREE_SOURCE_DIR and sets WAND_IREE_LIBRARIES.
# Fails early, naming IREE_SOURCE_DIR, if the tree is missing, is not
# v${WAND_IREE_VERSION} (the installed compiler's release, passed in by
# wand_assets), or lacks its two submodules.

if(NOT WAND_IREE_VERSION MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  message(FATAL_ERROR "WAND_IREE_VERSION='${WAND_IREE_VERSION}' is not an IREE release X.Y.Z: pass the installed iree-base-compiler's (pyproject.toml pins it; wand_assets.device.firmware_build.IREE_SOURCE_VERSION), or configure with -DWAND_PROTOCOL_ONLY=ON for the test-only protocol firmware.")
endif()
set(_iree_hint "Set IREE_SOURCE_DIR to an IREE source tree at tag v${WAND_IREE_VERSION} (with third_party/flatcc and third_party/printf), or configure with -DWAND_PROTOCOL_ONLY=ON for the test-only protocol firmware.")
if(NOT IREE_SOURCE_DIR)
  message(FATAL_ERROR "IREE_SOURCE_DIR is not set. ${_iree_hint}")
endif()
set(_version_file "${IREE_SOURCE_DIR}/runtime/version.json")
if(NOT EXISTS "${_version_file}")
  message(FATAL_ERROR "IREE_SOURCE_DIR='${IREE_SOURCE_DIR}' is not an IREE source tree (no runtime/version.json). ${_iree_hint}")
endif()
file(READ "${_version_file}" _version_json)
string(JSON _iree_version ERROR_VARIABLE _json_error GET "${_version_json}" "package-version")
# Release tags carry "<version>.dev" in version.json; compare the X.Y.Z part.
string(REGEX MATCH "^[0-9]+\\.[0-9]+\\.[0-9]+" _iree_version_xyz "${_iree_version}")
if(_json_error OR NOT _iree_version_xyz STREQUAL WAND_IREE_VERSION)
  message(FATAL_ERROR "IREE_SOURCE_DIR='${IREE_SOURCE_DIR}' has IREE version '${_iree_version}', expected ${WAND_IREE_VERSION} (the compiler and runtime must match exactly). ${_iree_hint}")
endif()
foreach(_submodule flatcc/include/flatcc printf/src)
  if(NOT EXISTS "${IREE_SOURCE_DIR}/third_party/${_submodule}")
    message(FATAL_ERROR "IREE_SOURCE_DIR='${IREE_SOURCE_DIR}' lacks the submodule third_party/${_submodule}. ${_iree_hint}")
  endif()
endforeach()
if(NOT IREE_HOST_BIN_DIR OR NOT EXISTS "${IREE_HOST_BIN_DIR}/iree-flatcc-cli")
  message(FATAL_ERROR "IREE_HOST_BIN_DIR='${IREE_HOST_BIN_DIR}' has no iree-flatcc-cli; point it at the bin directory of the iree-base-compiler/iree-base-runtime ${WAND_IREE_VERSION} venv.")
endif()
message(STATUS "wand: IREE ${_iree_version} from ${IREE_SOURCE_DIR}")

set(IREE_BUILD_COMPILER OFF CACHE BOOL "" FORCE)
set(IREE_BUILD_TESTS OFF CACHE BOOL "" FORCE)
set(IREE_BUILD_SAMPLES OFF CACHE BOOL "" FORCE)
set(IREE_BUILD_PYTHON_BINDINGS OFF CACHE BOOL "" FORCE)
set(IREE_BUILD_BINDINGS_TFLITE OFF CACHE BOOL "" FORCE)
set(IREE_BUILD_BINDINGS_TFLITE_JAVA OFF CACHE BOOL "" FORCE)
set(IREE_ERROR_ON_MISSING_SUBMODULES OFF CACHE BOOL "" FORCE)  # checked above
set(IREE_ENABLE_WERROR_FLAG OFF CACHE BOOL "" FORCE)  # GCC rv32 warnings in IREE
set(IREE_ENABLE_THREADING OFF CACHE BOOL "" FORCE)
set(IREE_SYNCHRONIZATION_DISABLE_UNSAFE ON CACHE BOOL "" FORCE)
set(IREE_ENABLE_CPUINFO OFF CACHE BOOL "" FORCE)
set(IREE_ENABLE_LIBBACKTRACE OFF CACHE BOOL "" FORCE)
set(IREE_HAL_DRIVER_DEFAULTS OFF CACHE BOOL "" FORCE)
# The inline execution model needs no HAL driver (WAND_INLINE_HAL: the
# hal_inline + hal_loader modules load and call the executables directly).
if(WAND_INLINE_HAL)
  set(IREE_HAL_DRIVER_LOCAL_SYNC OFF CACHE BOOL "" FORCE)
else()
  set(IREE_HAL_DRIVER_LOCAL_SYNC ON CACHE BOOL "" FORCE)
endif()
set(IREE_HAL_EXECUTABLE_LOADER_DEFAULTS OFF CACHE BOOL "" FORCE)
set(IREE_HAL_EXECUTABLE_LOADER_EMBEDDED_ELF ON CACHE BOOL "" FORCE)
set(IREE_HAL_EXECUTABLE_PLUGIN_DEFAULTS OFF CACHE BOOL "" FORCE)
# An image linked at a fixed address has no use for GOT indirection (IREE
# defaults to -fPIC for every library).
set(IREE_ENABLE_POSITION_INDEPENDENT_CODE OFF CACHE BOOL "" FORCE)

# Applies to IREE and to the firmware sources.
add_compile_definitions(
  IREE_PLATFORM_GENERIC=1
  IREE_FILE_IO_ENABLE=0
  IREE_USER_CONFIG_H="${CMAKE_CURRENT_SOURCE_DIR}/src/iree_user_config.h"
)
add_compile_options(-ffunction-sections -fdata-sections)

# The runtime is built for size (WAND_IREE_OPT_FLAGS; firmware/README.md,
# "Runtime configuration", has the measurements). A subdirectory takes the
# flags as they are when it is added; the firmware's own stay as they are.
set(WAND_IREE_OPT_FLAGS "-Os" CACHE STRING "Optimisation flags of the IREE runtime libraries")
set(WAND_IREE_HOT_OPT_FLAGS "-O2" CACHE STRING "Optimisation flags of the IREE runtime's per-invoke hot path")
set(_wand_c_flags_release "${CMAKE_C_FLAGS_RELEASE}")
set(CMAKE_C_FLAGS_RELEASE "${WAND_IREE_OPT_FLAGS} -DNDEBUG")
# SYSTEM: IREE headers are not held to the firmware's -Wall -Wextra -Werror.
add_subdirectory("${IREE_SOURCE_DIR}" iree EXCLUDE_FROM_ALL SYSTEM)
set(CMAKE_C_FLAGS_RELEASE "${_wand_c_flags_release}")
# The per-invoke hot path (the VM interpreter and the dispatch path through
# the HAL, from the instruction profile) keeps the firmware's -O2: it pays in
# instructions per invoke far more than it costs in bytes.
set(_wand_hot_sources
  vm/bytecode/dispatch.c vm/bytecode/module.c vm/stack.c vm/ref.c vm/native_module.c vm/invocation.c vm/list.c
  modules/hal/inline/module.c modules/hal/loader/module.c
  hal/buffer.c hal/command_buffer.c hal/local/inline_command_buffer.c hal/local/local_executable.c
  hal/local/elf/elf_module.c hal/local/loaders/embedded_elf_loader.c hal/utils/deferred_command_buffer.c)
foreach(_source IN LISTS _wand_hot_sources)
  get_filename_component(_dir "${IREE_SOURCE_DIR}/runtime/src/iree/${_source}" DIRECTORY)
  set_source_files_properties("${IREE_SOURCE_DIR}/runtime/src/iree/${_source}"
    DIRECTORY "${_dir}" PROPERTIES COMPILE_OPTIONS "${WAND_IREE_HOT_OPT_FLAGS}")
endforeach()

if(WAND_INLINE_HAL)
  set(WAND_IREE_LIBRARIES
    iree::base
    iree::vm
    iree::modules::hal::inline
    iree::modules::hal::loader
    iree::hal
    iree::hal::local::loaders::embedded_elf_loader
  )
  include(cmake/iree_inline_fixes.cmake)
else()
  set(WAND_IREE_LIBRARIES
    iree::base
    iree::vm
    iree::modules::hal
    iree::hal
    iree::hal::drivers::local_sync::sync_driver
    iree::hal::local::loaders::embedded_elf_loader
  )
endif()
# The model's VM module: the bytecode module (interpreter and verifier) for the
# .vmfb MODEL uploads, or, for WAND_EMITC, the C module compiled in
# (src/module_emitc.c) with IREE's header-only EmitC ops and shims.
if(WAND_EMITC)
  list(APPEND WAND_IREE_LIBRARIES iree::vm::ops iree::vm::ops_emitc iree::vm::shims_emitc)
else()
  list(APPEND WAND_IREE_LIBRARIES iree::vm::bytecode::module)
endif()
