// The model I/O description Kenning sends in an IOSPEC message.
//
// Wire layout (160 bytes, packed, little-endian u32 unless stated), see
// PROTOCOL.md:
//   0 num_input | 4 num_input_dim[2] | 12 input_shape[2][4] |
//   44 input_length[2] | 52 input_size_bytes[2] | 60 num_output |
//   64 output_length[12] | 112 output_size_bytes | 116 dtype (4 ASCII, NUL
//   padded) | 120 entry_func[20] | 140 model_name[20]
//
// Parsing is pure C (no hardware), so it also builds for host tests/fuzzing.

#ifndef WAND_IOSPEC_H_
#define WAND_IOSPEC_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAND_IOSPEC_WIRE_SIZE 160u
#define WAND_MAX_INPUTS 2u
#define WAND_MAX_INPUT_DIMS 4u
#define WAND_MAX_OUTPUTS 12u
#define WAND_IOSPEC_NAME_SIZE 20u

typedef enum wand_dtype_e {
  WAND_DTYPE_I8 = 0,
  WAND_DTYPE_U8,
  WAND_DTYPE_I16,
  WAND_DTYPE_U16,
  WAND_DTYPE_I32,
  WAND_DTYPE_U32,
  WAND_DTYPE_I64,
  WAND_DTYPE_U64,
  WAND_DTYPE_F16,
  WAND_DTYPE_F32,
  WAND_DTYPE_F64,
} wand_dtype_t;

typedef struct wand_iospec_t {
  uint32_t num_inputs;
  uint32_t input_rank[WAND_MAX_INPUTS];
  uint32_t input_shape[WAND_MAX_INPUTS][WAND_MAX_INPUT_DIMS];
  uint32_t input_length[WAND_MAX_INPUTS];      // elements
  uint32_t input_elem_size[WAND_MAX_INPUTS];   // bytes per element
  uint32_t num_outputs;
  uint32_t output_length[WAND_MAX_OUTPUTS];    // elements
  uint32_t output_elem_size;                   // bytes per element (all outputs)
  wand_dtype_t dtype;                          // applies to inputs and outputs
  char entry_func[WAND_IOSPEC_NAME_SIZE + 1];  // always NUL-terminated
  char model_name[WAND_IOSPEC_NAME_SIZE + 1];  // always NUL-terminated
  // Derived, validated totals.
  uint32_t input_bytes[WAND_MAX_INPUTS];
  uint32_t total_input_bytes;
  uint32_t total_output_bytes;
} wand_iospec_t;

// Parses and validates a 160-byte IOSPEC payload. |max_io_bytes| bounds the
// total input bytes and the total output bytes (both must fit in one message).
// Returns false (and leaves |out| unspecified) for any malformed payload; a
// short description of the first problem goes to |*out_reason|.
bool wand_iospec_parse(const uint8_t* payload, size_t size,
                       uint32_t max_io_bytes, wand_iospec_t* out,
                       const char** out_reason);

// The same description as Kenning v0.8.1+ serialises it (io_spec_serializer,
// 356 bytes; KENNING_PROTOCOL_FACTS.md §3.2):
//   0 num_input | 4 num_input_dim[2] | 12 input_shape: 8 u32, the inputs'
//   dims concatenated | 44 input_data_type[2] (u8 code, u8 bits) |
//   48 num_output | 52 num_output_dim[12] | 100 output_shape: 48 u32,
//   concatenated | 292 output_data_type[12] | 316 entry_func[20] (not always
//   NUL-terminated; empty means "module.main") | 336 model_name[20]
// Every tensor must have the same dtype (wand_iospec_t has one).
#define WAND_IOSPEC_KENNING_WIRE_SIZE 356u
bool wand_iospec_parse_kenning(const uint8_t* payload, size_t size,
                               uint32_t max_io_bytes, wand_iospec_t* out,
                               const char** out_reason);

// Bytes per element of |dtype|.
uint32_t wand_dtype_size(wand_dtype_t dtype);

#endif  // WAND_IOSPEC_H_
