// Waiting without executing instructions: wfi until an interrupt source is
// pending. No timer deadline: under QEMU -icount sleep=off a pending timer
// makes the clock jump to it the moment the guest sleeps. Interrupts stay globally off
// (mstatus.MIE = 0), so a wake-up resumes after the wfi instead of trapping,
// and the code that waited checks its device itself.
//
// Why: Kenning counts every instruction of a session, so a busy-polling
// firmware's count grows with the host's think time (issue 10).

#ifndef WAND_IDLE_H_
#define WAND_IDLE_H_

#include <stdint.h>

// Routes the protocol UART's interrupt through the board's interrupt
// controller to mie.MEIE. The UART itself must be told to interrupt on
// receive (uart.h: wand_uart_wake_on_receive).
void wand_idle_init(void);

// Returns after an enabled interrupt became pending; may return early, so
// the caller re-checks its device.
void wand_idle_wait(void);

#endif  // WAND_IDLE_H_
