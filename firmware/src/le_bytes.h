// Little-endian field access for the wire formats (both framings are LE).

#ifndef WAND_LE_BYTES_H_
#define WAND_LE_BYTES_H_

#include <stdint.h>

static inline uint32_t read_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static inline void write_u32(uint8_t* p, uint32_t value) {
  p[0] = (uint8_t)value;
  p[1] = (uint8_t)(value >> 8);
  p[2] = (uint8_t)(value >> 16);
  p[3] = (uint8_t)(value >> 24);
}

static inline void write_u64(uint8_t* p, uint64_t value) {
  write_u32(p, (uint32_t)value);
  write_u32(p + 4, (uint32_t)(value >> 32));
}

#endif  // WAND_LE_BYTES_H_
