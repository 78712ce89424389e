// The IREE runtime behind the protocol: VM instance, local-sync HAL device
// with the embedded-ELF loader, a bytecode module over an aligned heap copy of
// the .vmfb, and synchronous invocation. With WAND_INLINE_HAL (targets with
// the inline-dynamic execution model) there is no HAL device: the hal_inline
// module allocates buffers from a heap allocator and the hal_loader module
// loads and calls the executables through the embedded-ELF loader. Everything an invoke needs besides
// its results (function, argument list, input buffers) is made once per model. Every iree_status_t is checked where
// it is produced; failures are logged and reported as false.

#include <string.h>

#include "board.h"
#include "iree/base/api.h"
#include "iree/hal/api.h"
#include "iree/hal/local/executable_loader.h"
#include "iree/hal/local/loaders/embedded_elf_loader.h"
#if WAND_INLINE_HAL
#include "iree/modules/hal/inline/module.h"
#include "iree/modules/hal/loader/module.h"
#include "iree/modules/hal/types.h"
#else
#include "iree/hal/drivers/local_sync/sync_device.h"
#include "iree/modules/hal/module.h"
#endif
#include "iree/vm/api.h"
#include "iree/vm/bytecode/module.h"
#include "log.h"
#include "runtime.h"

// The archive's rodata segments are aligned to this relative to its start
// (IREE_VM_ARCHIVE_SEGMENT_ALIGNMENT); the copy keeps them aligned in memory.
#define WAND_MODULE_ALIGNMENT 64

struct wand_runtime_t {
  iree_allocator_t host_allocator;
  iree_vm_instance_t* instance;
#if WAND_INLINE_HAL
  iree_hal_allocator_t* device_allocator;  // the hal_inline module's buffers
  iree_vm_module_t* hal_module;            // hal_inline
  iree_vm_module_t* loader_module;         // hal_loader
#else
  iree_hal_device_t* device;
  iree_vm_module_t* hal_module;
#endif
  // The loaded model (all NULL when none).
  void* module_copy;
  iree_vm_module_t* bytecode_module;
  iree_vm_context_t* context;
  iree_vm_function_t function;
  iree_vm_list_t* inputs;
  iree_vm_list_t* outputs;
  wand_iospec_t spec;
  bool inputs_ready;  // the input buffers hold a whole DATA payload
  bool outputs_ready;
  // Measurements.
  wand_board_counters_t last_inference;
  uint64_t inference_count;
};

// Logs and frees a failed |status|; returns true when it was OK.
static bool check(iree_status_t status, const char* what) {
  if (iree_status_is_ok(status)) return true;
  char message[192];
  iree_host_size_t length = 0;
  if (!iree_status_format(status, sizeof(message), message, &length)) {
    strcpy(message, "(status text unavailable)");
  }
  wand_log("runtime: %s failed: %s", what, message);
  iree_status_free(status);
  return false;
}

#if WAND_INLINE_HAL
#define WAND_HAL_MODULE_COUNT 2

static iree_status_t register_hal_types(iree_vm_instance_t* instance) {
  IREE_RETURN_IF_ERROR(iree_hal_module_register_inline_types(instance));
  return iree_hal_module_register_loader_types(instance);
}

// The heap allocator of the hal_inline module, the embedded-ELF loader of the
// hal_loader module, and both modules.
static iree_status_t create_hal(wand_runtime_t* runtime) {
  IREE_RETURN_IF_ERROR(iree_hal_allocator_create_heap(
      iree_make_cstring_view("inline"), runtime->host_allocator,
      runtime->host_allocator, &runtime->device_allocator));
  IREE_RETURN_IF_ERROR(iree_hal_inline_module_create(
      runtime->instance, IREE_HAL_INLINE_MODULE_FLAG_NONE,
      iree_hal_module_debug_sink_null(), runtime->device_allocator,
      runtime->host_allocator, &runtime->hal_module));
  iree_hal_executable_loader_t* loader = NULL;
  IREE_RETURN_IF_ERROR(iree_hal_embedded_elf_loader_create(
      /*plugin_manager=*/NULL, runtime->host_allocator, &loader));
  iree_status_t status = iree_hal_loader_module_create(
      runtime->instance, IREE_HAL_LOADER_MODULE_FLAG_NONE,
      /*loader_count=*/1, &loader, runtime->host_allocator,
      &runtime->loader_module);
  iree_hal_executable_loader_release(loader);
  return status;
}

static void release_hal(wand_runtime_t* runtime) {
  iree_vm_module_release(runtime->loader_module);
  iree_vm_module_release(runtime->hal_module);
  iree_hal_allocator_release(runtime->device_allocator);
  runtime->loader_module = NULL;
  runtime->hal_module = NULL;
  runtime->device_allocator = NULL;
}

static void hal_modules(wand_runtime_t* runtime,
                        iree_vm_module_t* out[WAND_HAL_MODULE_COUNT]) {
  out[0] = runtime->hal_module;
  out[1] = runtime->loader_module;
}

static iree_hal_allocator_t* device_allocator(wand_runtime_t* runtime) {
  return runtime->device_allocator;
}

// Inline HAL buffers are host memory: read them through a mapping.
static iree_status_t read_buffer(wand_runtime_t* runtime,
                                 iree_hal_buffer_t* buffer, void* out,
                                 iree_device_size_t length) {
  (void)runtime;
  return iree_hal_buffer_map_read(buffer, 0, out, length);
}
#else
#define WAND_HAL_MODULE_COUNT 1

static iree_status_t register_hal_types(iree_vm_instance_t* instance) {
  return iree_hal_module_register_all_types(instance);
}

static iree_status_t create_device(iree_allocator_t host_allocator,
                                   iree_hal_device_t** out_device) {
  iree_hal_sync_device_params_t params;
  iree_hal_sync_device_params_initialize(&params);
  iree_hal_executable_loader_t* loader = NULL;
  IREE_RETURN_IF_ERROR(iree_hal_embedded_elf_loader_create(
      /*plugin_manager=*/NULL, host_allocator, &loader));
  iree_string_view_t identifier = iree_make_cstring_view("local-sync");
  iree_hal_allocator_t* device_allocator = NULL;
  iree_status_t status = iree_hal_allocator_create_heap(
      identifier, host_allocator, host_allocator, &device_allocator);
  if (iree_status_is_ok(status)) {
    status = iree_hal_sync_device_create(identifier, &params,
                                         /*loader_count=*/1, &loader,
                                         device_allocator, host_allocator,
                                         out_device);
  }
  iree_hal_allocator_release(device_allocator);
  iree_hal_executable_loader_release(loader);
  return status;
}

static iree_status_t create_hal_module(wand_runtime_t* runtime) {
  iree_hal_device_group_t* group = NULL;
  IREE_RETURN_IF_ERROR(iree_hal_device_group_create_from_device(
      runtime->device, runtime->host_allocator, &group));
  iree_status_t status = iree_hal_module_create(
      runtime->instance, iree_hal_module_device_policy_default(), group,
      IREE_HAL_MODULE_FLAG_SYNCHRONOUS, iree_hal_module_debug_sink_null(),
      runtime->host_allocator, &runtime->hal_module);
  iree_hal_device_group_release(group);
  return status;
}

static iree_status_t create_hal(wand_runtime_t* runtime) {
  IREE_RETURN_IF_ERROR(create_device(runtime->host_allocator, &runtime->device));
  return create_hal_module(runtime);
}

static void release_hal(wand_runtime_t* runtime) {
  iree_vm_module_release(runtime->hal_module);
  iree_hal_device_release(runtime->device);
  runtime->hal_module = NULL;
  runtime->device = NULL;
}

static void hal_modules(wand_runtime_t* runtime,
                        iree_vm_module_t* out[WAND_HAL_MODULE_COUNT]) {
  out[0] = runtime->hal_module;
}

static iree_hal_allocator_t* device_allocator(wand_runtime_t* runtime) {
  return iree_hal_device_allocator(runtime->device);
}

static iree_status_t read_buffer(wand_runtime_t* runtime,
                                 iree_hal_buffer_t* buffer, void* out,
                                 iree_device_size_t length) {
  return iree_hal_device_transfer_d2h(
      runtime->device, buffer, 0, out, length,
      IREE_HAL_TRANSFER_BUFFER_FLAG_DEFAULT, iree_infinite_timeout());
}
#endif  // WAND_INLINE_HAL

bool wand_runtime_create(wand_runtime_t** out_runtime) {
  *out_runtime = NULL;
  iree_allocator_t host_allocator = iree_allocator_system();
  wand_runtime_t* runtime = NULL;
  if (!check(iree_allocator_malloc(host_allocator, sizeof(*runtime),
                                   (void**)&runtime),
             "runtime allocation")) {
    return false;
  }
  memset(runtime, 0, sizeof(*runtime));
  runtime->host_allocator = host_allocator;
  bool ok = check(iree_vm_instance_create(IREE_VM_TYPE_CAPACITY_DEFAULT,
                                          host_allocator, &runtime->instance),
                  "iree_vm_instance_create") &&
            check(register_hal_types(runtime->instance),
                  "registering the HAL module types") &&
            check(create_hal(runtime), "HAL device and module creation");
  if (!ok) {
    release_hal(runtime);
    iree_vm_instance_release(runtime->instance);
    iree_allocator_free(host_allocator, runtime);
    return false;
  }
  *out_runtime = runtime;
  return true;
}

void wand_runtime_unload_model(wand_runtime_t* runtime) {
  iree_vm_list_release(runtime->outputs);
  iree_vm_list_release(runtime->inputs);
  iree_vm_context_release(runtime->context);
  iree_vm_module_release(runtime->bytecode_module);
  // The module referenced the copy without owning it: free it last.
  if (runtime->module_copy) {
    iree_allocator_free_aligned(runtime->host_allocator, runtime->module_copy);
  }
  runtime->outputs = NULL;
  runtime->inputs = NULL;
  runtime->context = NULL;
  runtime->bytecode_module = NULL;
  runtime->module_copy = NULL;
  runtime->inputs_ready = false;
  runtime->outputs_ready = false;
}

static iree_hal_element_type_t element_type_of(wand_dtype_t dtype) {
  switch (dtype) {
    case WAND_DTYPE_I8: return IREE_HAL_ELEMENT_TYPE_SINT_8;
    case WAND_DTYPE_U8: return IREE_HAL_ELEMENT_TYPE_UINT_8;
    case WAND_DTYPE_I16: return IREE_HAL_ELEMENT_TYPE_SINT_16;
    case WAND_DTYPE_U16: return IREE_HAL_ELEMENT_TYPE_UINT_16;
    case WAND_DTYPE_I32: return IREE_HAL_ELEMENT_TYPE_SINT_32;
    case WAND_DTYPE_U32: return IREE_HAL_ELEMENT_TYPE_UINT_32;
    case WAND_DTYPE_I64: return IREE_HAL_ELEMENT_TYPE_SINT_64;
    case WAND_DTYPE_U64: return IREE_HAL_ELEMENT_TYPE_UINT_64;
    case WAND_DTYPE_F16: return IREE_HAL_ELEMENT_TYPE_FLOAT_16;
    case WAND_DTYPE_F32: return IREE_HAL_ELEMENT_TYPE_FLOAT_32;
    case WAND_DTYPE_F64: return IREE_HAL_ELEMENT_TYPE_FLOAT_64;
  }
  return IREE_HAL_ELEMENT_TYPE_NONE;
}

// The input buffers live as long as the model: DATA overwrites their
// contents instead of allocating, copying and freeing per window. Execution is
// synchronous, so no invoke is reading them while DATA writes.
static bool create_input_views(wand_runtime_t* runtime) {
  const wand_iospec_t* spec = &runtime->spec;
  const iree_hal_buffer_params_t params = {
      .type = IREE_HAL_MEMORY_TYPE_DEVICE_LOCAL |
              IREE_HAL_MEMORY_TYPE_HOST_VISIBLE,
      .usage = IREE_HAL_BUFFER_USAGE_DEFAULT | IREE_HAL_BUFFER_USAGE_MAPPING,
  };
  for (uint32_t i = 0; i < spec->num_inputs; ++i) {
    iree_hal_dim_t shape[WAND_MAX_INPUT_DIMS];
    for (uint32_t d = 0; d < spec->input_rank[i]; ++d) {
      shape[d] = spec->input_shape[i][d];
    }
    iree_hal_buffer_t* buffer = NULL;
    if (!check(iree_hal_allocator_allocate_buffer(
                   device_allocator(runtime), params,
                   spec->input_bytes[i], &buffer),
               "input buffer allocation")) {
      return false;
    }
    iree_hal_buffer_view_t* view = NULL;
    iree_status_t status = iree_hal_buffer_view_create(
        buffer, spec->input_rank[i], shape, element_type_of(spec->dtype),
        IREE_HAL_ENCODING_TYPE_DENSE_ROW_MAJOR, runtime->host_allocator, &view);
    iree_hal_buffer_release(buffer);
    if (!check(status, "input buffer view creation")) return false;
    iree_vm_ref_t ref = iree_hal_buffer_view_move_ref(view);
    if (!check(iree_vm_list_push_ref_move(runtime->inputs, &ref),
               "input list push")) {
      iree_vm_ref_release(&ref);
      return false;
    }
  }
  return true;
}

bool wand_runtime_load_model(wand_runtime_t* runtime, const wand_iospec_t* spec,
                             const uint8_t* module_data, size_t module_size) {
  wand_runtime_unload_model(runtime);
  runtime->spec = *spec;

  if (!check(iree_allocator_malloc_aligned(runtime->host_allocator, module_size,
                                           WAND_MODULE_ALIGNMENT, 0,
                                           &runtime->module_copy),
             "module copy allocation")) {
    return false;
  }
  memcpy(runtime->module_copy, module_data, module_size);

  bool ok =
      check(iree_vm_bytecode_module_create(
                runtime->instance, IREE_VM_BYTECODE_MODULE_FLAG_NONE,
                iree_make_const_byte_span(runtime->module_copy, module_size),
                iree_allocator_null(), runtime->host_allocator,
                &runtime->bytecode_module),
            "iree_vm_bytecode_module_create");
  if (ok) {
    iree_vm_module_t* modules[WAND_HAL_MODULE_COUNT + 1];
    hal_modules(runtime, modules);
    modules[WAND_HAL_MODULE_COUNT] = runtime->bytecode_module;
    ok = check(iree_vm_context_create_with_modules(
                   runtime->instance, IREE_VM_CONTEXT_FLAG_NONE,
                   IREE_ARRAYSIZE(modules), modules, runtime->host_allocator,
                   &runtime->context),
               "iree_vm_context_create_with_modules");
  }
  if (ok) {
    ok = check(iree_vm_context_resolve_function(
                   runtime->context, iree_make_cstring_view(spec->entry_func),
                   &runtime->function),
               "resolving the IOSPEC entry_func");
  }
  if (ok) {
    iree_host_size_t argument_count = 0, result_count = 0;
    iree_vm_function_signature_t signature =
        iree_vm_function_signature(&runtime->function);
    ok = check(iree_vm_function_call_count_arguments_and_results(
                   &signature, &argument_count, &result_count),
               "reading the entry function signature");
    if (ok && (argument_count != spec->num_inputs ||
               result_count != spec->num_outputs)) {
      wand_log("runtime: %s takes %lu inputs and returns %lu outputs; IOSPEC "
               "says %lu and %lu",
               spec->entry_func, (unsigned long)argument_count,
               (unsigned long)result_count, (unsigned long)spec->num_inputs,
               (unsigned long)spec->num_outputs);
      ok = false;
    }
  }
  if (ok) {
    ok = check(iree_vm_list_create(iree_vm_make_undefined_type_def(),
                                   spec->num_inputs, runtime->host_allocator,
                                   &runtime->inputs),
               "input list creation") &&
         check(iree_vm_list_create(iree_vm_make_undefined_type_def(),
                                   spec->num_outputs, runtime->host_allocator,
                                   &runtime->outputs),
               "output list creation");
  }
  if (ok) ok = create_input_views(runtime);
  if (!ok) wand_runtime_unload_model(runtime);
  return ok;
}

bool wand_runtime_set_inputs(wand_runtime_t* runtime, const uint8_t* data,
                             size_t size) {
  runtime->outputs_ready = false;
  runtime->inputs_ready = false;
  if (!runtime->context) return false;
  const wand_iospec_t* spec = &runtime->spec;
  if (size != spec->total_input_bytes) return false;
  size_t offset = 0;
  for (uint32_t i = 0; i < spec->num_inputs; ++i) {
    iree_hal_buffer_view_t* view =
        iree_vm_list_get_buffer_view_assign(runtime->inputs, i);
    if (view == NULL) {
      wand_log("runtime: input %lu is not a buffer view", (unsigned long)i);
      return false;
    }
    if (!check(iree_hal_buffer_map_write(iree_hal_buffer_view_buffer(view), 0,
                                         data + offset, spec->input_bytes[i]),
               "input write")) {
      return false;
    }
    offset += spec->input_bytes[i];
  }
  runtime->inputs_ready = true;
  return true;
}

bool wand_runtime_invoke(wand_runtime_t* runtime) {
  runtime->outputs_ready = false;
  if (!runtime->context || !runtime->inputs_ready) return false;
  if (!check(iree_vm_list_resize(runtime->outputs, 0), "output list reset")) {
    return false;
  }
  const wand_board_counters_t before = wand_board_read_counters();
  iree_status_t status =
      iree_vm_invoke(runtime->context, runtime->function,
                     IREE_VM_INVOCATION_FLAG_NONE, /*policy=*/NULL,
                     runtime->inputs, runtime->outputs,
                     runtime->host_allocator);
  const wand_board_counters_t after = wand_board_read_counters();
  if (!check(status, "iree_vm_invoke")) return false;
  runtime->last_inference.instructions = after.instructions - before.instructions;
  runtime->last_inference.cycles = after.cycles - before.cycles;
  runtime->last_inference.mtime = after.mtime - before.mtime;
  ++runtime->inference_count;
  runtime->outputs_ready = true;
  return true;
}

bool wand_runtime_read_outputs(wand_runtime_t* runtime, uint8_t* out,
                               size_t capacity, size_t* out_size) {
  *out_size = 0;
  if (!runtime->outputs_ready) return false;
  const wand_iospec_t* spec = &runtime->spec;
  if (capacity < spec->total_output_bytes) return false;
  if (iree_vm_list_size(runtime->outputs) != spec->num_outputs) {
    wand_log("runtime: model returned %lu outputs, IOSPEC says %lu",
             (unsigned long)iree_vm_list_size(runtime->outputs),
             (unsigned long)spec->num_outputs);
    return false;
  }
  size_t offset = 0;
  for (uint32_t i = 0; i < spec->num_outputs; ++i) {
    iree_hal_buffer_view_t* view =
        iree_vm_list_get_buffer_view_assign(runtime->outputs, i);
    if (view == NULL) {
      wand_log("runtime: output %lu is not a buffer view", (unsigned long)i);
      return false;
    }
    const size_t expected = (size_t)spec->output_length[i] * spec->output_elem_size;
    if (iree_hal_buffer_view_element_type(view) !=
            element_type_of(spec->dtype) ||
        iree_hal_buffer_view_byte_length(view) != expected) {
      wand_log("runtime: output %lu has %lu bytes of type 0x%08lx; IOSPEC "
               "expects %lu bytes",
               (unsigned long)i,
               (unsigned long)iree_hal_buffer_view_byte_length(view),
               (unsigned long)iree_hal_buffer_view_element_type(view),
               (unsigned long)expected);
      return false;
    }
    if (!check(read_buffer(runtime, iree_hal_buffer_view_buffer(view),
                           out + offset, expected),
               "output read")) {
      return false;
    }
    offset += expected;
  }
  *out_size = offset;
  return true;
}

void wand_runtime_get_stats(wand_runtime_t* runtime,
                            wand_runtime_stats_t* out) {
  memset(out, 0, sizeof(*out));
  out->total_instructions = wand_board_read_counters().instructions;
  iree_hal_allocator_statistics_t statistics;
  memset(&statistics, 0, sizeof(statistics));
  iree_hal_allocator_query_statistics(device_allocator(runtime), &statistics);
#if IREE_STATISTICS_ENABLE
  out->host_bytes_peak = statistics.host_bytes_peak;
  out->host_bytes_allocated = statistics.host_bytes_allocated;
  out->host_bytes_freed = statistics.host_bytes_freed;
  out->device_bytes_peak = statistics.device_bytes_peak;
  out->device_bytes_allocated = statistics.device_bytes_allocated;
  out->device_bytes_freed = statistics.device_bytes_freed;
#endif  // IREE_STATISTICS_ENABLE
  out->inference_instructions = runtime->last_inference.instructions;
  out->inference_cycles = runtime->last_inference.cycles;
  out->inference_mtime_ticks = runtime->last_inference.mtime;
  out->mtime_hz = WAND_BOARD_MTIME_HZ;
  out->inference_count = runtime->inference_count;
  out->heap_bytes_peak = wand_board_heap_peak_bytes();
  out->stack_bytes_peak = wand_board_stack_peak_bytes();
}
