// The Kenning protocol server (legacy and KenningProtocol framing, told apart
// per request: protocol_mux.h): bring up the UART and the runtime, say
// "Runtime started" on the log channel, then serve requests forever.

#include <stdint.h>

#include "board.h"
#include "log.h"
#include "protocol_mux.h"
#include "runtime.h"
#include "uart.h"

// Inter-byte timeout inside a frame, in ms of CLINT mtime (set by CMake).
// README.md ("Timeouts"): under QEMU -icount, mtime follows executed
// instructions, so 100 ms of guest time is several seconds of host time.
#ifndef WAND_UART_TIMEOUT_MS
#define WAND_UART_TIMEOUT_MS 100
#endif
// Multiplied before dividing: a timer whose rate is not a whole number of kHz
// keeps its exact tick count.
#define UART_TIMEOUT_TICKS \
  ((uint64_t)WAND_UART_TIMEOUT_MS * WAND_BOARD_MTIME_HZ / 1000u)

// Requests arrive here and replies are built in place; the header sits 2
// bytes in so that the payload (a .vmfb, tensors) is 4-byte aligned.
static uint8_t message_buffer[WAND_BUFFER_SIZE] __attribute__((aligned(4)));

static bool uart_wait_byte(void* self, uint8_t* out_byte) {
  wand_uart_t* uart = (wand_uart_t*)self;
  do {
    wand_uart_wait_readable(uart, UINT64_MAX);
  } while (!wand_uart_try_read(uart, out_byte));
  return true;
}

static size_t uart_read(void* self, uint8_t* buffer, size_t length) {
  return wand_uart_read((wand_uart_t*)self, buffer, length, UART_TIMEOUT_TICKS);
}

static void uart_write(void* self, const uint8_t* data, size_t length) {
  wand_uart_write((wand_uart_t*)self, data, length);
}

int main(void) {
  wand_uart_t uart;
  wand_uart_init(&uart, WAND_BOARD_UART0_BASE, WAND_BOARD_UART_CLOCK_HZ,
                 WAND_BOARD_UART_BAUD);
  wand_uart_wake_on_receive(&uart);

  wand_runtime_t* runtime = NULL;
  if (!wand_runtime_create(&runtime)) {
    wand_log("FATAL: runtime creation failed");
    return WAND_EXIT_INIT_FAILED;
  }

  static wand_mux_t server;  // static: the replay transport points into it
  const wand_transport_t transport = {
      .self = &uart,
      .wait_byte = uart_wait_byte,
      .read = uart_read,
      .write = uart_write,
  };
  if (!wand_mux_init(&server, transport, runtime, message_buffer,
                     sizeof(message_buffer))) {
    wand_log("FATAL: protocol server init failed");
    return WAND_EXIT_INIT_FAILED;
  }

#if WAND_PROTOCOL_ONLY
  wand_log("WARNING: TEST-ONLY protocol firmware, no inference (fake runtime)");
#endif
  wand_log("Runtime started");
  while (wand_mux_step(&server)) {
  }
  return 0;
}
