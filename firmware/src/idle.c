// wfi idle for boards whose UART interrupt reaches the hart through a PLIC
// (QEMU virt, the Renode wand board). mstatus.MIE stays 0 from start.S on:
// wfi wakes when (mip & mie) != 0 whatever mstatus.MIE says (privileged
// spec, "Wait for Interrupt"), which both simulators implement.

#include "idle.h"

#include "board.h"
#include "plic.h"

#if !defined(WAND_BOARD_UART0_IRQ)
#error "the UART's PLIC source comes from the build (wand_assets/core/targets.py)"
#endif

#define MIE_MEIE (1u << 11)

void wand_idle_init(void) {
  wand_plic_enable_source(WAND_BOARD_UART0_IRQ);
  __asm__ volatile("csrs mie, %0" ::"r"(MIE_MEIE));
}

void wand_idle_wait(void) {
  __asm__ volatile("wfi");
  // The caller re-checks its device after this, so a source that asserts
  // between the claim and the complete is not missed.
  wand_plic_acknowledge_all();
}
