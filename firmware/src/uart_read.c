// The read with an inter-byte timeout, the same for every UART driver: built
// on the driver's wand_uart_try_read and the CLINT mtime.

#include "board.h"
#include "uart.h"

size_t wand_uart_read(wand_uart_t* uart, uint8_t* buffer, size_t length,
                      uint64_t timeout_ticks) {
  size_t count = 0;
  while (true) {
    count += wand_uart_read_ready(uart, buffer + count, length - count);
    if (count == length) return count;
    // The receiver is empty: wait for the next byte on the inter-byte clock.
    if (!wand_uart_wait_readable(uart, timeout_ticks)) return count;
  }
}
