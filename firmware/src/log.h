// The diagnostic log: a channel separate from the protocol UART, so the host
// speaking the protocol never sees stray bytes.
//
// wand_log is the only function protocol.c uses (host builds such as the
// fuzzer provide their own). The firmware's log.c routes lines to RISC-V
// semihosting (QEMU), to a second NS16550 "log UART" (Renode's wand board)
// or to Springbok's simprint instruction; board.c
// chooses the sink at boot (see README.md, "Log channel").

#ifndef WAND_LOG_H_
#define WAND_LOG_H_

#define WAND_LOG_LINE_MAX 256

// Formats one line (a newline is appended) and writes it to the log sink.
// Longer lines are truncated to WAND_LOG_LINE_MAX - 2 characters.
void wand_log(const char* format, ...) __attribute__((format(printf, 1, 2)));

//===----------------------------------------------------------------------===//
// Firmware only (log.c)
//===----------------------------------------------------------------------===//

typedef enum wand_log_sink_e {
  WAND_LOG_SINK_NONE = 0,
  WAND_LOG_SINK_SEMIHOSTING = 1,  // QEMU: -semihosting-config ...,chardev=log
  WAND_LOG_SINK_UART = 2,         // Renode: NS16550 at WAND_BOARD_LOG_UART_BASE
  WAND_LOG_SINK_SIMPRINT = 3,     // Springbok: the simprint instruction
} wand_log_sink_t;

// Selects (and initialises) the sink. Lines written before go nowhere.
void wand_log_set_sink(wand_log_sink_t sink);
wand_log_sink_t wand_log_sink(void);

// Writes |text| as is (no formatting, no newline added). Safe in the trap
// handler.
void wand_log_write(const char* text);

#endif  // WAND_LOG_H_
