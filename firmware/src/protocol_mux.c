// Protocol detection and the replay transport that lets the legacy parser
// re-read the bytes detection consumed. See protocol_mux.h for the rule.

#include "protocol_mux.h"

#include <string.h>

#include "log.h"

static bool replay_wait_byte(void* self, uint8_t* out_byte) {
  wand_mux_t* mux = (wand_mux_t*)self;
  if (mux->prefix_pos < mux->prefix_size) {
    *out_byte = mux->prefix[mux->prefix_pos++];
    return true;
  }
  return mux->uart.wait_byte(mux->uart.self, out_byte);
}

static size_t replay_read(void* self, uint8_t* buffer, size_t length) {
  wand_mux_t* mux = (wand_mux_t*)self;
  size_t count = 0;
  while (count < length && mux->prefix_pos < mux->prefix_size) {
    buffer[count++] = mux->prefix[mux->prefix_pos++];
  }
  // A short prefix means the sender already went quiet: reading on would
  // only wait for the same timeout again.
  if (count < length && mux->prefix_size == WAND_MUX_PREFIX_SIZE) {
    count += mux->uart.read(mux->uart.self, buffer + count, length - count);
  }
  return count;
}

static void replay_write(void* self, const uint8_t* data, size_t length) {
  wand_mux_t* mux = (wand_mux_t*)self;
  mux->uart.write(mux->uart.self, data, length);
}

bool wand_mux_init(wand_mux_t* mux, wand_transport_t transport,
                   wand_runtime_t* runtime, uint8_t* buffer,
                   size_t buffer_size) {
  memset(mux, 0, sizeof(*mux));
  if (transport.wait_byte == NULL || transport.read == NULL ||
      transport.write == NULL) {
    return false;
  }
  mux->uart = transport;
  const wand_transport_t replay = {
      .self = mux,
      .wait_byte = replay_wait_byte,
      .read = replay_read,
      .write = replay_write,
  };
  if (!wand_server_init(&mux->legacy, replay, runtime, buffer, buffer_size)) {
    return false;
  }
  wand_kenning_server_init(&mux->kenning, &mux->legacy);
  mux->mode = WAND_WIRE_LEGACY;
  return true;
}

static bool legal_legacy_size(const uint8_t* prefix, size_t size) {
  return size >= 4 && prefix[3] == 0 && prefix[2] <= 0x14;
}

wand_wire_t wand_mux_classify(wand_wire_t mode, const uint8_t* prefix,
                              size_t size) {
  if (size < 4) return mode;  // cut off: answered in the current framing
  if (mode == WAND_WIRE_LEGACY) {
    return legal_legacy_size(prefix, size) ? WAND_WIRE_LEGACY
                                           : WAND_WIRE_KENNING;
  }
  if (size < 6 || !legal_legacy_size(prefix, size)) return WAND_WIRE_KENNING;
  const uint32_t legacy_type = (uint32_t)prefix[4] | ((uint32_t)prefix[5] << 8);
  const bool kenning_request = (prefix[0] >> 6) == WAND_KP_REQUEST &&
                              (prefix[0] & 0x3Fu) < WAND_KP_TYPE_COUNT;
  if (legacy_type >= WAND_MSG_DATA && legacy_type <= WAND_MSG_IOSPEC &&
      !kenning_request) {
    return WAND_WIRE_LEGACY;
  }
  return WAND_WIRE_KENNING;
}

bool wand_mux_step(wand_mux_t* mux) {
  if (!mux->uart.wait_byte(mux->uart.self, &mux->prefix[0])) return false;
  mux->prefix_size = 1 + mux->uart.read(mux->uart.self, mux->prefix + 1,
                                        WAND_MUX_PREFIX_SIZE - 1);
  mux->prefix_pos = 0;
  const wand_wire_t wire =
      wand_mux_classify(mux->mode, mux->prefix, mux->prefix_size);
  if (wire != mux->mode) {
    wand_log("protocol: %s framing from here on",
             wire == WAND_WIRE_KENNING ? "KenningProtocol" : "legacy");
    // A session of the other framing starts: nothing of the old one holds.
    wand_runtime_unload_model(mux->legacy.runtime);
    mux->legacy.state = WAND_STATE_UNINITIALIZED;
    mux->mode = wire;
  }
  if (wire == WAND_WIRE_LEGACY) return wand_server_step(&mux->legacy);
  // The Kenning parser takes the prefix as an argument and reads on through
  // the same (replay) transport, which must not hand it out again.
  mux->prefix_pos = mux->prefix_size;
  if (wand_kenning_server_handle(&mux->kenning, mux->prefix,
                                 mux->prefix_size)) {
    mux->mode = WAND_WIRE_LEGACY;  // disconnected: the next host may be either
  }
  return true;
}
