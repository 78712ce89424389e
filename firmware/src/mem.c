// memset/memcpy replacing picolibc's size-optimised byte loops (IREE clears
// and copies tens of KB per inference). Vector targets (WAND_VECTOR=1) use
// RVV with e8/m8 strips; scalar targets move aligned 32-bit words.
//
// Built with -fno-tree-loop-distribute-patterns so GCC does not turn these
// loops back into calls to themselves.

#include <stddef.h>
#include <stdint.h>

typedef uint32_t __attribute__((may_alias)) word_t;

#if WAND_VECTOR

void* memset(void* dest, int c, size_t n) {
  uint8_t* d = (uint8_t*)dest;
  size_t vl;
  while (n > 0) {
    __asm__ volatile(
        "vsetvli %0, %1, e8, m8, ta, ma\n\t"
        "vmv.v.x v8, %2\n\t"
        "vse8.v v8, (%3)"
        : "=&r"(vl)
        : "r"(n), "r"(c), "r"(d)
        : "memory");
    d += vl;
    n -= vl;
  }
  return dest;
}

void* memcpy(void* restrict dest, const void* restrict src, size_t n) {
  uint8_t* d = (uint8_t*)dest;
  const uint8_t* s = (const uint8_t*)src;
  size_t vl;
  while (n > 0) {
    __asm__ volatile(
        "vsetvli %0, %1, e8, m8, ta, ma\n\t"
        "vle8.v v8, (%2)\n\t"
        "vse8.v v8, (%3)"
        : "=&r"(vl)
        : "r"(n), "r"(s), "r"(d)
        : "memory");
    d += vl;
    s += vl;
    n -= vl;
  }
  return dest;
}

#else  // !WAND_VECTOR

void* memset(void* dest, int c, size_t n) {
  uint8_t* d = (uint8_t*)dest;
  const uint8_t byte = (uint8_t)c;
  while (n > 0 && ((uintptr_t)d & 3u) != 0) {
    *d++ = byte;
    --n;
  }
  const uint32_t word = 0x01010101u * byte;
  while (n >= 16) {
    ((word_t*)d)[0] = word;
    ((word_t*)d)[1] = word;
    ((word_t*)d)[2] = word;
    ((word_t*)d)[3] = word;
    d += 16;
    n -= 16;
  }
  while (n >= 4) {
    *(word_t*)d = word;
    d += 4;
    n -= 4;
  }
  while (n > 0) {
    *d++ = byte;
    --n;
  }
  return dest;
}

void* memcpy(void* restrict dest, const void* restrict src, size_t n) {
  uint8_t* d = (uint8_t*)dest;
  const uint8_t* s = (const uint8_t*)src;
  if ((((uintptr_t)d ^ (uintptr_t)s) & 3u) == 0) {
    while (n > 0 && ((uintptr_t)d & 3u) != 0) {
      *d++ = *s++;
      --n;
    }
    while (n >= 16) {
      ((word_t*)d)[0] = ((const word_t*)s)[0];
      ((word_t*)d)[1] = ((const word_t*)s)[1];
      ((word_t*)d)[2] = ((const word_t*)s)[2];
      ((word_t*)d)[3] = ((const word_t*)s)[3];
      d += 16;
      s += 16;
      n -= 16;
    }
    while (n >= 4) {
      *(word_t*)d = *(const word_t*)s;
      d += 4;
      s += 4;
      n -= 4;
    }
  }
  while (n > 0) {
    *d++ = *s++;
    --n;
  }
  return dest;
}

#endif  // WAND_VECTOR
