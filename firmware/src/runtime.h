// The inference runtime behind the protocol: load a compiled model, take
// inputs, run, hand back outputs and statistics.
//
// Two implementations link against this contract:
//   runtime_iree.c  the real one (IREE VM + local-sync HAL, embedded ELF).
//   runtime_fake.c  TEST ONLY (WAND_PROTOCOL_ONLY builds and the host fuzzer):
//                   no inference; OUTPUT is derived from DATA by a checksum.
//
// Every function returns false on failure after logging the reason; the
// protocol layer turns that into an ERROR reply. Sizes have already been
// validated against the IOSPEC by the caller.

#ifndef WAND_RUNTIME_H_
#define WAND_RUNTIME_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iospec.h"

typedef struct wand_runtime_t wand_runtime_t;

// Values reported by STATS, in wire order (PROTOCOL.md has the meanings).
// Both protocols' STATS replies walk this one list, so a field added here is
// reported by both without further changes. Names must stay < 32 bytes.
#define WAND_RUNTIME_STATS_FIELDS(X)                                    \
  /* IREE HAL device allocator statistics (the seed's six, in order). */ \
  X(host_bytes_peak)                                                    \
  X(host_bytes_allocated)                                               \
  X(host_bytes_freed)                                                   \
  X(device_bytes_peak)                                                  \
  X(device_bytes_allocated)                                             \
  X(device_bytes_freed)                                                 \
  /* Counter deltas around the last iree_vm_invoke. */                  \
  X(inference_instructions) /* minstret */                              \
  X(inference_cycles)       /* mcycle */                                \
  X(inference_mtime_ticks)  /* CLINT mtime */                           \
  X(mtime_hz)                                                           \
  X(inference_count) /* successful invocations since boot */            \
  /* Board-level high-water marks (0 when not measured). */             \
  X(heap_bytes_peak)                                                    \
  X(stack_bytes_peak)                                                   \
  /* minstret since reset, read when the stats are taken: with the idle \
     wait executing nothing, Kenning's "instructions per inference      \
     pass" is this over the number of windows (KENNING_FACTS.md). */     \
  X(total_instructions)

typedef struct wand_runtime_stats_t {
#define WAND_STATS_MEMBER(name) uint64_t name;
  WAND_RUNTIME_STATS_FIELDS(WAND_STATS_MEMBER)
#undef WAND_STATS_MEMBER
} wand_runtime_stats_t;

// The fields above as (name, offset) rows, for code that reports them all.
typedef struct wand_runtime_stat_field_t {
  const char* name;
  size_t offset;  // of the uint64_t in wand_runtime_stats_t
} wand_runtime_stat_field_t;

extern const wand_runtime_stat_field_t wand_runtime_stat_fields[];
extern const size_t wand_runtime_stat_field_count;

// The value of |field| in |stats|.
uint64_t wand_runtime_stat_value(const wand_runtime_stats_t* stats,
                                 const wand_runtime_stat_field_t* field);

// Creates the runtime (instance and device live until reset).
bool wand_runtime_create(wand_runtime_t** out_runtime);

// Loads |module_data| (a .vmfb) for |spec|, replacing any loaded model. The
// runtime copies the bytes; the caller's buffer may be reused afterwards.
bool wand_runtime_load_model(wand_runtime_t* runtime, const wand_iospec_t* spec,
                             const uint8_t* module_data, size_t module_size);

// Drops the loaded model, its inputs and outputs (no-op when none).
void wand_runtime_unload_model(wand_runtime_t* runtime);

// Copies spec->total_input_bytes bytes of inputs, input 0 first.
bool wand_runtime_set_inputs(wand_runtime_t* runtime, const uint8_t* data,
                             size_t size);

// Runs the entry function on the current inputs.
bool wand_runtime_invoke(wand_runtime_t* runtime);

// Writes the outputs of the last invoke (concatenated, output 0 first) to
// |out|; |capacity| must be >= spec->total_output_bytes.
bool wand_runtime_read_outputs(wand_runtime_t* runtime, uint8_t* out,
                               size_t capacity, size_t* out_size);

// Fills |out| with the current statistics.
void wand_runtime_get_stats(wand_runtime_t* runtime,
                            wand_runtime_stats_t* out);

#endif  // WAND_RUNTIME_H_
