// Framing, dispatch and the model state machine of the legacy Kenning
// protocol. See protocol.h for the contract and PROTOCOL.md for the wire.

#include "protocol.h"

#include <string.h>

#include "le_bytes.h"
#include "log.h"

static const char* const kMessageNames[WAND_MSG_TYPE_COUNT] = {
    "OK", "ERROR", "DATA", "MODEL", "PROCESS", "OUTPUT", "STATS", "IOSPEC",
};

static const char* message_name(uint32_t type) {
  return type < WAND_MSG_TYPE_COUNT ? kMessageNames[type] : "UNKNOWN";
}

static uint8_t* header_of(wand_server_t* server) {
  return server->buffer + WAND_BUFFER_HEADER_OFFSET;
}

static uint8_t* payload_of(wand_server_t* server) {
  return server->buffer + WAND_BUFFER_PAYLOAD_OFFSET;
}

bool wand_server_init(wand_server_t* server, wand_transport_t transport,
                      wand_runtime_t* runtime, uint8_t* buffer,
                      size_t buffer_size) {
  memset(server, 0, sizeof(*server));
  if (buffer == NULL || ((uintptr_t)buffer & 3u) != 0 ||
      buffer_size < WAND_BUFFER_SIZE || transport.wait_byte == NULL ||
      transport.read == NULL || transport.write == NULL) {
    return false;
  }
  server->transport = transport;
  server->runtime = runtime;
  server->buffer = buffer;
  server->state = WAND_STATE_UNINITIALIZED;
  return true;
}

// Sends the frame built in the buffer: header + |payload_size| bytes that the
// handler has already written at payload_of(server).
static void send_reply(wand_server_t* server, wand_message_type_t type,
                       size_t payload_size) {
  uint8_t* header = header_of(server);
  write_u32(header, (uint32_t)(payload_size + 2u));
  header[4] = (uint8_t)type;
  header[5] = (uint8_t)((uint32_t)type >> 8);
  server->transport.write(server->transport.self, header,
                          WAND_HEADER_SIZE + payload_size);
}

static void send_error(wand_server_t* server) {
  ++server->errors;
  send_reply(server, WAND_MSG_ERROR, 0);
}

// Reads and discards |length| bytes (an oversized frame's payload) so the next
// header starts on a frame boundary. Stops early when the sender goes quiet.
static void drain(wand_server_t* server, uint32_t length) {
  uint8_t* scratch = payload_of(server);
  while (length > 0) {
    size_t chunk = length < WAND_MAX_PAYLOAD_SIZE ? length : WAND_MAX_PAYLOAD_SIZE;
    size_t got = server->transport.read(server->transport.self, scratch, chunk);
    length -= (uint32_t)got;
    if (got < chunk) {
      wand_log("protocol: drain stopped by timeout, %lu bytes not received",
               (unsigned long)length);
      return;
    }
  }
}

//===----------------------------------------------------------------------===//
// Request handlers. Each returns true with *reply_size set (reply type OK,
// payload already at payload_of(server)), or false for an ERROR reply.
//===----------------------------------------------------------------------===//

static bool require_state(const wand_server_t* server, wand_model_state_t min,
                          const char* request) {
  if (server->state >= min) return true;
  wand_log("protocol: %s refused in state %d (needs %d)", request,
           (int)server->state, (int)min);
  return false;
}

static bool require_empty(size_t size, const char* request) {
  if (size == 0) return true;
  wand_log("protocol: %s must have an empty payload (got %lu bytes)", request,
           (unsigned long)size);
  return false;
}

static bool handle_iospec(wand_server_t* server, const uint8_t* payload,
                          size_t size, size_t* reply_size) {
  wand_iospec_t spec;
  const char* reason = NULL;
  // The length tells Kenning v0.8.0's struct from v0.8.1+'s (iospec.h).
  const bool parsed =
      size == WAND_IOSPEC_KENNING_WIRE_SIZE
          ? wand_iospec_parse_kenning(payload, size, WAND_MAX_PAYLOAD_SIZE,
                                      &spec, &reason)
          : wand_iospec_parse(payload, size, WAND_MAX_PAYLOAD_SIZE, &spec,
                              &reason);
  if (!parsed) {
    wand_log("protocol: IOSPEC rejected: %s", reason);
    return false;
  }
  // A new I/O description invalidates the model loaded for the old one.
  wand_runtime_unload_model(server->runtime);
  server->iospec = spec;
  server->state = WAND_STATE_STRUCT_LOADED;
  *reply_size = 0;
  return true;
}

static bool handle_model(wand_server_t* server, const uint8_t* payload,
                         size_t size, size_t* reply_size) {
  if (!require_state(server, WAND_STATE_STRUCT_LOADED, "MODEL")) return false;
  if (size == 0) {
    wand_log("protocol: MODEL payload is empty");
    return false;
  }
  wand_runtime_unload_model(server->runtime);
  server->state = WAND_STATE_STRUCT_LOADED;
  if (!wand_runtime_load_model(server->runtime, &server->iospec, payload,
                               size)) {
    return false;
  }
  server->state = WAND_STATE_WEIGHTS_LOADED;
  *reply_size = 0;
  return true;
}

static bool handle_data(wand_server_t* server, const uint8_t* payload,
                        size_t size, size_t* reply_size) {
  if (!require_state(server, WAND_STATE_WEIGHTS_LOADED, "DATA")) return false;
  if (size != server->iospec.total_input_bytes) {
    wand_log("protocol: DATA has %lu bytes, IOSPEC expects %lu",
             (unsigned long)size,
             (unsigned long)server->iospec.total_input_bytes);
    return false;
  }
  server->state = WAND_STATE_WEIGHTS_LOADED;  // old inputs/outputs are gone
  if (!wand_runtime_set_inputs(server->runtime, payload, size)) return false;
  server->state = WAND_STATE_INPUT_LOADED;
  *reply_size = 0;
  return true;
}

static bool handle_process(wand_server_t* server, size_t size,
                           size_t* reply_size) {
  if (!require_state(server, WAND_STATE_INPUT_LOADED, "PROCESS")) return false;
  if (!require_empty(size, "PROCESS")) return false;
  server->state = WAND_STATE_INPUT_LOADED;  // until the invoke succeeds
  if (!wand_runtime_invoke(server->runtime)) return false;
  server->state = WAND_STATE_INFERENCE_DONE;
  *reply_size = 0;
  return true;
}

static bool handle_output(wand_server_t* server, size_t size,
                          size_t* reply_size) {
  if (!require_state(server, WAND_STATE_INFERENCE_DONE, "OUTPUT")) return false;
  if (!require_empty(size, "OUTPUT")) return false;
  size_t written = 0;
  if (!wand_runtime_read_outputs(server->runtime, payload_of(server),
                                 WAND_MAX_PAYLOAD_SIZE, &written)) {
    return false;
  }
  if (written != server->iospec.total_output_bytes) {
    wand_log("protocol: runtime produced %lu output bytes, IOSPEC says %lu",
             (unsigned long)written,
             (unsigned long)server->iospec.total_output_bytes);
    return false;
  }
  *reply_size = written;
  return true;
}

static bool handle_stats(wand_server_t* server, size_t size,
                         size_t* reply_size) {
  if (!require_state(server, WAND_STATE_WEIGHTS_LOADED, "STATS")) return false;
  if (!require_empty(size, "STATS")) return false;
  wand_runtime_stats_t stats;
  memset(&stats, 0, sizeof(stats));
  wand_runtime_get_stats(server->runtime, &stats);
  const size_t count = wand_runtime_stat_field_count;
  uint8_t* out = payload_of(server);
  for (size_t i = 0; i < count; ++i) {
    const wand_runtime_stat_field_t* field = &wand_runtime_stat_fields[i];
    uint8_t* record = out + i * WAND_STATS_RECORD_SIZE;
    memset(record, 0, WAND_STATS_NAME_SIZE);
    size_t name_length = strlen(field->name);  // < 32 by construction
    memcpy(record, field->name, name_length);
    write_u64(record + WAND_STATS_NAME_SIZE,
              wand_runtime_stat_value(&stats, field));
  }
  *reply_size = count * WAND_STATS_RECORD_SIZE;
  return true;
}

bool wand_server_dispatch(wand_server_t* server, uint32_t type,
                          const uint8_t* payload, size_t size,
                          size_t* reply_size) {
  switch (type) {
    case WAND_MSG_IOSPEC:
      return handle_iospec(server, payload, size, reply_size);
    case WAND_MSG_MODEL:
      return handle_model(server, payload, size, reply_size);
    case WAND_MSG_DATA:
      return handle_data(server, payload, size, reply_size);
    case WAND_MSG_PROCESS:
      return handle_process(server, size, reply_size);
    case WAND_MSG_OUTPUT:
      return handle_output(server, size, reply_size);
    case WAND_MSG_STATS:
      return handle_stats(server, size, reply_size);
    default:  // OK/ERROR are replies, not requests; >= 8 is unknown
      wand_log("protocol: unexpected message type %lu (%s)",
               (unsigned long)type, message_name(type));
      return false;
  }
}

bool wand_server_step(wand_server_t* server) {
  wand_transport_t* t = &server->transport;
  uint8_t* header = header_of(server);
  if (!t->wait_byte(t->self, &header[0])) return false;
  ++server->frames;

  if (t->read(t->self, header + 1, WAND_HEADER_SIZE - 1) !=
      WAND_HEADER_SIZE - 1) {
    ++server->truncated;
    wand_log("protocol: header cut short by timeout");
    send_error(server);
    return true;
  }
  const uint32_t size = read_u32(header);
  const uint32_t type = (uint32_t)header[4] | ((uint32_t)header[5] << 8);
  if (size < 2u) {
    wand_log("protocol: size field %lu < 2", (unsigned long)size);
    send_error(server);
    return true;
  }
  const uint32_t payload_size = size - 2u;
  if (size > WAND_MAX_MESSAGE_SIZE) {
    ++server->oversized;
    wand_log("protocol: %s frame of %lu bytes exceeds %lu, draining",
             message_name(type), (unsigned long)size,
             (unsigned long)WAND_MAX_MESSAGE_SIZE);
    drain(server, payload_size);
    send_error(server);
    return true;
  }
  uint8_t* payload = payload_of(server);
  if (t->read(t->self, payload, payload_size) != payload_size) {
    ++server->truncated;
    wand_log("protocol: %s payload cut short by timeout", message_name(type));
    send_error(server);
    return true;
  }

  size_t reply_size = 0;
  if (wand_server_dispatch(server, type, payload, payload_size,
                           &reply_size)) {
    send_reply(server, WAND_MSG_OK, reply_size);
  } else {
    send_error(server);
  }
  return true;
}
