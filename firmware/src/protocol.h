// Kenning's legacy UART protocol: framing, message dispatch and the model
// state machine. Pure C with no hardware dependency (the byte transport is
// injected), so it builds for the firmware, for host tests and for libFuzzer.
//
// Frame: u32 LE size (= 2 + payload length) | u16 LE type | payload.
// Every received frame, well-formed or not, gets exactly one reply (OK, OK
// with payload, or ERROR), except when the transport closes. PROTOCOL.md has
// the details.

#ifndef WAND_PROTOCOL_H_
#define WAND_PROTOCOL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iospec.h"
#include "runtime.h"

#define WAND_HEADER_SIZE 6u
// Largest accepted size field (type + payload), as in Kenning's firmware.
#define WAND_MAX_MESSAGE_SIZE (5u * 256u * 1024u)
#define WAND_MAX_PAYLOAD_SIZE (WAND_MAX_MESSAGE_SIZE - 2u)
// The header starts 2 bytes into the buffer so the payload is 4-aligned.
#define WAND_BUFFER_HEADER_OFFSET 2u
#define WAND_BUFFER_PAYLOAD_OFFSET (WAND_BUFFER_HEADER_OFFSET + WAND_HEADER_SIZE)
#define WAND_BUFFER_SIZE (WAND_BUFFER_PAYLOAD_OFFSET + WAND_MAX_PAYLOAD_SIZE)
#define WAND_STATS_RECORD_SIZE 40u
#define WAND_STATS_NAME_SIZE 32u

typedef enum wand_message_type_e {
  WAND_MSG_OK = 0,
  WAND_MSG_ERROR = 1,
  WAND_MSG_DATA = 2,
  WAND_MSG_MODEL = 3,
  WAND_MSG_PROCESS = 4,
  WAND_MSG_OUTPUT = 5,
  WAND_MSG_STATS = 6,
  WAND_MSG_IOSPEC = 7,
  WAND_MSG_TYPE_COUNT = 8,
} wand_message_type_t;

typedef enum wand_model_state_e {
  WAND_STATE_UNINITIALIZED = 0,
  WAND_STATE_STRUCT_LOADED = 1,
  WAND_STATE_WEIGHTS_LOADED = 2,
  WAND_STATE_INPUT_LOADED = 3,
  WAND_STATE_INFERENCE_DONE = 4,
} wand_model_state_t;

// A byte stream. The firmware backs it with the UART, tests with memory.
typedef struct wand_transport_t {
  void* self;
  // Blocks until the first byte of the next frame arrives. Returns false
  // only when the stream has ended (host transports; the UART never ends).
  bool (*wait_byte)(void* self, uint8_t* out_byte);
  // Reads up to |length| bytes, each within the inter-byte timeout. Returns
  // how many arrived; fewer than |length| means the sender went quiet.
  size_t (*read)(void* self, uint8_t* buffer, size_t length);
  // Sends |length| bytes.
  void (*write)(void* self, const uint8_t* data, size_t length);
} wand_transport_t;

typedef struct wand_server_t {
  wand_transport_t transport;
  wand_runtime_t* runtime;
  uint8_t* buffer;  // WAND_BUFFER_SIZE bytes, 4-byte aligned
  wand_model_state_t state;
  wand_iospec_t iospec;  // valid when state >= STRUCT_LOADED
  // Counters for diagnostics.
  uint32_t frames;
  uint32_t errors;
  uint32_t truncated;
  uint32_t oversized;
} wand_server_t;

// Prepares |server|. |buffer| must be 4-byte aligned and hold at least
// WAND_BUFFER_SIZE bytes; it receives requests and is reused for replies.
bool wand_server_init(wand_server_t* server, wand_transport_t transport,
                      wand_runtime_t* runtime, uint8_t* buffer,
                      size_t buffer_size);

// Receives one frame, handles it and sends its reply. Returns false only when
// the transport has ended.
bool wand_server_step(wand_server_t* server);

// Runs request |type| (DATA … IOSPEC; the numbers are the same in both
// Kenning protocols) on the model state machine. |payload| must be the
// buffer's payload area, where a reply payload of *reply_size bytes is left.
// Returns false when the request failed (the reason is logged). The other
// framing (protocol_kenning.c) reuses this.
bool wand_server_dispatch(wand_server_t* server, uint32_t type,
                          const uint8_t* payload, size_t size,
                          size_t* reply_size);

// The buffer's payload area (where requests land and replies are built).
static inline uint8_t* wand_server_payload(wand_server_t* server) {
  return server->buffer + WAND_BUFFER_PAYLOAD_OFFSET;
}

#endif  // WAND_PROTOCOL_H_
