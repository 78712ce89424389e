// SHA-256 (FIPS 180-4) of a byte buffer, for the EmitC firmware's MODEL check:
// the uploaded .vmfb must be the one the linked-in C module was compiled with.
// Pure C, no allocation; any length that fits in size_t.

#ifndef WAND_SHA256_H_
#define WAND_SHA256_H_

#include <stddef.h>
#include <stdint.h>

#define WAND_SHA256_BYTES 32

void wand_sha256(const uint8_t* data, size_t size,
                 uint8_t out[WAND_SHA256_BYTES]);

#endif  // WAND_SHA256_H_
