// Board support for the QEMU virt memory map: boot-time setup after start.S,
// log sink selection, counters, traps, exit, stack and heap high-water marks.

#include "board.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include "log.h"

#define FDT_MAGIC_LE 0xedfe0dd0u  // 0xd00dfeed stored big-endian
#define STACK_PAINT 0x5aa55aa5u   // must match start.S
#define SEMIHOST_SYS_ERRNO 0x13
#define MCAUSE_BREAKPOINT 3u
#define SIFIVE_TEST_PASS 0x5555u
#define SIFIVE_TEST_FAIL 0x3333u

// Linker script symbols (wand.ld).
extern uint32_t __stack_bottom[];
extern uint32_t __stack_top[];
extern char __heap_start[];
extern char __heap_end[];

// start.S
extern uintptr_t wand_semihost_call(uintptr_t op, uintptr_t arg);
extern const char wand_semihost_ebreak[];

// picolibc
extern void __libc_init_array(void);

int main(void);

typedef struct wand_trap_frame_t {
  uint32_t regs[32];  // regs[2] is the interrupted sp
  uint32_t mepc;
  uint32_t mcause;
  uint32_t mtval;
  uint32_t pad;
} wand_trap_frame_t;

//===----------------------------------------------------------------------===//
// Startup
//===----------------------------------------------------------------------===//

#if !WAND_BOARD_LOG_SIMPRINT
// QEMU's -bios none boot code passes the device tree address in a1; Renode
// leaves a1 = 0. Only an aligned address in the RAM window is dereferenced.
static bool boot_arg_is_fdt(uintptr_t boot_arg) {
  if (boot_arg < WAND_BOARD_RAM_BASE || (boot_arg & 3u) != 0) return false;
  return *(volatile const uint32_t*)boot_arg == FDT_MAGIC_LE;
}
#endif

void wand_board_start(uintptr_t hart_id, uintptr_t boot_arg);
void wand_board_start(uintptr_t hart_id, uintptr_t boot_arg) {
  (void)hart_id;
#if WAND_BOARD_LOG_SIMPRINT
  (void)boot_arg;
  wand_log_set_sink(WAND_LOG_SINK_SIMPRINT);
#else
  if (boot_arg_is_fdt(boot_arg)) {
    wand_log_set_sink(WAND_LOG_SINK_SEMIHOSTING);
    // A harmless call: when QEMU runs without -semihosting-config it traps
    // and wand_board_trap switches the log off instead of failing later.
    wand_semihost_call(SEMIHOST_SYS_ERRNO, 0);
  } else {
    wand_log_set_sink(WAND_LOG_SINK_UART);
  }
#endif
  __libc_init_array();
  wand_board_exit(main());
}

//===----------------------------------------------------------------------===//
// Counters
//===----------------------------------------------------------------------===//

#define READ_CSR64(lo, hi)                                          \
  ({                                                                \
    uint32_t h0, l, h1;                                             \
    do {                                                            \
      __asm__ volatile("csrr %0, " #hi : "=r"(h0));                 \
      __asm__ volatile("csrr %0, " #lo : "=r"(l));                  \
      __asm__ volatile("csrr %0, " #hi : "=r"(h1));                 \
    } while (h0 != h1);                                             \
    ((uint64_t)h1 << 32) | l;                                       \
  })

uint64_t wand_board_mtime(void) {
  volatile const uint32_t* mtime =
      (volatile const uint32_t*)(WAND_BOARD_CLINT_BASE +
                                 WAND_BOARD_MTIME_OFFSET);
  uint32_t hi0, lo, hi1;
  do {
    hi0 = mtime[1];
    lo = mtime[0];
    hi1 = mtime[1];
  } while (hi0 != hi1);
  return ((uint64_t)hi1 << 32) | lo;
}

wand_board_counters_t wand_board_read_counters(void) {
  wand_board_counters_t counters;
  counters.instructions = READ_CSR64(minstret, minstreth);
  counters.cycles = READ_CSR64(mcycle, mcycleh);
  counters.mtime = wand_board_mtime();
  return counters;
}

//===----------------------------------------------------------------------===//
// Exit and traps
//===----------------------------------------------------------------------===//

void wand_board_exit(int code) {
  if (WAND_BOARD_TEST_BASE != 0) {
    volatile uint32_t* test = (volatile uint32_t*)WAND_BOARD_TEST_BASE;
    *test = code == 0 ? SIFIVE_TEST_PASS
                      : (((uint32_t)code & 0xffffu) << 16) | SIFIVE_TEST_FAIL;
  }
  // Without a test device (Renode) the machine parks here.
  for (;;) {
    __asm__ volatile("wfi");
  }
}

static char* put_str(char* out, const char* text) {
  while (*text) *out++ = *text++;
  return out;
}

static char* put_hex(char* out, uint32_t value) {
  static const char kDigits[] = "0123456789abcdef";
  *out++ = '0';
  *out++ = 'x';
  for (int shift = 28; shift >= 0; shift -= 4) {
    *out++ = kDigits[(value >> shift) & 0xfu];
  }
  return out;
}

void wand_board_trap(wand_trap_frame_t* frame);
void wand_board_trap(wand_trap_frame_t* frame) {
  if (frame->mcause == MCAUSE_BREAKPOINT &&
      frame->mepc == (uint32_t)(uintptr_t)wand_semihost_ebreak) {
    // Semihosting is off in this simulator: drop the log, resume after ebreak.
    wand_log_set_sink(WAND_LOG_SINK_NONE);
    frame->regs[10] = (uint32_t)-1;
    frame->mepc += 4;
    return;
  }
  static volatile bool in_trap = false;
  if (in_trap) wand_board_exit(WAND_EXIT_TRAP);  // trapped while reporting
  in_trap = true;
  char line[128];
  char* p = line;
  p = put_str(p, "TRAP mcause=");
  p = put_hex(p, frame->mcause);
  p = put_str(p, " mepc=");
  p = put_hex(p, frame->mepc);
  p = put_str(p, " mtval=");
  p = put_hex(p, frame->mtval);
  p = put_str(p, " sp=");
  p = put_hex(p, frame->regs[2]);
  p = put_str(p, " ra=");
  p = put_hex(p, frame->regs[1]);
  *p++ = '\n';
  *p = '\0';
  wand_log_write(line);
  wand_board_exit(WAND_EXIT_TRAP);
}

//===----------------------------------------------------------------------===//
// Memory high-water marks
//===----------------------------------------------------------------------===//

// The lowest word in [word, end) that no longer holds the paint. The stack's
// unused part (most of it) is read on every STATS request: word by word that
// was ~250 k instructions per request; RVV reads it in strips.
static const uint32_t* first_unpainted(const uint32_t* word,
                                       const uint32_t* end) {
#if WAND_VECTOR
  while (word < end) {
    size_t vl;
    long first;
    __asm__ volatile(
        "vsetvli %0, %2, e32, m8, ta, ma\n\t"
        "vle32.v v8, (%3)\n\t"
        "vmsne.vx v0, v8, %4\n\t"
        "vfirst.m %1, v0"
        : "=&r"(vl), "=&r"(first)
        : "r"((size_t)(end - word)), "r"(word), "r"(STACK_PAINT)
        : "memory");
    if (first >= 0) return word + first;
    word += vl;
  }
  return end;
#else
  while (word < end && *word == STACK_PAINT) ++word;
  return word;
#endif
}

size_t wand_board_stack_peak_bytes(void) {
  const uint32_t* word = first_unpainted(__stack_bottom, __stack_top);
  return (size_t)((const char*)__stack_top - (const char*)word);
}

static char* heap_top = NULL;
static char* heap_high_water = NULL;

// picolibc's malloc grows the heap through sbrk; this one records the peak.
void* sbrk(ptrdiff_t increment) {
  if (heap_top == NULL) heap_top = heap_high_water = __heap_start;
  if (increment >= 0 ? (size_t)increment > (size_t)(__heap_end - heap_top)
                     : (size_t)0 - (size_t)increment >
                           (size_t)(heap_top - __heap_start)) {
    errno = ENOMEM;
    return (void*)-1;
  }
  char* previous = heap_top;
  heap_top += increment;
  if (heap_top > heap_high_water) heap_high_water = heap_top;
  return previous;
}

size_t wand_board_heap_peak_bytes(void) {
  return heap_high_water ? (size_t)(heap_high_water - __heap_start) : 0;
}

// IREE's clock (IREE_TIME_NOW_FN in iree_user_config.h).
int64_t wand_board_time_ns(void);
int64_t wand_board_time_ns(void) {
  // Whole seconds and the remainder apart: 1e9 / 24 MHz is not a whole number
  // of ns, and ticks * 1e9 would overflow 64 bits after 768 s at 24 MHz.
  const uint64_t ticks = wand_board_mtime();
  const uint64_t seconds = ticks / WAND_BOARD_MTIME_HZ;
  const uint64_t rest = ticks % WAND_BOARD_MTIME_HZ;
  return (int64_t)(seconds * 1000000000u +
                   rest * 1000000000u / WAND_BOARD_MTIME_HZ);
}

// IREE's sleep (IREE_WAIT_UNTIL_FN): a single-threaded machine can only spin.
bool wand_board_wait_until_ns(int64_t deadline_ns);
bool wand_board_wait_until_ns(int64_t deadline_ns) {
  while (wand_board_time_ns() < deadline_ns) {
  }
  return true;
}
