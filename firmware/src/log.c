// Log sinks: RISC-V semihosting (SYS_WRITE0), the log UART or simprint.

#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "uart.h"
#if WAND_BOARD_LOG_SIMPRINT
#include "simprint.h"
#endif

#define SEMIHOST_SYS_WRITE0 0x04

// Implemented in start.S.
extern uintptr_t wand_semihost_call(uintptr_t op, uintptr_t arg);

static wand_log_sink_t log_sink = WAND_LOG_SINK_NONE;
static wand_uart_t log_uart;

void wand_log_set_sink(wand_log_sink_t sink) {
  if (sink == WAND_LOG_SINK_UART) {
    wand_uart_init(&log_uart, WAND_BOARD_LOG_UART_BASE,
                   WAND_BOARD_UART_CLOCK_HZ, WAND_BOARD_UART_BAUD);
  }
  log_sink = sink;
}

wand_log_sink_t wand_log_sink(void) { return log_sink; }

void wand_log_write(const char* text) {
  switch (log_sink) {
    case WAND_LOG_SINK_SEMIHOSTING:
      wand_semihost_call(SEMIHOST_SYS_WRITE0, (uintptr_t)text);
      break;
    case WAND_LOG_SINK_UART:
      wand_uart_write(&log_uart, (const uint8_t*)text, strlen(text));
      break;
    case WAND_LOG_SINK_SIMPRINT:
#if WAND_BOARD_LOG_SIMPRINT
      wand_simprint_write(text);
#endif
      break;
    case WAND_LOG_SINK_NONE:
      break;
  }
}

void wand_log(const char* format, ...) {
  if (log_sink == WAND_LOG_SINK_NONE) return;
  char line[WAND_LOG_LINE_MAX];
  va_list args;
  va_start(args, format);
  int length = vsnprintf(line, sizeof(line) - 1, format, args);
  va_end(args);
  if (length < 0) return;
  size_t end = (size_t)length < sizeof(line) - 2 ? (size_t)length
                                                 : sizeof(line) - 2;
  line[end] = '\n';
  line[end + 1] = '\0';
  wand_log_write(line);
}
