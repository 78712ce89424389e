// The firmware's UART contract (uart.c: NS16550A on QEMU virt and Renode's
// UART.NS16550). Waiting sleeps in idle.h's wand_idle_wait; interrupts are
// only wake-ups, never taken as traps.

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

// Returns true and the byte if one is waiting; never blocks.
bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte);

// Lets a received byte wake wand_idle_wait (the receive interrupt).
void wand_uart_wake_on_receive(wand_uart_t* uart);

// Blocks, sleeping, until a byte arrives.
void wand_uart_wait_byte(wand_uart_t* uart, uint8_t* out_byte);

// Reads up to |length| bytes, polling between them; gives up when no byte arrives for
// |timeout_ticks| ticks of the CLINT mtime. Returns the count read.
size_t wand_uart_read(wand_uart_t* uart, uint8_t* buffer, size_t length,
                      uint64_t timeout_ticks);

#endif  // WAND_UART_H_
