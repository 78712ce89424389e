// Waiting without executing instructions: wfi until an interrupt source is
// pending. No CLINT deadline (but the boot-time probe's): under QEMU -icount
// sleep=off a pending timer makes the clock jump to it the moment the guest
// sleeps, and in Renode a sleep on one let virtual time outrun the host. Interrupts stay globally off
// (mstatus.MIE = 0), so a wake-up resumes after the wfi instead of trapping,
// and the code that waited checks its device itself.
//
// Why: Kenning counts every instruction of a session, so a busy-polling
// firmware's count grows with the host's think time (issue 10).

#ifndef WAND_IDLE_H_
#define WAND_IDLE_H_

#include <stdbool.h>
#include <stdint.h>

// Routes the protocol UART's interrupt through the board's interrupt
// controller to mie.MEIE. The UART itself must be told to interrupt on
// receive (uart.h: wand_uart_wake_on_receive).
void wand_idle_init(void);

// Returns after an enabled interrupt became pending; may return early, so
// the caller re-checks its device.
void wand_idle_wait(void);

// Whether sleeping on a timer deadline executes nothing (measured once by
// wand_idle_init): true in Renode, where a sleeping CPU lets virtual time
// pass; false under QEMU -icount sleep=off, where the clock, and minstret
// with it, jumps to the deadline the moment the guest sleeps, so a byte the
// host has not sent yet can never arrive in time.
bool wand_idle_timer_sleep_is_free(void);

// Drops the interrupt controller's stale wake-ups. The caller checks its
// device after this and before wand_idle_sleep, so that a source that
// asserted in between is seen there.
void wand_idle_clear(void);

// Where the board has a goldfish RTC (WAND_BOARD_RTC_BASE != 0; QEMU virt):
// its alarm runs on the host clock, which takes no part in QEMU's icount
// clock warp, so it can end a wfi inside a frame where a CLINT deadline
// cannot. Arming it |ms| of host time from now; whether that time has
// passed; disarming it (and dropping its interrupt).
void wand_idle_host_alarm_arm(uint32_t ms);
bool wand_idle_host_alarm_passed(void);
void wand_idle_host_alarm_disarm(void);

// wfi until an enabled interrupt is pending (the UART's, or the host alarm's
// while armed), without clearing; see wand_idle_clear.
void wand_idle_sleep(void);

#endif  // WAND_IDLE_H_
