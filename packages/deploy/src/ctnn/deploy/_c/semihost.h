/* ARM semihosting (BKPT 0xAB on M-profile), the few calls ctnn firmware needs: files on
 * the host for samples in and outputs out, a console line, the command line, and exit.
 * QEMU implements them with -semihosting-config enable=on,target=native. */
#ifndef CTNN_SEMIHOST_H_
#define CTNN_SEMIHOST_H_

#include <stdint.h>

#define SEMIHOST_SYS_OPEN 0x01
#define SEMIHOST_SYS_CLOSE 0x02
#define SEMIHOST_SYS_WRITE0 0x04
#define SEMIHOST_SYS_WRITE 0x05
#define SEMIHOST_SYS_READ 0x06
#define SEMIHOST_SYS_GET_CMDLINE 0x15
#define SEMIHOST_SYS_EXIT 0x18
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026

static inline int32_t semihost_call(int32_t op, void *arg) {
  register int32_t r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static inline int32_t semihost_strlen(const char *s) {
  int32_t n = 0;
  while (s[n]) ++n;
  return n;
}

/* mode: 1 = "rb", 5 = "wb" (ISO C fopen modes as numbered by the semihosting spec) */
static inline int32_t semihost_open(const char *path, int32_t mode) {
  uint32_t args[3] = {(uint32_t)path, (uint32_t)mode, (uint32_t)semihost_strlen(path)};
  return semihost_call(SEMIHOST_SYS_OPEN, args);
}

static inline int32_t semihost_close(int32_t fd) {
  uint32_t args[1] = {(uint32_t)fd};
  return semihost_call(SEMIHOST_SYS_CLOSE, args);
}

/* returns the number of bytes NOT read (0: all read; n: end of file before anything) */
static inline int32_t semihost_read(int32_t fd, void *buf, uint32_t n) {
  uint32_t args[3] = {(uint32_t)fd, (uint32_t)buf, n};
  return semihost_call(SEMIHOST_SYS_READ, args);
}

/* returns the number of bytes NOT written */
static inline int32_t semihost_write(int32_t fd, const void *buf, uint32_t n) {
  uint32_t args[3] = {(uint32_t)fd, (uint32_t)buf, n};
  return semihost_call(SEMIHOST_SYS_WRITE, args);
}

static inline void semihost_write0(const char *s) { semihost_call(SEMIHOST_SYS_WRITE0, (void *)s); }

static inline int32_t semihost_cmdline(char *buf, uint32_t n) {
  uint32_t args[2] = {(uint32_t)buf, n};
  return semihost_call(SEMIHOST_SYS_GET_CMDLINE, args);
}

__attribute__((noreturn)) static inline void semihost_exit(int32_t code) {
  /* SYS_EXIT_EXTENDED carries the exit code; QEMU exits with it */
  uint32_t args[2] = {SEMIHOST_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, args);
  semihost_call(SEMIHOST_SYS_EXIT, (void *)(code == 0 ? SEMIHOST_ADP_STOPPED_APPLICATION_EXIT : 0x20023));
  for (;;) {
  }
}

#endif /* CTNN_SEMIHOST_H_ */
