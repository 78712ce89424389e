// The few POSIX hooks picolibc and IREE expect on bare metal: process
// identity for abort(), _exit, and stdio streams that go to the log.

#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "board.h"
#include "log.h"

pid_t getpid(void) { return 1; }

// abort() raises SIGABRT through kill(getpid(), SIGABRT).
int kill(pid_t pid, int sig) {
  (void)pid;
  wand_log("kill: signal %d, stopping", sig);
  wand_board_exit(128 + sig);
}

void _exit(int status) { wand_board_exit(status); }

// stdout/stderr: characters are buffered per line and written to the log.
static int log_putc(char c, FILE* file) {
  (void)file;
  static char line[WAND_LOG_LINE_MAX];
  static size_t length = 0;
  line[length++] = c;
  if (c == '\n' || length == sizeof(line) - 1) {
    line[length] = '\0';
    wand_log_write(line);
    length = 0;
  }
  return (unsigned char)c;
}

static FILE log_stream = FDEV_SETUP_STREAM(log_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE* const stdin = NULL;
FILE* const stdout = &log_stream;
FILE* const stderr = &log_stream;
