// UART drivers behind one API: NS16550A (uart.c: QEMU virt, Renode's
// UART.NS16550) or PL011 (uart_pl011.c: Springbok); uart_read.c reads with an
// inter-byte timeout on top of either.

#ifndef WAND_UART_H_
#define WAND_UART_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wand_uart_t {
  uintptr_t base;
  uint32_t line_errors;  // overrun/parity/framing/break seen in LSR
} wand_uart_t;

// Programs 8N1 at |baud| from |clock_hz| with interrupts off. Keeps every
// byte received before the call (the FIFO control is left untouched).
void wand_uart_init(wand_uart_t* uart, uintptr_t base, uint32_t clock_hz,
                    uint32_t baud);

// Sends |length| bytes, waiting for room in the transmitter.
void wand_uart_write(wand_uart_t* uart, const uint8_t* data, size_t length);

// Returns true once a byte is waiting (without reading it), false when none
// came for |timeout_ticks| ticks of the CLINT mtime (UINT64_MAX: wait
// forever). The NS16550 driver polls; the PL011 driver sleeps in wfi between
// timer ticks (uart_pl011.c).
bool wand_uart_wait_readable(wand_uart_t* uart, uint64_t timeout_ticks);

// Returns true and the byte if one is waiting; never blocks.
bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte);

// Reads up to |length| bytes; gives up when no byte arrives for
// |timeout_ticks| ticks of the CLINT mtime. Returns the count read.
size_t wand_uart_read(wand_uart_t* uart, uint8_t* buffer, size_t length,
                      uint64_t timeout_ticks);

#endif  // WAND_UART_H_
