// The STATS field table, generated from WAND_RUNTIME_STATS_FIELDS so that the
// struct and every reply that lists its fields cannot drift apart.

#include <stddef.h>
#include <string.h>

#include "runtime.h"

const wand_runtime_stat_field_t wand_runtime_stat_fields[] = {
#define WAND_STATS_ROW(name) {#name, offsetof(wand_runtime_stats_t, name)},
    WAND_RUNTIME_STATS_FIELDS(WAND_STATS_ROW)
#undef WAND_STATS_ROW
};

const size_t wand_runtime_stat_field_count =
    sizeof(wand_runtime_stat_fields) / sizeof(wand_runtime_stat_fields[0]);

uint64_t wand_runtime_stat_value(const wand_runtime_stats_t* stats,
                                 const wand_runtime_stat_field_t* field) {
  uint64_t value;
  // memcpy: the offset comes from offsetof, but this keeps the access free of
  // any aliasing assumption about the struct's byte view.
  memcpy(&value, (const uint8_t*)stats + field->offset, sizeof(value));
  return value;
}
