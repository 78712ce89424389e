// IOSPEC parsing and validation: every field from the wire is bounded here,
// before the runtime or the dispatcher sees it.

#include "iospec.h"

#include <string.h>

// Field offsets of the 160-byte wire struct.
enum {
  kOffNumInput = 0,
  kOffNumInputDim = 4,
  kOffInputShape = 12,
  kOffInputLength = 44,
  kOffInputSizeBytes = 52,
  kOffNumOutput = 60,
  kOffOutputLength = 64,
  kOffOutputSizeBytes = 112,
  kOffDtype = 116,
  kOffEntryFunc = 120,
  kOffModelName = 140,
};

static const struct {
  char name[4];
  wand_dtype_t dtype;
  uint32_t size;
} kDtypes[] = {
    {"i8", WAND_DTYPE_I8, 1},   {"u8", WAND_DTYPE_U8, 1},
    {"i16", WAND_DTYPE_I16, 2}, {"u16", WAND_DTYPE_U16, 2},
    {"i32", WAND_DTYPE_I32, 4}, {"u32", WAND_DTYPE_U32, 4},
    {"i64", WAND_DTYPE_I64, 8}, {"u64", WAND_DTYPE_U64, 8},
    {"f16", WAND_DTYPE_F16, 2}, {"f32", WAND_DTYPE_F32, 4},
    {"f64", WAND_DTYPE_F64, 8},
};

static uint32_t read_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

uint32_t wand_dtype_size(wand_dtype_t dtype) {
  for (size_t i = 0; i < sizeof(kDtypes) / sizeof(kDtypes[0]); ++i) {
    if (kDtypes[i].dtype == dtype) return kDtypes[i].size;
  }
  return 0;
}

// Copies a NUL-padded name field; it must hold a NUL within its 20 bytes and
// only printable ASCII before it.
static bool parse_name(const uint8_t* field, bool allow_empty, char* out) {
  size_t length = 0;
  while (length < WAND_IOSPEC_NAME_SIZE && field[length] != 0) {
    if (field[length] < 0x21 || field[length] > 0x7e) return false;
    ++length;
  }
  if (length == WAND_IOSPEC_NAME_SIZE) return false;  // no terminator
  if (length == 0 && !allow_empty) return false;
  memcpy(out, field, length);
  out[length] = '\0';
  return true;
}

#define FAIL(reason)                     \
  do {                                   \
    if (out_reason) *out_reason = reason; \
    return false;                        \
  } while (0)

bool wand_iospec_parse(const uint8_t* payload, size_t size,
                       uint32_t max_io_bytes, wand_iospec_t* out,
                       const char** out_reason) {
  if (out_reason) *out_reason = "ok";
  if (payload == NULL || size != WAND_IOSPEC_WIRE_SIZE) FAIL("size != 160");
  memset(out, 0, sizeof(*out));

  // dtype: the 4 bytes must be a known name followed by NUL padding.
  const uint8_t* dtype_field = payload + kOffDtype;
  uint32_t elem_size = 0;
  for (size_t i = 0; i < sizeof(kDtypes) / sizeof(kDtypes[0]); ++i) {
    if (memcmp(dtype_field, kDtypes[i].name, 4) == 0) {
      out->dtype = kDtypes[i].dtype;
      elem_size = kDtypes[i].size;
      break;
    }
  }
  if (elem_size == 0) FAIL("unknown dtype");

  out->num_inputs = read_u32(payload + kOffNumInput);
  if (out->num_inputs == 0 || out->num_inputs > WAND_MAX_INPUTS) {
    FAIL("num_input out of range");
  }
  uint64_t total_input_bytes = 0;
  for (uint32_t i = 0; i < out->num_inputs; ++i) {
    uint32_t rank = read_u32(payload + kOffNumInputDim + 4 * i);
    if (rank == 0 || rank > WAND_MAX_INPUT_DIMS) FAIL("input rank out of range");
    out->input_rank[i] = rank;
    uint64_t elements = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      uint32_t dim = read_u32(payload + kOffInputShape +
                              4 * (i * WAND_MAX_INPUT_DIMS + d));
      if (dim == 0) FAIL("zero input dimension");
      out->input_shape[i][d] = dim;
      elements *= dim;  // <= 2^32 after each step: checked just below
      if (elements > max_io_bytes) FAIL("input too large");
    }
    out->input_length[i] = read_u32(payload + kOffInputLength + 4 * i);
    if (out->input_length[i] != elements) FAIL("input_length != shape product");
    out->input_elem_size[i] = read_u32(payload + kOffInputSizeBytes + 4 * i);
    if (out->input_elem_size[i] != elem_size) {
      FAIL("input_size_bytes does not match dtype");
    }
    uint64_t bytes = elements * elem_size;
    total_input_bytes += bytes;
    if (total_input_bytes > max_io_bytes) FAIL("inputs too large");
    out->input_bytes[i] = (uint32_t)bytes;
  }
  out->total_input_bytes = (uint32_t)total_input_bytes;

  out->num_outputs = read_u32(payload + kOffNumOutput);
  if (out->num_outputs == 0 || out->num_outputs > WAND_MAX_OUTPUTS) {
    FAIL("num_output out of range");
  }
  out->output_elem_size = read_u32(payload + kOffOutputSizeBytes);
  if (out->output_elem_size != elem_size) {
    FAIL("output_size_bytes does not match dtype");
  }
  uint64_t total_output_bytes = 0;
  for (uint32_t i = 0; i < out->num_outputs; ++i) {
    uint32_t length = read_u32(payload + kOffOutputLength + 4 * i);
    if (length == 0) FAIL("zero output_length");
    out->output_length[i] = length;
    total_output_bytes += (uint64_t)length * elem_size;
    if (total_output_bytes > max_io_bytes) FAIL("outputs too large");
  }
  out->total_output_bytes = (uint32_t)total_output_bytes;

  if (!parse_name(payload + kOffEntryFunc, /*allow_empty=*/false,
                  out->entry_func)) {
    FAIL("entry_func not a NUL-terminated printable name");
  }
  if (!parse_name(payload + kOffModelName, /*allow_empty=*/true,
                  out->model_name)) {
    FAIL("model_name not a NUL-terminated printable name");
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Kenning v0.8.1+ (356-byte) form.
//===----------------------------------------------------------------------===//

enum {
  kKOffNumInput = 0,
  kKOffNumInputDim = 4,
  kKOffInputShape = 12,
  kKInputShapeSlots = 8,
  kKOffInputType = 44,
  kKOffNumOutput = 48,
  kKOffNumOutputDim = 52,
  kKOffOutputShape = 100,
  kKOutputShapeSlots = 48,
  kKOffOutputType = 292,
  kKOffEntryFunc = 316,
  kKOffModelName = 336,
};

// Kenning's (DLPack-like) dtype code and bit width, as wand_dtype_t.
static bool kenning_dtype(const uint8_t* field, wand_dtype_t* out) {
  static const struct {
    uint8_t code, bits;
    wand_dtype_t dtype;
  } kMap[] = {
      {0, 8, WAND_DTYPE_I8},   {1, 8, WAND_DTYPE_U8},   {0, 16, WAND_DTYPE_I16},
      {1, 16, WAND_DTYPE_U16}, {0, 32, WAND_DTYPE_I32}, {1, 32, WAND_DTYPE_U32},
      {0, 64, WAND_DTYPE_I64}, {1, 64, WAND_DTYPE_U64}, {2, 16, WAND_DTYPE_F16},
      {2, 32, WAND_DTYPE_F32}, {2, 64, WAND_DTYPE_F64},
  };
  for (size_t i = 0; i < sizeof(kMap) / sizeof(kMap[0]); ++i) {
    if (field[0] == kMap[i].code && field[1] == kMap[i].bits) {
      *out = kMap[i].dtype;
      return true;
    }
  }
  return false;
}

// A name field that may fill all 20 bytes without a NUL (Kenning does not
// reserve one); printable ASCII up to the first NUL.
static bool parse_kenning_name(const uint8_t* field, char* out) {
  size_t length = 0;
  while (length < WAND_IOSPEC_NAME_SIZE && field[length] != 0) {
    if (field[length] < 0x21 || field[length] > 0x7e) return false;
    ++length;
  }
  memcpy(out, field, length);
  out[length] = '\0';
  return true;
}

// Walks |count| tensors whose ranks are at |ranks| and whose dims are packed
// back to back in |slots| u32s at |shapes|; checks dtypes and sizes and
// fills the element counts and byte totals.
static const char* parse_kenning_tensors(
    const uint8_t* payload, uint32_t count, uint32_t ranks_offset,
    uint32_t shapes_offset, uint32_t slots, uint32_t types_offset,
    uint32_t max_io_bytes, wand_iospec_t* out, bool inputs) {
  uint32_t slot = 0;
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    wand_dtype_t dtype;
    if (!kenning_dtype(payload + types_offset + 2 * i, &dtype)) {
      return "unsupported dtype";
    }
    if (dtype != out->dtype) return "tensors of different dtypes";
    uint32_t rank = read_u32(payload + ranks_offset + 4 * i);
    if (rank == 0 || rank > WAND_MAX_INPUT_DIMS) return "rank out of range";
    if (rank > slots - slot) return "shapes exceed their array";
    uint64_t elements = 1;
    for (uint32_t d = 0; d < rank; ++d, ++slot) {
      uint32_t dim = read_u32(payload + shapes_offset + 4 * slot);
      if (dim == 0) return "zero dimension";
      elements *= dim;
      if (elements > max_io_bytes) return "tensor too large";
      if (inputs) out->input_shape[i][d] = dim;
    }
    const uint32_t elem_size = wand_dtype_size(dtype);
    total += elements * elem_size;
    if (total > max_io_bytes) return "tensors too large";
    if (inputs) {
      out->input_rank[i] = rank;
      out->input_length[i] = (uint32_t)elements;
      out->input_elem_size[i] = elem_size;
      out->input_bytes[i] = (uint32_t)(elements * elem_size);
    } else {
      out->output_length[i] = (uint32_t)elements;
    }
  }
  if (inputs) {
    out->total_input_bytes = (uint32_t)total;
  } else {
    out->total_output_bytes = (uint32_t)total;
  }
  return NULL;
}

bool wand_iospec_parse_kenning(const uint8_t* payload, size_t size,
                               uint32_t max_io_bytes, wand_iospec_t* out,
                               const char** out_reason) {
  if (out_reason) *out_reason = "ok";
  if (payload == NULL || size != WAND_IOSPEC_KENNING_WIRE_SIZE) {
    FAIL("size != 356");
  }
  memset(out, 0, sizeof(*out));
  out->num_inputs = read_u32(payload + kKOffNumInput);
  if (out->num_inputs == 0 || out->num_inputs > WAND_MAX_INPUTS) {
    FAIL("num_input out of range");
  }
  out->num_outputs = read_u32(payload + kKOffNumOutput);
  if (out->num_outputs == 0 || out->num_outputs > WAND_MAX_OUTPUTS) {
    FAIL("num_output out of range");
  }
  if (!kenning_dtype(payload + kKOffInputType, &out->dtype)) {
    FAIL("unsupported dtype");
  }
  out->output_elem_size = wand_dtype_size(out->dtype);
  const char* problem = parse_kenning_tensors(
      payload, out->num_inputs, kKOffNumInputDim, kKOffInputShape,
      kKInputShapeSlots, kKOffInputType, max_io_bytes, out, true);
  if (problem == NULL) {
    problem = parse_kenning_tensors(
        payload, out->num_outputs, kKOffNumOutputDim, kKOffOutputShape,
        kKOutputShapeSlots, kKOffOutputType, max_io_bytes, out, false);
  }
  if (problem != NULL) FAIL(problem);
  if (!parse_kenning_name(payload + kKOffEntryFunc, out->entry_func)) {
    FAIL("entry_func not printable");
  }
  if (out->entry_func[0] == '\0') {
    // Kenning writes "" when the model's JSON has no entry_func; v0.8.0's
    // host used this name then.
    memcpy(out->entry_func, "module.main", sizeof("module.main"));
  }
  if (!parse_kenning_name(payload + kKOffModelName, out->model_name)) {
    FAIL("model_name not printable");
  }
  return true;
}
