// NS16550A driver. Register offsets assume reg-shift 0 (one byte per
// register), as on QEMU virt and Renode's UART.NS16550. Waiting for a frame
// sleeps in wand_idle_wait, woken by the receive interrupt; inside a frame it
// sleeps too under QEMU, bounded by the goldfish RTC's host-clock alarm, and
// polls the inter-byte clock in Renode (see wand_uart_wait_readable).

#include "uart.h"

#include "board.h"
#include "idle.h"

enum {
  kRegRbrThrDll = 0,  // receive / transmit / divisor low (DLAB)
  kRegIerDlm = 1,     // interrupt enable / divisor high (DLAB)
  kRegFcr = 2,        // FIFO control (write); see wand_uart_init
  kRegLcr = 3,        // line control
  kRegMcr = 4,        // modem control
  kRegLsr = 5,        // line status
};

enum {
  kLcrDlab = 0x80,
  kLcr8N1 = 0x03,
  kMcrDtrRts = 0x03,
  kLsrDataReady = 0x01,
  kLsrErrors = 0x1e,  // overrun, parity, framing, break
  kLsrThrEmpty = 0x20,
  kIerReceivedData = 0x01,
};

#ifndef WAND_UART_HOST_TIMEOUT_MS
#define WAND_UART_HOST_TIMEOUT_MS 2000
#endif

static inline uint8_t reg_read(const wand_uart_t* uart, uintptr_t reg) {
  return *(volatile uint8_t*)(uart->base + reg);
}

static inline void reg_write(const wand_uart_t* uart, uintptr_t reg,
                             uint8_t value) {
  *(volatile uint8_t*)(uart->base + reg) = value;
}

void wand_uart_init(wand_uart_t* uart, uintptr_t base, uint32_t clock_hz,
                    uint32_t baud) {
  uart->base = base;
  uart->line_errors = 0;
  uint32_t divisor = (clock_hz + 8u * baud) / (16u * baud);
  if (divisor == 0) divisor = 1;
  reg_write(uart, kRegIerDlm, 0);
  reg_write(uart, kRegLcr, kLcrDlab);
  reg_write(uart, kRegRbrThrDll, (uint8_t)divisor);
  reg_write(uart, kRegIerDlm, (uint8_t)(divisor >> 8));
  reg_write(uart, kRegLcr, kLcr8N1);
  // FCR stays as reset left it: a host may send before we get here, and both
  // simulators' 16550 models discard what was received when FCR sets the RX
  // reset bit or toggles FIFO enable. Saving RBR before such a write cannot
  // close the gap: QEMU can deliver the next byte between the save and the
  // write, and Renode queues an unbounded number of bytes. Nothing is lost
  // as is: QEMU with the FIFO off holds one byte in RBR and back-pressures the
  // rest in the chardev (the same one byte at a time that FIFO mode with a
  // trigger level of 1 gave), and Renode queues all bytes whatever FCR says.
  reg_write(uart, kRegMcr, kMcrDtrRts);
}

void wand_uart_write(wand_uart_t* uart, const uint8_t* data, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    while ((reg_read(uart, kRegLsr) & kLsrThrEmpty) == 0) {
    }
    reg_write(uart, kRegRbrThrDll, data[i]);
  }
}

bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte) {
  uint8_t lsr = reg_read(uart, kRegLsr);
  if (lsr & kLsrErrors) ++uart->line_errors;
  if ((lsr & kLsrDataReady) == 0) return false;
  *out_byte = reg_read(uart, kRegRbrThrDll);
  return true;
}

size_t wand_uart_read_ready(wand_uart_t* uart, uint8_t* buffer,
                            size_t length) {
  // The per-byte hot path of every frame (9 instructions a byte): the line
  // errors are gathered and counted once per call.
  volatile const uint8_t* regs = (volatile const uint8_t*)uart->base;
  uint8_t* out = buffer;
  uint8_t* const end = buffer + length;
  uint8_t lsr;
  uint8_t seen = 0;
  while (out != end && ((lsr = regs[kRegLsr]) & kLsrDataReady) != 0) {
    seen |= lsr;
    *out++ = regs[kRegRbrThrDll];
  }
  if (seen & kLsrErrors) ++uart->line_errors;
  return (size_t)(out - buffer);
}

void wand_uart_wake_on_receive(wand_uart_t* uart) {
  // IER is safe to write with bytes in flight, unlike FCR (wand_uart_init).
  reg_write(uart, kRegIerDlm, kIerReceivedData);
  wand_idle_init();
}

bool wand_uart_wait_readable(wand_uart_t* uart, uint64_t timeout_ticks) {
  if (timeout_ticks == UINT64_MAX) {
    while ((reg_read(uart, kRegLsr) & kLsrDataReady) == 0) wand_idle_wait();
    return true;
  }
  if (WAND_BOARD_RTC_BASE != 0 && !wand_idle_timer_sleep_is_free()) {
    // QEMU -icount sleep=off: a CLINT deadline would jump the clock to it,
    // so the wait sleeps until the next byte or the RTC's host-clock alarm,
    // and the timeout is WAND_UART_HOST_TIMEOUT_MS of host time
    // (firmware/README.md, "Waiting inside a frame").
    wand_idle_host_alarm_arm(WAND_UART_HOST_TIMEOUT_MS);
    bool ready = true;
    while ((reg_read(uart, kRegLsr) & kLsrDataReady) == 0) {
      if (wand_idle_host_alarm_passed()) {
        ready = false;
        break;
      }
      wand_idle_clear();
      if (reg_read(uart, kRegLsr) & kLsrDataReady) break;
      wand_idle_sleep();
    }
    wand_idle_host_alarm_disarm();
    return ready;
  }
  // Renode: polled. A CLINT deadline there let Renode's virtual time run
  // ahead of the host while the CPU slept, so a 37 KB MODEL upload timed out
  // mid-frame under load (firmware/README.md, "Waiting inside a frame"). A
  // polled mtime advances with executed instructions, as PROTOCOL.md's
  // timeout says.
  const uint64_t start = wand_board_mtime();
  while ((reg_read(uart, kRegLsr) & kLsrDataReady) == 0) {
    if (wand_board_mtime() - start >= timeout_ticks) return false;
  }
  return true;
}
