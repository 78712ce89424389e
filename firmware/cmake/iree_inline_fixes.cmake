# IREE 3.11's inline HAL leaks every buffer the module allocates (~17.9 KB per
# inference of the Magic Wand model; ../shared/docs/PLATFORM_FACTS.md). The
# inline module wraps each HAL buffer's mapping in a VM buffer initialized in
# place, whose allocator frees the wrapper; but
#  - vm/buffer.c's destroy assumes every VM buffer has the [prefix | data]
#    layout of iree_vm_buffer_create and looks for an aligned-allocation base
#    pointer in front of it, which the wrapper does not have: the free never
#    reaches the wrapper's allocator, so the mapping (which retains the HAL
#    buffer) is never released;
#  - modules/hal/inline/module.c never records the wrapper's host allocator,
#    so the wrapper itself is not freed either.
# Upstream describes the problem in IREE PR #24827 (after 3.11). The fixes are
# our own two small edits, applied at configure time to COPIES of the two files
# in the build directory; the source tree is left untouched. Each edit checks
# that the text it replaces is there, so a different IREE release fails here
# instead of building an unfixed runtime.

set(_wand_fix_dir "${CMAKE_BINARY_DIR}/iree_inline_fixes")

# Copies ${IREE_SOURCE_DIR}/runtime/src/iree/<relative> with <old> replaced by
# <new> into the fix directory and swaps it into <target> (the OBJECT library
# iree_cc_library compiles the sources in).
function(wand_fix_iree_source target relative old new)
  set(_original "${IREE_SOURCE_DIR}/runtime/src/iree/${relative}")
  file(READ "${_original}" _text)
  string(FIND "${_text}" "${old}" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "wand: the inline-HAL fix for ${relative} does not apply: its expected text is not in ${_original} (is IREE_SOURCE_DIR IREE ${WAND_IREE_VERSION}?)")
  endif()
  string(REPLACE "${old}" "${new}" _fixed "${_text}")
  set(_copy "${_wand_fix_dir}/${relative}")
  set(_previous "")
  if(EXISTS "${_copy}")
    file(READ "${_copy}" _previous)
  endif()
  if(NOT _previous STREQUAL _fixed)  # rewritten only when it changes (no needless rebuilds)
    file(WRITE "${_copy}" "${_fixed}")
  endif()
  get_target_property(_sources ${target} SOURCES)
  get_target_property(_source_dir ${target} SOURCE_DIR)
  get_filename_component(_name "${relative}" NAME)
  set(_swapped "")
  set(_found FALSE)
  foreach(_source IN LISTS _sources)
    get_filename_component(_absolute "${_source}" ABSOLUTE BASE_DIR "${_source_dir}")
    if(_absolute STREQUAL _original)
      list(APPEND _swapped "${_copy}")
      set(_found TRUE)
    else()
      list(APPEND _swapped "${_source}")
    endif()
  endforeach()
  if(NOT _found)
    message(FATAL_ERROR "wand: ${target} does not compile ${_original}; the inline-HAL fix cannot replace it")
  endif()
  set_property(TARGET ${target} PROPERTY SOURCES ${_swapped})
  set_source_files_properties("${_copy}" TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${WAND_IREE_HOT_OPT_FLAGS}")
  message(STATUS "wand: ${relative} compiled from a fixed copy (${_copy})")
endfunction()

wand_fix_iree_source(iree_vm_impl.objects vm/buffer.c
"  iree_vm_buffer_t* buffer = (iree_vm_buffer_t*)ptr;
  iree_allocator_free_aligned(buffer->allocator, buffer);"
"  iree_vm_buffer_t* buffer = (iree_vm_buffer_t*)ptr;
  // wand (inline-HAL leak fix, see IREE PR #24827): only buffers made by
  // iree_vm_buffer_create/clone keep their data right after the handle; one
  // initialized in place (the inline HAL's storage wrapper) is freed by its
  // own allocator.
  if (buffer->data.data != (uint8_t*)buffer + iree_sizeof_struct(*buffer)) {
    iree_allocator_free(buffer->allocator, buffer);
  } else {
    iree_allocator_free_aligned(buffer->allocator, buffer);
  }")

wand_fix_iree_source(iree_modules_hal_inline_inline.objects modules/hal/inline/module.c
"      z0, iree_allocator_malloc(host_allocator, sizeof(*storage),
                                (void**)&storage));
"
"      z0, iree_allocator_malloc(host_allocator, sizeof(*storage),
                                (void**)&storage));
  storage->host_allocator = host_allocator;  // wand: the wrapper's destroy frees with it
")
