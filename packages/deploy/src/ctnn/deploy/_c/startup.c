/* Minimal Cortex-M startup for ctnn firmware (ctnn-deploy): vector table, .data/.bss
 * initialisation, stack painting, FPU enable, faults reported through semihosting.
 * Runs on any ARMv7-M core; the linker script places .isr_vector at the start of flash. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

/* The stack is painted with this word so that the firmware can measure its high-water mark. */
#define CTNN_STACK_PAINT 0x5AC3A55Cu

__attribute__((section(".isr_vector"), used)) void (*const ctnn_vectors[16])(void) = {
    (void (*)(void))(&_estack), /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick (polled, never enabled as an interrupt) */
};

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0;
  {
    /* paint the stack below the current frame */
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (dst = &_sstack; dst < sp - 16; ++dst) *dst = CTNN_STACK_PAINT;
  }
#if defined(__ARM_FP)
  /* CPACR: full access to CP10/CP11 (the FPU) before any floating-point instruction */
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  semihost_exit(main() == 0 ? 0 : 1);
}

__attribute__((noreturn)) void Fault_Handler(void) {
  semihost_write0("ctnn firmware: hard fault\n");
  semihost_exit(3);
}

__attribute__((noreturn)) void Default_Handler(void) {
  semihost_write0("ctnn firmware: unexpected exception\n");
  semihost_exit(3);
}
