// One UART, two protocols: Kenning's legacy framing (protocol.h, Kenning
// <= v0.8.0) and KenningProtocol (protocol_kenning.h, v0.8.1+), told apart
// from the first bytes of each request.
//
// Why detection is reliable (KENNING_PROTOCOL_FACTS.md §5): a legal legacy
// header starts with a u32 size <= 1,310,720, so its byte 3 is 0 and byte 2 is
// <= 0x14; the first message of every KenningProtocol request has FIRST set,
// so its byte 2 is >= 0x18. In legacy mode (at boot, and after a Kenning
// disconnect) a request is Kenning iff byte 3 != 0 or byte 2 > 0x14. In
// Kenning mode it stays Kenning unless the 6 bytes are a legal legacy header
// of a legacy request type (2..7) that no Kenning host sends (not a REQUEST
// of a defined type): a v0.8.0 host starts with IOSPEC, A2 00 00 00 07 00.

#ifndef WAND_PROTOCOL_MUX_H_
#define WAND_PROTOCOL_MUX_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "protocol_kenning.h"

#define WAND_MUX_PREFIX_SIZE 6u  // a whole legacy header; < a Kenning one

typedef enum wand_wire_e {
  WAND_WIRE_LEGACY = 0,
  WAND_WIRE_KENNING = 1,
} wand_wire_t;

typedef struct wand_mux_t {
  wand_server_t legacy;  // also the model state machine both framings use
  wand_kenning_server_t kenning;
  wand_wire_t mode;
  // Bytes read to decide, handed to the legacy parser before the UART's.
  uint8_t prefix[WAND_MUX_PREFIX_SIZE];
  size_t prefix_size;
  size_t prefix_pos;
  wand_transport_t uart;
} wand_mux_t;

// As wand_server_init; |mux| must stay at its address while in use.
bool wand_mux_init(wand_mux_t* mux, wand_transport_t transport,
                   wand_runtime_t* runtime, uint8_t* buffer,
                   size_t buffer_size);

// Which framing the next request of |prefix| (|size| bytes) uses, given the
// current |mode|.
wand_wire_t wand_mux_classify(wand_wire_t mode, const uint8_t* prefix,
                              size_t size);

// Receives one request (one legacy frame or one Kenning transmission),
// handles it and sends its reply. Returns false only when the transport ended.
bool wand_mux_step(wand_mux_t* mux);

#endif  // WAND_PROTOCOL_MUX_H_
