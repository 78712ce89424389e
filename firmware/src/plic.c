// Register offsets from the RISC-V PLIC specification's SiFive layout, which
// QEMU's sifive_plic and Renode's PlatformLevelInterruptController share.

#include "plic.h"

#include "board.h"

#if !defined(WAND_BOARD_PLIC_BASE)
#error "the PLIC base comes from the build (wand_assets/core/targets.py)"
#endif

enum {
  kPriorityOffset = 0x0,       // u32 per source
  kEnableOffset = 0x2000,      // context 0's enable bits
  kThresholdOffset = 0x200000,  // context 0's threshold
  kClaimOffset = 0x200004,      // context 0's claim/complete
};

static inline volatile uint32_t* plic_reg(uintptr_t offset) {
  return (volatile uint32_t*)(WAND_BOARD_PLIC_BASE + offset);
}

void wand_plic_enable_source(uint32_t source) {
  *plic_reg(kPriorityOffset + 4u * source) = 1;
  *plic_reg(kThresholdOffset) = 0;
  *plic_reg(kEnableOffset + 4u * (source / 32u)) |= 1u << (source % 32u);
}

void wand_plic_acknowledge_all(void) {
  // A claim returns 0 once nothing is pending; the bound stops a model that
  // keeps answering the same source from looping forever.
  for (int i = 0; i < 32; ++i) {
    uint32_t source = *plic_reg(kClaimOffset);
    if (source == 0) return;
    *plic_reg(kClaimOffset) = source;
  }
}
