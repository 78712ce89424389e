// libFuzzer harness: random byte streams through protocol detection, both
// framings (legacy and KenningProtocol), the dispatcher and the state
// machine, with an in-memory transport and the fake (TEST ONLY) runtime.
//
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -I../src \
//     frame_fuzzer.c ../src/protocol.c ../src/protocol_kenning.c \
//     ../src/protocol_mux.c ../src/runtime_stats.c ../src/iospec.c \
//     ../src/runtime_fake.c
//
// The first input byte picks a prelude: bit 0 prepends a valid IOSPEC +
// MODEL (+ DATA if bit 1) session so the fuzzer also reaches the deep states;
// bit 2 makes that session KenningProtocol (PING first, multi-message
// IO_SPEC). Invariants checked: every reply is well-formed in the framing the
// device is in (legacy OK/ERROR; Kenning TRANSMISSION or NACK with a correct
// checksum), every request gets exactly one reply, and the valid requests
// of the prelude all succeed.

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "protocol_mux.h"

typedef struct {
  const uint8_t* parts[2];
  size_t sizes[2];
  size_t part;
  size_t pos;
  uint32_t replies;
  const wand_mux_t* mux;
  size_t pending_payload;  // of the Kenning reply whose header came last
  uint8_t pending_xor;
} stream_t;

static bool stream_next(stream_t* s, uint8_t* out) {
  while (s->part < 2) {
    if (s->pos < s->sizes[s->part]) {
      *out = s->parts[s->part][s->pos++];
      return true;
    }
    ++s->part;
    s->pos = 0;
  }
  return false;
}

static bool fuzz_wait_byte(void* self, uint8_t* out_byte) {
  return stream_next((stream_t*)self, out_byte);
}

static size_t fuzz_read(void* self, uint8_t* buffer, size_t length) {
  size_t count = 0;
  while (count < length && stream_next((stream_t*)self, &buffer[count])) {
    ++count;
  }
  return count;
}

static void check_kenning_header(stream_t* s, const uint8_t* data,
                                 size_t length) {
  if (length != WAND_KP_HEADER_SIZE) abort();
  const uint32_t type = data[0] & 0x3Fu;
  const uint32_t flow = data[0] >> 6;
  const uint16_t flags = (uint16_t)(data[2] | (data[3] << 8));
  const uint32_t size = (uint32_t)data[4] | ((uint32_t)data[5] << 8) |
                        ((uint32_t)data[6] << 16) | ((uint32_t)data[7] << 24);
  if (((flags & WAND_KP_FLAG_HAS_PAYLOAD) != 0) != (size > 0)) abort();
  if (flow == WAND_KP_ACKNOWLEDGE) {
    // A NACK, never for the types the host cannot take one for.
    if (flags != WAND_KP_FLAG_FAIL || size != 0) abort();
    if (type == WAND_KP_STATS || type == WAND_KP_LOGS) abort();
  } else if (flow == WAND_KP_TRANSMISSION) {
    const uint16_t fixed =
        WAND_KP_FLAG_FIRST | WAND_KP_FLAG_LAST | WAND_KP_FLAG_IS_ZEPHYR;
    if ((flags & fixed) != fixed) abort();
    const bool ok = (flags & WAND_KP_FLAG_SUCCESS) != 0;
    if (ok == ((flags & WAND_KP_FLAG_FAIL) != 0)) abort();
    if (!ok && size != 0) abort();
    // Replies written while the stream is still in the prelude answer its
    // valid requests: they must all succeed.
    if (!ok && s->part == 0) abort();
    if (size > WAND_MAX_PAYLOAD_SIZE) abort();
  } else {
    abort();
  }
  if (flow == WAND_KP_ACKNOWLEDGE && s->part == 0) abort();
  s->pending_xor = wand_kp_xor(data, length);
  s->pending_payload = size;
  if (size == 0 && s->pending_xor != WAND_KP_CHECKSUM_MAGIC) abort();
  ++s->replies;
}

static void fuzz_write(void* self, const uint8_t* data, size_t length) {
  stream_t* s = (stream_t*)self;
  if (s->pending_payload) {
    if (length != s->pending_payload) abort();
    if ((s->pending_xor ^ wand_kp_xor(data, length)) != WAND_KP_CHECKSUM_MAGIC) {
      abort();
    }
    s->pending_payload = 0;
    return;
  }
  if (s->mux->mode == WAND_WIRE_KENNING) {
    check_kenning_header(s, data, length);
    return;
  }
  if (length < WAND_HEADER_SIZE) abort();
  uint32_t size = (uint32_t)data[0] | ((uint32_t)data[1] << 8) |
                  ((uint32_t)data[2] << 16) | ((uint32_t)data[3] << 24);
  uint32_t type = (uint32_t)data[4] | ((uint32_t)data[5] << 8);
  if (size != length - 4 || size > WAND_MAX_MESSAGE_SIZE) abort();
  if (type != WAND_MSG_OK && type != WAND_MSG_ERROR) abort();
  if (type == WAND_MSG_ERROR && size != 2) abort();
  if (type == WAND_MSG_ERROR && s->part == 0) abort();  // see above
  ++s->replies;
}

void wand_log(const char* format, ...) {
  char line[WAND_LOG_LINE_MAX];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof(line), format, args);
  va_end(args);
}

static size_t put_frame(uint8_t* out, uint16_t type, const uint8_t* payload,
                        uint32_t size) {
  uint32_t field = size + 2;
  out[0] = (uint8_t)field;
  out[1] = (uint8_t)(field >> 8);
  out[2] = (uint8_t)(field >> 16);
  out[3] = (uint8_t)(field >> 24);
  out[4] = (uint8_t)type;
  out[5] = (uint8_t)(type >> 8);
  if (size) memcpy(out + 6, payload, size);
  return 6 + size;
}

static void put_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

// IOSPEC (Magic Wand-like: 1 input [1,8,3,1] f32, 1 output of 4) + MODEL +
// optionally DATA.
static size_t build_prelude(uint8_t* out, bool with_data) {
  uint8_t spec[WAND_IOSPEC_WIRE_SIZE] = {0};
  put_u32(spec + 0, 1);
  put_u32(spec + 4, 4);
  put_u32(spec + 12, 1);
  put_u32(spec + 16, 8);
  put_u32(spec + 20, 3);
  put_u32(spec + 24, 1);
  put_u32(spec + 44, 24);
  put_u32(spec + 52, 4);
  put_u32(spec + 60, 1);
  put_u32(spec + 64, 4);
  put_u32(spec + 112, 4);
  memcpy(spec + 116, "f32", 3);
  memcpy(spec + 120, "module.main", 11);
  memcpy(spec + 140, "module", 6);
  size_t n = put_frame(out, WAND_MSG_IOSPEC, spec, sizeof(spec));
  static const uint8_t model[16] = "fake vmfb bytes";
  n += put_frame(out + n, WAND_MSG_MODEL, model, sizeof(model));
  if (with_data) {
    uint8_t data[96];
    for (size_t i = 0; i < sizeof(data); ++i) data[i] = (uint8_t)i;
    n += put_frame(out + n, WAND_MSG_DATA, data, sizeof(data));
  }
  return n;
}

// KenningProtocol request of |size| bytes in messages of at most 128 payload
// bytes (as Kenning's UART host sends them), with real checksums.
static size_t put_kenning(uint8_t* out, uint8_t type, uint16_t user_flags,
                          const uint8_t* payload, uint32_t size) {
  size_t n = 0;
  uint32_t offset = 0;
  do {
    uint32_t chunk = size - offset < 128u ? size - offset : 128u;
    uint16_t flags = user_flags;
    if (offset == 0) flags |= WAND_KP_FLAG_FIRST;
    if (offset + chunk == size) flags |= WAND_KP_FLAG_LAST;
    if (chunk) flags |= WAND_KP_FLAG_HAS_PAYLOAD;
    uint8_t* m = out + n;
    m[0] = type;
    m[1] = 0;
    m[2] = (uint8_t)flags;
    m[3] = (uint8_t)(flags >> 8);
    put_u32(m + 4, chunk);
    if (chunk) memcpy(m + 8, payload + offset, chunk);
    m[1] = (uint8_t)(wand_kp_xor(m, 8 + chunk) ^ WAND_KP_CHECKSUM_MAGIC);
    n += 8 + chunk;
    offset += chunk;
  } while (offset < size);
  return n;
}

// PING + IO_SPEC (356-byte form, same model as above) + MODEL (+ DATA).
static size_t build_kenning_prelude(uint8_t* out, bool with_data) {
  size_t n = put_kenning(out, WAND_KP_PING, WAND_KP_FLAG_SUCCESS, NULL, 0);
  uint8_t spec[WAND_IOSPEC_KENNING_WIRE_SIZE] = {0};
  put_u32(spec + 0, 1);
  put_u32(spec + 4, 4);
  put_u32(spec + 12, 1);
  put_u32(spec + 16, 8);
  put_u32(spec + 20, 3);
  put_u32(spec + 24, 1);
  spec[44] = 2;  // float
  spec[45] = 32;
  put_u32(spec + 48, 1);
  put_u32(spec + 52, 1);
  put_u32(spec + 100, 4);
  spec[292] = 2;
  spec[293] = 32;
  memcpy(spec + 316, "module.main", 11);
  memcpy(spec + 336, "module", 6);
  n += put_kenning(out + n, WAND_KP_IO_SPEC, 0, spec, sizeof(spec));
  static const uint8_t model[16] = "fake vmfb bytes";
  n += put_kenning(out + n, WAND_KP_MODEL, 0, model, sizeof(model));
  if (with_data) {
    uint8_t data[96];
    for (size_t i = 0; i < sizeof(data); ++i) data[i] = (uint8_t)i;
    n += put_kenning(out + n, WAND_KP_DATA, 0, data, sizeof(data));
  }
  return n;
}

static uint8_t buffer[WAND_BUFFER_SIZE] __attribute__((aligned(4)));
static wand_mux_t mux;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t prelude[1024];
  size_t prelude_size = 0;
  if (size > 0) {
    if (data[0] & 1) {
      prelude_size = (data[0] & 4)
                         ? build_kenning_prelude(prelude, (data[0] & 2) != 0)
                         : build_prelude(prelude, (data[0] & 2) != 0);
    }
    ++data;
    --size;
  }
  stream_t stream = {
      .parts = {prelude, data},
      .sizes = {prelude_size, size},
      .mux = &mux,
  };
  wand_runtime_t* runtime = NULL;
  if (!wand_runtime_create(&runtime)) abort();
  wand_transport_t transport = {
      .self = &stream,
      .wait_byte = fuzz_wait_byte,
      .read = fuzz_read,
      .write = fuzz_write,
  };
  if (!wand_mux_init(&mux, transport, runtime, buffer, sizeof(buffer))) {
    abort();
  }
  while (wand_mux_step(&mux)) {
  }
  if (stream.pending_payload != 0) abort();
  if (stream.replies != mux.legacy.frames + mux.kenning.transmissions) abort();
  return 0;
}
