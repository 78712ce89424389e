// Kenning v0.8.1/v0.8.2 "KenningProtocol" framing on top of the legacy
// server's model state machine (protocol.h). Pure C, no hardware, so it also
// builds for host tests and libFuzzer.
//
// Message: u8 msg-id (type bits 0-5, flow control bits 6-7) | u8 checksum |
// u16 LE flags | u32 LE payload size | payload iff HAS_PAYLOAD. The host's
// requests may span several messages (FIRST … LAST); every request
// transmission gets exactly one reply, sent after its LAST message (or after
// the sender went quiet). PROTOCOL.md has the rules; the wire spec is
// ../shared/docs/KENNING_PROTOCOL_FACTS.md.

#ifndef WAND_PROTOCOL_KENNING_H_
#define WAND_PROTOCOL_KENNING_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#define WAND_KP_HEADER_SIZE 8u
#define WAND_KP_CHECKSUM_MAGIC 0x4Bu
#define WAND_KP_STATS_RECORD_SIZE 48u  // char[32] name, u64 type, u64 value
#define WAND_KP_STAT_TYPE_ALLOCATION 1u

typedef enum wand_kp_type_e {
  WAND_KP_PING = 0,
  WAND_KP_STATUS = 1,
  WAND_KP_DATA = 2,
  WAND_KP_MODEL = 3,
  WAND_KP_PROCESS = 4,
  WAND_KP_OUTPUT = 5,
  WAND_KP_STATS = 6,
  WAND_KP_IO_SPEC = 7,
  WAND_KP_OPTIMIZERS = 8,
  WAND_KP_OPTIMIZE_MODEL = 9,
  WAND_KP_RUNTIME = 10,
  WAND_KP_UNOPTIMIZED_MODEL = 11,
  WAND_KP_LOGS = 12,
  WAND_KP_TYPE_COUNT = 13,
} wand_kp_type_t;

typedef enum wand_kp_flow_e {
  WAND_KP_REQUEST = 0,
  WAND_KP_REQUEST_RETRANSMIT = 1,
  WAND_KP_ACKNOWLEDGE = 2,
  WAND_KP_TRANSMISSION = 3,
} wand_kp_flow_t;

enum {
  WAND_KP_FLAG_SUCCESS = 1u << 0,
  WAND_KP_FLAG_FAIL = 1u << 1,
  WAND_KP_FLAG_IS_HOST_MESSAGE = 1u << 2,
  WAND_KP_FLAG_HAS_PAYLOAD = 1u << 3,
  WAND_KP_FLAG_FIRST = 1u << 4,
  WAND_KP_FLAG_LAST = 1u << 5,
  WAND_KP_FLAG_IS_KENNING = 1u << 6,
  WAND_KP_FLAG_IS_ZEPHYR = 1u << 7,
};

typedef struct wand_kenning_server_t {
  wand_server_t* core;  // transport, runtime, buffer and model state
  bool connected;       // between PING+SUCCESS and PING+FAIL
  // Counters for diagnostics.
  uint32_t transmissions;  // request transmissions answered
  uint32_t failures;       // FAIL replies
  uint32_t nacks;          // ACKNOWLEDGE+FAIL replies
  uint32_t bad_checksums;
  uint32_t truncated;
  uint32_t oversized;
  uint32_t out_of_order;
} wand_kenning_server_t;

void wand_kenning_server_init(wand_kenning_server_t* server,
                              wand_server_t* core);

// Receives the rest of one request transmission whose first |prefix_size|
// (<= 8) bytes were already read, handles it and sends its one reply.
// Returns true when the transmission was PING+FAIL (the host disconnected).
bool wand_kenning_server_handle(wand_kenning_server_t* server,
                                const uint8_t* prefix, size_t prefix_size);

// XOR of |size| bytes (the checksum's building block).
uint8_t wand_kp_xor(const uint8_t* data, size_t size);

#endif  // WAND_PROTOCOL_KENNING_H_
