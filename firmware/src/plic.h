// The SiFive-layout PLIC of QEMU virt and of Renode's
// PlatformLevelInterruptController, as the firmware's wfi idle uses it:
// hart 0's M-mode context (context 0) only.

#ifndef WAND_PLIC_H_
#define WAND_PLIC_H_

#include <stdint.h>

// Lets |source| raise the machine external interrupt (priority 1 over
// threshold 0; priorities are ignored where the model has none).
void wand_plic_enable_source(uint32_t source);

// Claims and completes every pending source, so that the machine external
// interrupt drops until a source asserts again.
void wand_plic_acknowledge_all(void);

#endif  // WAND_PLIC_H_
