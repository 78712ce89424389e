// simprint: custom-3 opcode (0x7b), funct3 0. rd holds the log level, rs1 the
// address of a NUL-terminated string (Renode reads at most 255 characters),
// rs2 a number printed after it. The instruction writes no register.

#include "simprint.h"

#include <stddef.h>
#include <stdint.h>

#define SIMPRINT_LEVEL_INFO 2u  // 0 error, 1 warning, 2 info, 3 debug, 4 noisy
#define SIMPRINT_TEXT_MAX 255u

static void simprint_line(const char* line) {
  __asm__ volatile(".insn r 0x7b, 0, 0, %0, %1, %2"
                   :
                   : "r"(SIMPRINT_LEVEL_INFO), "r"(line), "r"(0)
                   : "memory");
}

void wand_simprint_write(const char* text) {
  char line[SIMPRINT_TEXT_MAX + 1];
  size_t length = 0;
  for (; *text != '\0'; ++text) {
    if (*text != '\n') line[length++] = *text;
    if (*text == '\n' || length == SIMPRINT_TEXT_MAX) {
      line[length] = '\0';
      simprint_line(line);
      length = 0;
    }
  }
  if (length > 0) {
    line[length] = '\0';
    simprint_line(line);
  }
}
