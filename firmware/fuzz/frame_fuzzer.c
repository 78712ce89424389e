// libFuzzer harness: random byte streams through the protocol's framing,
// dispatcher and state machine, with an in-memory transport and the fake
// (TEST ONLY) runtime.
//
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -I../src \
//     frame_fuzzer.c ../src/protocol.c ../src/iospec.c ../src/runtime_fake.c
//
// The first input byte picks a prelude: odd values prepend a valid
// IOSPEC + MODEL (+ DATA) session so the fuzzer also reaches the deep states.
// Invariants checked: every reply is a well-formed OK/ERROR frame and every
// received frame gets exactly one reply.

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "protocol.h"

typedef struct {
  const uint8_t* parts[2];
  size_t sizes[2];
  size_t part;
  size_t pos;
  uint32_t replies;
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

static void fuzz_write(void* self, const uint8_t* data, size_t length) {
  stream_t* s = (stream_t*)self;
  if (length < WAND_HEADER_SIZE) abort();
  uint32_t size = (uint32_t)data[0] | ((uint32_t)data[1] << 8) |
                  ((uint32_t)data[2] << 16) | ((uint32_t)data[3] << 24);
  uint32_t type = (uint32_t)data[4] | ((uint32_t)data[5] << 8);
  if (size != length - 4 || size > WAND_MAX_MESSAGE_SIZE) abort();
  if (type != WAND_MSG_OK && type != WAND_MSG_ERROR) abort();
  if (type == WAND_MSG_ERROR && size != 2) abort();
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

static uint8_t buffer[WAND_BUFFER_SIZE] __attribute__((aligned(4)));

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t prelude[512];
  size_t prelude_size = 0;
  if (size > 0) {
    if (data[0] & 1) prelude_size = build_prelude(prelude, (data[0] & 2) != 0);
    ++data;
    --size;
  }
  stream_t stream = {
      .parts = {prelude, data},
      .sizes = {prelude_size, size},
  };
  wand_runtime_t* runtime = NULL;
  if (!wand_runtime_create(&runtime)) abort();
  wand_server_t server;
  wand_transport_t transport = {
      .self = &stream,
      .wait_byte = fuzz_wait_byte,
      .read = fuzz_read,
      .write = fuzz_write,
  };
  if (!wand_server_init(&server, transport, runtime, buffer, sizeof(buffer))) {
    abort();
  }
  while (wand_server_step(&server)) {
  }
  if (stream.replies != server.frames) abort();
  return 0;
}
