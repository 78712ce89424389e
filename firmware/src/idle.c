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
#define MIE_MTIE (1u << 7)

static bool timer_sleep_free = false;

// One 10 us sleep on the timer with only the timer enabled (a byte already
// waiting must not end it early): QEMU's minstret then advances by the slept
// time (one count per ns: 100 per mtime tick), Renode's by the few
// instructions around the wfi.
static bool measure_timer_sleep(void) {
  const uint64_t ticks = WAND_BOARD_MTIME_HZ / 100000u;
  const wand_board_counters_t before = wand_board_read_counters();
  wand_board_set_mtimecmp(before.mtime + ticks);
  __asm__ volatile("csrs mie, %0" ::"r"(MIE_MTIE));
  while (wand_board_mtime() - before.mtime < ticks) __asm__ volatile("wfi");
  __asm__ volatile("csrc mie, %0" ::"r"(MIE_MTIE));
  const wand_board_counters_t after = wand_board_read_counters();
  return after.instructions - before.instructions < ticks;
}

#if !defined(WAND_BOARD_RTC_BASE) || !defined(WAND_BOARD_RTC_IRQ)
#error "the RTC's base and source come from the build (wand_assets/core/targets.py)"
#endif

// Goldfish RTC registers (QEMU hw/rtc/goldfish_rtc.c): time and alarm in ns
// of the host clock; reading TIME_LOW latches TIME_HIGH.
enum {
  kRtcTimeLow = 0x00,
  kRtcTimeHigh = 0x04,
  kRtcAlarmLow = 0x08,  // writing it sets the alarm
  kRtcAlarmHigh = 0x0c,
  kRtcIrqEnabled = 0x10,
  kRtcClearAlarm = 0x14,
  kRtcClearInterrupt = 0x1c,
};

static uint64_t host_alarm_deadline = 0;

static inline volatile uint32_t* rtc_reg(uintptr_t offset) {
  return (volatile uint32_t*)(WAND_BOARD_RTC_BASE + offset);
}

static uint64_t rtc_now(void) {
  const uint32_t low = *rtc_reg(kRtcTimeLow);
  return ((uint64_t)*rtc_reg(kRtcTimeHigh) << 32) | low;
}

void wand_idle_host_alarm_arm(uint32_t ms) {
  host_alarm_deadline = rtc_now() + (uint64_t)ms * 1000000u;
  *rtc_reg(kRtcAlarmHigh) = (uint32_t)(host_alarm_deadline >> 32);
  *rtc_reg(kRtcAlarmLow) = (uint32_t)host_alarm_deadline;
}

bool wand_idle_host_alarm_passed(void) {
  return rtc_now() >= host_alarm_deadline;
}

void wand_idle_host_alarm_disarm(void) {
  *rtc_reg(kRtcClearAlarm) = 1;
  *rtc_reg(kRtcClearInterrupt) = 1;
}

void wand_idle_sleep(void) { __asm__ volatile("wfi"); }

void wand_idle_init(void) {
  timer_sleep_free = measure_timer_sleep();
  if (WAND_BOARD_RTC_BASE != 0 && !timer_sleep_free) {
    *rtc_reg(kRtcIrqEnabled) = 1;
    wand_plic_enable_source(WAND_BOARD_RTC_IRQ);
  }
  wand_plic_enable_source(WAND_BOARD_UART0_IRQ);
  __asm__ volatile("csrs mie, %0" ::"r"(MIE_MEIE));
}

bool wand_idle_timer_sleep_is_free(void) { return timer_sleep_free; }

void wand_idle_clear(void) { wand_plic_acknowledge_all(); }

void wand_idle_wait(void) {
  __asm__ volatile("wfi");
  // The caller re-checks its device after this, so a source that asserts
  // between the claim and the complete is not missed.
  wand_plic_acknowledge_all();
}

