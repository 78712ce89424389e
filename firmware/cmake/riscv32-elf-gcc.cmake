# Toolchain: Debian's riscv64-unknown-elf-gcc (multilib, builds rv32) with
# picolibc. The ISA comes from the caller as WAND_MARCH / WAND_MABI (the
# Python target registry, wand_assets/core/targets.py); nothing here names one.

if(WAND_TOOLCHAIN_INCLUDED)
  return()
endif()
set(WAND_TOOLCHAIN_INCLUDED TRUE)

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)
set(CMAKE_CROSSCOMPILING ON)

set(WAND_TOOLCHAIN_PREFIX "riscv64-unknown-elf-" CACHE STRING
    "Prefix of the bare-metal RISC-V GCC tools")
set(CMAKE_C_COMPILER "${WAND_TOOLCHAIN_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${WAND_TOOLCHAIN_PREFIX}g++")
set(CMAKE_ASM_COMPILER "${WAND_TOOLCHAIN_PREFIX}gcc")
set(CMAKE_AR "${WAND_TOOLCHAIN_PREFIX}ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${WAND_TOOLCHAIN_PREFIX}ranlib" CACHE FILEPATH "")
set(CMAKE_SIZE "${WAND_TOOLCHAIN_PREFIX}size" CACHE FILEPATH "")

# try_compile projects see the ISA too, and must not try to link a program.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WAND_MARCH WAND_MABI)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

if(NOT WAND_MARCH OR NOT WAND_MABI)
  message(FATAL_ERROR
    "WAND_MARCH and WAND_MABI must be set (from wand_assets.core.targets), e.g. "
    "-DWAND_MARCH=<Target.gcc_march> -DWAND_MABI=<Target.gcc_mabi>")
endif()

set(_wand_isa_flags "-march=${WAND_MARCH} -mabi=${WAND_MABI} -mcmodel=medany")
set(CMAKE_C_FLAGS_INIT "${_wand_isa_flags} --specs=picolibc.specs")
set(CMAKE_CXX_FLAGS_INIT "${_wand_isa_flags} --specs=picolibc.specs")
set(CMAKE_ASM_FLAGS_INIT "${_wand_isa_flags}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
