// ARM PL011 polling driver (Springbok's UART.PL011 in Renode), behind the
// same uart.h API as the NS16550 driver (uart.c); CMake picks one per board.

#include "board.h"
#include "uart.h"

enum {
  kRegDr = 0x00,    // data; bits 8..11 of a read are the byte's errors
  kRegFr = 0x18,    // flags
  kRegIbrd = 0x24,  // integer baud divisor
  kRegFbrd = 0x28,  // fractional baud divisor (64ths)
  kRegLcrH = 0x2c,  // line control; writing it latches the divisors
  kRegCr = 0x30,    // control
  kRegImsc = 0x38,  // interrupt mask
};

enum {
  kDrErrors = 0xf00,  // overrun, break, parity, framing
  kFrRxEmpty = 1u << 4,
  kFrTxFull = 1u << 5,
  kLcrH8N1Fifo = (3u << 5) | (1u << 4),  // 8 data bits, FIFOs on
  kCrEnable = (1u << 0) | (1u << 8) | (1u << 9),  // UART, TX and RX on
};

static inline uint32_t reg_read(const wand_uart_t* uart, uintptr_t reg) {
  return *(volatile uint32_t*)(uart->base + reg);
}

static inline void reg_write(const wand_uart_t* uart, uintptr_t reg,
                             uint32_t value) {
  *(volatile uint32_t*)(uart->base + reg) = value;
}

void wand_uart_init(wand_uart_t* uart, uintptr_t base, uint32_t clock_hz,
                    uint32_t baud) {
  uart->base = base;
  uart->line_errors = 0;
  // Divisor in 64ths of the 16x baud clock, rounded to nearest.
  const uint32_t divisor64 = (4u * clock_hz + baud / 2u) / baud;
  reg_write(uart, kRegImsc, 0);
  reg_write(uart, kRegIbrd, divisor64 >> 6);
  reg_write(uart, kRegFbrd, divisor64 & 0x3fu);
  // Unlike the 16550's FCR, LCR_H does not flush the receive FIFO, so bytes
  // a host sent before boot stay queued.
  reg_write(uart, kRegLcrH, kLcrH8N1Fifo);
  reg_write(uart, kRegCr, kCrEnable);
}

void wand_uart_write(wand_uart_t* uart, const uint8_t* data, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    while (reg_read(uart, kRegFr) & kFrTxFull) {
    }
    reg_write(uart, kRegDr, data[i]);
  }
}

bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte) {
  if (reg_read(uart, kRegFr) & kFrRxEmpty) return false;
  const uint32_t data = reg_read(uart, kRegDr);
  if (data & kDrErrors) ++uart->line_errors;
  *out_byte = (uint8_t)data;
  return true;
}

size_t wand_uart_read(wand_uart_t* uart, uint8_t* buffer, size_t length,
                      uint64_t timeout_ticks) {
  size_t count = 0;
  while (count < length) {
    if (wand_uart_try_read(uart, &buffer[count])) {
      ++count;
      continue;
    }
    // The FIFO is empty: start the inter-byte clock.
    const uint64_t start = wand_board_mtime();
    bool got = false;
    while (!got) {
      got = wand_uart_try_read(uart, &buffer[count]);
      if (!got && wand_board_mtime() - start >= timeout_ticks) return count;
    }
    ++count;
  }
  return count;
}
