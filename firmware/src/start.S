/* Reset entry, trap entry and the semihosting call.
 *
 * _start: QEMU's -bios none boot code jumps here with a0 = hart id and
 * a1 = device tree address (Renode: a1 = 0). Sets gp/sp/tp, the trap vector,
 * turns on the FPU (mstatus.FS) and, for vector targets, the vector unit
 * (mstatus.VS) before any C code (mem.c uses RVV), zeroes .tbss/.bss, paints
 * the stack for the high-water mark, then calls wand_board_start(a0, a1). */

#define MSTATUS_FS_INITIAL (1 << 13)
#define MSTATUS_VS_INITIAL (1 << 9)
#define STACK_PAINT 0x5aa55aa5
#define FRAME_SIZE 144 /* x0..x31, mepc, mcause, mtval, pad */

  .section .text.start, "ax", @progbits
  .globl _start
  .type _start, @function
_start:
  .option push
  .option norelax
  la gp, __global_pointer$
  .option pop
  csrr t0, mhartid
  bnez t0, .Lpark
  la sp, __stack_top
  mv s0, a0
  mv s1, a1
  la t0, wand_trap_entry
  csrw mtvec, t0
  csrw mie, zero
  li t0, MSTATUS_FS_INITIAL
#if WAND_VECTOR
  li t1, MSTATUS_VS_INITIAL
  or t0, t0, t1
#endif
  csrs mstatus, t0
#ifdef __riscv_flen
  csrwi fcsr, 0
#endif
  la t0, __bss_start
  la t1, __bss_end
1:
  bgeu t0, t1, 2f
  sw zero, 0(t0)
  addi t0, t0, 4
  j 1b
2:
  la t0, __stack_bottom
  li t2, STACK_PAINT
3:
  bgeu t0, sp, 4f
  sw t2, 0(t0)
  addi t0, t0, 4
  j 3b
4:
  la tp, __tls_base
  mv a0, s0
  mv a1, s1
  call wand_board_start
.Lpark:
  wfi
  j .Lpark
  .size _start, . - _start

/* Trap entry: always switches to the dedicated trap stack (the faulting sp
 * may be the cause), saves a frame and calls wand_board_trap(frame). The
 * handler either stops the machine or returns (only for a semihosting call
 * that trapped because the simulator has semihosting off). */
  .section .text.trap, "ax", @progbits
  .balign 4
  .globl wand_trap_entry
  .type wand_trap_entry, @function
wand_trap_entry:
  csrw mscratch, sp
  .option push
  .option norelax
  la sp, __trap_stack_top
  .option pop
  addi sp, sp, -FRAME_SIZE
  sw x1, 4(sp)
  sw x3, 12(sp)
  sw x4, 16(sp)
  sw x5, 20(sp)
  sw x6, 24(sp)
  sw x7, 28(sp)
  sw x8, 32(sp)
  sw x9, 36(sp)
  sw x10, 40(sp)
  sw x11, 44(sp)
  sw x12, 48(sp)
  sw x13, 52(sp)
  sw x14, 56(sp)
  sw x15, 60(sp)
  sw x16, 64(sp)
  sw x17, 68(sp)
  sw x18, 72(sp)
  sw x19, 76(sp)
  sw x20, 80(sp)
  sw x21, 84(sp)
  sw x22, 88(sp)
  sw x23, 92(sp)
  sw x24, 96(sp)
  sw x25, 100(sp)
  sw x26, 104(sp)
  sw x27, 108(sp)
  sw x28, 112(sp)
  sw x29, 116(sp)
  sw x30, 120(sp)
  sw x31, 124(sp)
  csrr t0, mscratch
  sw t0, 8(sp)
  csrr t0, mepc
  sw t0, 128(sp)
  csrr t0, mcause
  sw t0, 132(sp)
  csrr t0, mtval
  sw t0, 136(sp)
  mv a0, sp
  call wand_board_trap
  lw t0, 128(sp)
  csrw mepc, t0
  lw x1, 4(sp)
  lw x3, 12(sp)
  lw x4, 16(sp)
  lw x5, 20(sp)
  lw x6, 24(sp)
  lw x7, 28(sp)
  lw x8, 32(sp)
  lw x9, 36(sp)
  lw x10, 40(sp)
  lw x11, 44(sp)
  lw x12, 48(sp)
  lw x13, 52(sp)
  lw x14, 56(sp)
  lw x15, 60(sp)
  lw x16, 64(sp)
  lw x17, 68(sp)
  lw x18, 72(sp)
  lw x19, 76(sp)
  lw x20, 80(sp)
  lw x21, 84(sp)
  lw x22, 88(sp)
  lw x23, 92(sp)
  lw x24, 96(sp)
  lw x25, 100(sp)
  lw x26, 104(sp)
  lw x27, 108(sp)
  lw x28, 112(sp)
  lw x29, 116(sp)
  lw x30, 120(sp)
  lw x31, 124(sp)
  lw sp, 8(sp)
  mret
  .size wand_trap_entry, . - wand_trap_entry

/* uintptr_t wand_semihost_call(uintptr_t op, uintptr_t arg)
 * The RISC-V semihosting sequence: uncompressed, in one page (hence the
 * alignment). wand_semihost_ebreak labels the ebreak so the trap handler can
 * recognise a semihosting call made without semihosting. */
  .section .text.semihost, "ax", @progbits
  .balign 16
  .globl wand_semihost_call
  .globl wand_semihost_ebreak
  .type wand_semihost_call, @function
wand_semihost_call:
  .option push
  .option norvc
  slli zero, zero, 0x1f
wand_semihost_ebreak:
  ebreak
  srai zero, zero, 0x7
  .option pop
  ret
  .size wand_semihost_call, . - wand_semihost_call
