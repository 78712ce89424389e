// KenningProtocol (Kenning v0.8.1/v0.8.2) framing: multi-message requests,
// checksums and replies; the requests themselves run on the legacy server's
// state machine (wand_server_dispatch). See protocol_kenning.h.

#include "protocol_kenning.h"

#include <string.h>

#include "le_bytes.h"
#include "log.h"

typedef enum kp_error_e {
  KP_OK = 0,
  KP_TRUNCATED,  // the sender went quiet before LAST
  KP_CHECKSUM,   // a message's checksum is wrong
  KP_ORDER,      // no FIRST, FIRST again, or another type mid-transmission
  KP_FLOW,       // not a REQUEST: the host only ever sends requests
  KP_OVERSIZED,  // more payload than the buffer holds
} kp_error_t;

static const char* const kErrorNames[] = {
    "ok", "cut off", "bad checksum", "out of order", "not a request",
    "oversized",
};

uint8_t wand_kp_xor(const uint8_t* data, size_t size) {
  uint8_t x = 0;
  for (size_t i = 0; i < size; ++i) x ^= data[i];
  return x;
}

void wand_kenning_server_init(wand_kenning_server_t* server,
                              wand_server_t* core) {
  memset(server, 0, sizeof(*server));
  server->core = core;
}

// One message to the host: header, then |payload_size| bytes already at the
// buffer's payload area. The checksum is always the real one.
static void send_message(wand_kenning_server_t* server, uint32_t type,
                         wand_kp_flow_t flow, uint16_t flags,
                         size_t payload_size) {
  wand_transport_t* t = &server->core->transport;
  const uint8_t* payload = wand_server_payload(server->core);
  uint8_t header[WAND_KP_HEADER_SIZE];
  if (payload_size > 0) flags |= WAND_KP_FLAG_HAS_PAYLOAD;
  header[0] = (uint8_t)(((uint32_t)flow << 6) | (type & 0x3Fu));
  header[1] = 0;
  header[2] = (uint8_t)flags;
  header[3] = (uint8_t)(flags >> 8);
  write_u32(header + 4, (uint32_t)payload_size);
  header[1] = (uint8_t)(wand_kp_xor(header, sizeof(header)) ^
                        wand_kp_xor(payload, payload_size) ^
                        WAND_KP_CHECKSUM_MAGIC);
  t->write(t->self, header, sizeof(header));
  if (payload_size > 0) t->write(t->self, payload, payload_size);
}

static void reply(wand_kenning_server_t* server, uint32_t type, bool success,
                  size_t payload_size) {
  const uint16_t flags = (uint16_t)(
      (success ? WAND_KP_FLAG_SUCCESS : WAND_KP_FLAG_FAIL) |
      WAND_KP_FLAG_FIRST | WAND_KP_FLAG_LAST | WAND_KP_FLAG_IS_ZEPHYR);
  if (!success) {
    ++server->failures;
    payload_size = 0;
  }
  send_message(server, type, WAND_KP_TRANSMISSION, flags, payload_size);
}

// A request that did not arrive intact. Kenning's host re-sends a request
// once on a NACK (ACKNOWLEDGE+FAIL), but a NACK to STATS crashes it and one
// of type LOGS kills its receiver (KENNING_PROTOCOL_FACTS.md §2.7, §2.9), so
// those and types it has no request for get a FAIL transmission instead.
static void reply_damaged(wand_kenning_server_t* server, uint32_t type) {
  switch (type) {
    case WAND_KP_PING:
    case WAND_KP_DATA:
    case WAND_KP_MODEL:
    case WAND_KP_PROCESS:
    case WAND_KP_OUTPUT:
    case WAND_KP_IO_SPEC:
      ++server->nacks;
      send_message(server, type, WAND_KP_ACKNOWLEDGE, WAND_KP_FLAG_FAIL, 0);
      return;
    default:
      reply(server, type, false, 0);
      return;
  }
}

// Reads and discards |length| payload bytes so the next header starts on a
// message boundary. Returns false when the sender went quiet first.
static bool drain(wand_transport_t* t, uint32_t length) {
  uint8_t scratch[64];
  while (length > 0) {
    size_t chunk = length < sizeof(scratch) ? length : sizeof(scratch);
    size_t got = t->read(t->self, scratch, chunk);
    length -= (uint32_t)got;
    if (got < chunk) return false;
  }
  return true;
}

static void reset_session(wand_kenning_server_t* server) {
  wand_runtime_unload_model(server->core->runtime);
  server->core->state = WAND_STATE_UNINITIALIZED;
}

static bool handle_stats(wand_kenning_server_t* server, size_t size,
                         size_t* reply_size) {
  wand_server_t* core = server->core;
  if (core->state < WAND_STATE_WEIGHTS_LOADED || size != 0) {
    wand_log("protocol: STATS refused (state %d, %lu payload bytes)",
             (int)core->state, (unsigned long)size);
    return false;
  }
  wand_runtime_stats_t stats;
  memset(&stats, 0, sizeof(stats));
  wand_runtime_get_stats(core->runtime, &stats);
  uint8_t* out = wand_server_payload(core);
  for (size_t i = 0; i < wand_runtime_stat_field_count; ++i) {
    const wand_runtime_stat_field_t* field = &wand_runtime_stat_fields[i];
    uint8_t* record = out + i * WAND_KP_STATS_RECORD_SIZE;
    memset(record, 0, WAND_STATS_NAME_SIZE);
    memcpy(record, field->name, strlen(field->name));  // < 32 by contract
    // Kenning v0.8.2's host keeps only ALLOCATION records (§3.1), so every
    // record is one: the others would never reach it.
    write_u64(record + WAND_STATS_NAME_SIZE, WAND_KP_STAT_TYPE_ALLOCATION);
    write_u64(record + WAND_STATS_NAME_SIZE + 8,
              wand_runtime_stat_value(&stats, field));
  }
  *reply_size = wand_runtime_stat_field_count * WAND_KP_STATS_RECORD_SIZE;
  return true;
}

// Receives messages until LAST (or silence), collecting the payloads in the
// buffer. Returns the first problem seen; *out_size is the payload length.
static kp_error_t receive_transmission(wand_kenning_server_t* server,
                                       uint8_t* header, size_t have,
                                       uint32_t* out_type, uint16_t* out_flags,
                                       size_t* out_size) {
  wand_transport_t* t = &server->core->transport;
  uint8_t* buffer = wand_server_payload(server->core);
  kp_error_t error = KP_OK;
  size_t total = 0;
  *out_type = header[0] & 0x3Fu;
  *out_flags = 0;
  for (uint32_t index = 0;; ++index) {
    if (have < WAND_KP_HEADER_SIZE &&
        t->read(t->self, header + have, WAND_KP_HEADER_SIZE - have) !=
            WAND_KP_HEADER_SIZE - have) {
      return KP_TRUNCATED;
    }
    have = 0;
    const uint32_t type = header[0] & 0x3Fu;
    const wand_kp_flow_t flow = (wand_kp_flow_t)(header[0] >> 6);
    const uint16_t flags = (uint16_t)(header[2] | (header[3] << 8));
    const uint32_t size =
        (flags & WAND_KP_FLAG_HAS_PAYLOAD) ? read_u32(header + 4) : 0;
    if (index == 0) {
      *out_flags = flags;
      if (!(flags & WAND_KP_FLAG_FIRST)) error = error ? error : KP_ORDER;
    } else if (type != *out_type || (flags & WAND_KP_FLAG_FIRST)) {
      error = error ? error : KP_ORDER;
    }
    if (flow != WAND_KP_REQUEST) error = error ? error : KP_FLOW;
    if (error == KP_OK && size > WAND_MAX_PAYLOAD_SIZE - total) {
      error = KP_OVERSIZED;
    }
    if (error != KP_OK) {
      // Keep the stream in step: the host sends the rest regardless. A
      // sender that goes quiet while being drained keeps the first problem.
      if (!drain(t, size)) return error;
    } else {
      if (t->read(t->self, buffer + total, size) != size) return KP_TRUNCATED;
      // 0x00 is what a host with error_recovery off sends (§1.6); a real
      // checksum of 0x00 passes either way.
      if (header[1] != 0 &&
          (wand_kp_xor(header, WAND_KP_HEADER_SIZE) ^
           wand_kp_xor(buffer + total, size)) != WAND_KP_CHECKSUM_MAGIC) {
        ++server->bad_checksums;
        error = KP_CHECKSUM;
      }
      total += size;
    }
    if (flags & WAND_KP_FLAG_LAST) break;
  }
  *out_size = total;
  return error;
}

bool wand_kenning_server_handle(wand_kenning_server_t* server,
                                const uint8_t* prefix, size_t prefix_size) {
  wand_server_t* core = server->core;
  uint8_t header[WAND_KP_HEADER_SIZE];
  if (prefix_size > sizeof(header)) prefix_size = sizeof(header);
  memcpy(header, prefix, prefix_size);
  ++server->transmissions;

  uint32_t type = 0;
  uint16_t flags = 0;
  size_t size = 0;
  const kp_error_t error =
      receive_transmission(server, header, prefix_size, &type, &flags, &size);
  if (error != KP_OK) {
    wand_log("protocol: kenning request of type %lu %s",
             (unsigned long)type, kErrorNames[error]);
    if (error == KP_TRUNCATED) ++server->truncated;
    if (error == KP_ORDER) ++server->out_of_order;
    if (error == KP_OVERSIZED) {
      ++server->oversized;
      reply(server, type, false, 0);  // will not fit: a plain refusal
    } else if (error == KP_FLOW) {
      reply(server, type, false, 0);
    } else {
      reply_damaged(server, type);
    }
    return false;
  }

  size_t reply_size = 0;
  bool ok = false;
  switch (type) {
    case WAND_KP_PING:
      reset_session(server);
      server->connected = !(flags & WAND_KP_FLAG_FAIL);
      reply(server, type, true, 0);
      return !server->connected;
    case WAND_KP_STATS:
      ok = handle_stats(server, size, &reply_size);
      break;
    case WAND_KP_DATA:
    case WAND_KP_MODEL:
    case WAND_KP_PROCESS:
    case WAND_KP_OUTPUT:
    case WAND_KP_IO_SPEC:
      ok = wand_server_dispatch(core, type, wand_server_payload(core), size,
                                &reply_size);
      break;
    default:
      wand_log("protocol: kenning request of type %lu is not served",
               (unsigned long)type);
      break;
  }
  reply(server, type, ok, reply_size);
  return false;
}
