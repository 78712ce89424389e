// TEST ONLY: a runtime without inference, for protocol conformance tests
// (firmware built with WAND_PROTOCOL_ONLY=ON) and the host fuzzer. It must
// never stand in for a real model: OUTPUT carries a checksum of DATA, not a
// prediction.
//
// Behaviour (documented in PROTOCOL.md, relied on by the host tests):
//   MODEL  accepted unless the payload starts with "BAD!" (exercises ERROR).
//   DATA   remembers the FNV-1a 32-bit hash of the input bytes.
//   OUTPUT total_output_bytes bytes: the hash in little-endian, repeated.

#include <string.h>

#include "runtime.h"

#if defined(__riscv)  // the host fuzz build has no board
#include "board.h"
#endif

struct wand_runtime_t {
  bool model_loaded;
  bool inputs_loaded;
  bool outputs_ready;
  uint32_t output_bytes;
  uint32_t input_hash;
  uint64_t inference_count;
};

// One instance per image: the fake has no allocator to return it to.
static wand_runtime_t fake_runtime;

bool wand_runtime_create(wand_runtime_t** out_runtime) {
  memset(&fake_runtime, 0, sizeof(fake_runtime));
  *out_runtime = &fake_runtime;
  return true;
}

bool wand_runtime_load_model(wand_runtime_t* runtime, const wand_iospec_t* spec,
                             const uint8_t* module_data, size_t module_size) {
  wand_runtime_unload_model(runtime);
  if (module_size >= 4 && memcmp(module_data, "BAD!", 4) == 0) return false;
  runtime->model_loaded = true;
  runtime->output_bytes = spec->total_output_bytes;
  return true;
}

void wand_runtime_unload_model(wand_runtime_t* runtime) {
  runtime->model_loaded = false;
  runtime->inputs_loaded = false;
  runtime->outputs_ready = false;
}

bool wand_runtime_set_inputs(wand_runtime_t* runtime, const uint8_t* data,
                             size_t size) {
  if (!runtime->model_loaded) return false;
  uint32_t hash = 2166136261u;
  for (size_t i = 0; i < size; ++i) {
    hash = (hash ^ data[i]) * 16777619u;
  }
  runtime->input_hash = hash;
  runtime->inputs_loaded = true;
  runtime->outputs_ready = false;
  return true;
}

bool wand_runtime_invoke(wand_runtime_t* runtime) {
  if (!runtime->inputs_loaded) return false;
  runtime->outputs_ready = true;
  ++runtime->inference_count;
  return true;
}

bool wand_runtime_read_outputs(wand_runtime_t* runtime, uint8_t* out,
                               size_t capacity, size_t* out_size) {
  if (!runtime->outputs_ready || capacity < runtime->output_bytes) return false;
  for (uint32_t i = 0; i < runtime->output_bytes; ++i) {
    out[i] = (uint8_t)(runtime->input_hash >> (8u * (i % 4u)));
  }
  *out_size = runtime->output_bytes;
  return true;
}

void wand_runtime_get_stats(wand_runtime_t* runtime,
                            wand_runtime_stats_t* out) {
  memset(out, 0, sizeof(*out));
#if defined(__riscv)
  out->total_instructions = wand_board_read_counters().instructions;
#endif
  out->inference_count = runtime->inference_count;
}
