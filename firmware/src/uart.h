// UART drivers behind one API: NS16550A (uart.c: QEMU virt, Renode's
// UART.NS16550) or PL011 (uart_pl011.c: Springbok); uart_read.c reads with an
// inter-byte timeout on top of either. Waiting for a request sleeps in wfi:
// woken by the receive interrupt through the PLIC (uart.c, idle.h) or by CLINT
// timer ticks where the board wires no UART interrupt (uart_pl011.c).
// Interrupts are only wake-ups, never taken as traps.

#ifndef WAND_UART_H_
#define WAND_UART_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wand_uart_t {
  uintptr_t base;
  uint32_t line_errors;  // reads that saw overrun/parity/framing/break
} wand_uart_t;

// Programs 8N1 at |baud| from |clock_hz| with interrupts off. Keeps every
// byte received before the call (the FIFO control is left untouched).
void wand_uart_init(wand_uart_t* uart, uintptr_t base, uint32_t clock_hz,
                    uint32_t baud);

// Sends |length| bytes, waiting for room in the transmitter.
void wand_uart_write(wand_uart_t* uart, const uint8_t* data, size_t length);

// Returns true once a byte is waiting (without reading it), false when none
// came for |timeout_ticks| ticks of the CLINT mtime. UINT64_MAX waits for the
// next request: both drivers sleep in wfi. A finite timeout (inside a frame)
// sleeps on a CLINT deadline where that costs no instructions (Renode) and
// polls mtime where it would warp the clock (QEMU -icount sleep=off; see
// uart.c); the PL011 sleeps between timer ticks.
bool wand_uart_wait_readable(wand_uart_t* uart, uint64_t timeout_ticks);

// Returns true and the byte if one is waiting; never blocks.
bool wand_uart_try_read(wand_uart_t* uart, uint8_t* out_byte);

// Reads what the receiver holds, up to |length| bytes; never blocks.
// Returns the count read.
size_t wand_uart_read_ready(wand_uart_t* uart, uint8_t* buffer, size_t length);

// Lets a received byte wake a sleeping wand_uart_wait_readable: the receive
// interrupt through the board's interrupt controller (NS16550), nothing to do
// where the wait wakes on timer ticks (PL011).
void wand_uart_wake_on_receive(wand_uart_t* uart);

// Reads up to |length| bytes, waiting between them; gives up when no byte arrives for
// |timeout_ticks| ticks of the CLINT mtime. Returns the count read.
size_t wand_uart_read(wand_uart_t* uart, uint8_t* buffer, size_t length,
                      uint64_t timeout_ticks);

#endif  // WAND_UART_H_
