/* ctnn micro-kernels for dense layers, called from TVM's kernels (kernels.c) through
 * T.call_extern. Part of ctnn-deploy; copied into every C build.
 *
 * A dense layer y[j] = sum_k x[k] * w[j][k] (int32, wrapping) runs as
 *   ctnn_dot_prep_<x>(x, x16, K);                 once per input row: widen x to int16
 *   ctnn_dot4_<w>(x16, &w[j][0], K, &y[j]);        four outputs j..j+3 per call (x16 loaded once)
 *   y[j] = ctnn_dot_<w>(x16, &w[j][0], K);         the last N % 4 outputs
 * and the weights stay int8 in flash, one contiguous row of K per output.
 *
 * On cores with the DSP extension (__ARM_FEATURE_SIMD32: Cortex-M4/M7/M33...) the dot
 * product takes 4 weights per 32-bit load, widens them with SXTB16/UXTB16 and multiplies
 * two pairs per SMLAD; x16 then holds each group of four inputs in the lane order that
 * SXTB16 gives the weights: x0 x2 x1 x3. Elsewhere (Cortex-M3, hosts) x16 is x in order
 * and the loops are plain C (compilers vectorize them on hosts). Both orders give the same
 * integer sum: addition modulo 2^32 does not depend on the order. Define
 * CTNN_DOT_PORTABLE to force the plain C path.
 *
 * The functions are static inline so that the compiler inlines them into the kernels;
 * kernels.c declares them again (TVM_DLL int32_t ctnn_dot_s8(int16_t*, int8_t*, int32_t)),
 * which in C keeps the internal linkage of this first definition. */
#ifndef CTNN_DOT_H_
#define CTNN_DOT_H_

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_SIMD32) && !defined(CTNN_DOT_PORTABLE)
#include <arm_acle.h>
#define CTNN_DOT_SIMD 1
#else
#define CTNN_DOT_SIMD 0
#endif

#if defined(__GNUC__)
#define CTNN_DOT_INLINE static inline __attribute__((always_inline))
#else
#define CTNN_DOT_INLINE static inline
#endif

#if CTNN_DOT_SIMD
/* SXTB16/UXTB16 of the word rotated right by 8: bytes 1 and 3 widened to the two halves */
static inline uint32_t ctnn_dot_sxtb16_ror8(uint32_t v) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
static inline uint32_t ctnn_dot_uxtb16_ror8(uint32_t v) {
  uint32_t r;
  __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
#endif

static inline uint32_t ctnn_dot_load32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4); /* one LDR on cores with unaligned access (all ARMv7-M) */
  return v;
}

/* ---- widening x into the int16 scratch row ---- */

/* 8-bit x: four inputs per 32-bit load, widened to the lanes x0 x2 | x1 x3 */
#if CTNN_DOT_SIMD
#define CTNN_DOT_PREP8_BODY(EXTEND, EXTEND_ROR8)                      \
  int32_t i = 0;                                                    \
  for (; i <= k - 4; i += 4) {                                      \
    uint32_t v = ctnn_dot_load32(x + i);                            \
    uint32_t even = (uint32_t)EXTEND(v), odd = EXTEND_ROR8(v);      \
    memcpy(x16 + i, &even, 4);                                      \
    memcpy(x16 + i + 2, &odd, 4);                                   \
  }                                                                 \
  for (; i < k; ++i) x16[i] = (int16_t)x[i];                        \
  return 0;
#else
#define CTNN_DOT_PREP8_BODY(EXTEND, EXTEND_ROR8)                      \
  for (int32_t i = 0; i < k; ++i) x16[i] = (int16_t)x[i];           \
  return 0;
#endif

CTNN_DOT_INLINE int32_t ctnn_dot_prep_s8(int8_t *x, int16_t *x16, int32_t k) {
  CTNN_DOT_PREP8_BODY(__sxtb16, ctnn_dot_sxtb16_ror8)
}

CTNN_DOT_INLINE int32_t ctnn_dot_prep_u8(uint8_t *x, int16_t *x16, int32_t k) {
  CTNN_DOT_PREP8_BODY(__uxtb16, ctnn_dot_uxtb16_ror8)
}

CTNN_DOT_INLINE int32_t ctnn_dot_prep_s16(int16_t *x, int16_t *x16, int32_t k) {
  int32_t i = 0;
#if CTNN_DOT_SIMD
  for (; i <= k - 4; i += 4) {
    x16[i] = x[i];
    x16[i + 1] = x[i + 2];
    x16[i + 2] = x[i + 1];
    x16[i + 3] = x[i + 3];
  }
#endif
  for (; i < k; ++i) x16[i] = x[i];
  return 0;
}

/* ---- the dot products: x16 (from a prep) times one contiguous weight row ---- */

#if CTNN_DOT_SIMD
#define CTNN_DOT1_BODY(EXTEND, EXTEND_ROR8)                                                \
  int32_t acc = 0, i = 0;                                                             \
  for (; i <= k - 8; i += 8) {                                                        \
    uint32_t w0 = ctnn_dot_load32(w + i), w1 = ctnn_dot_load32(w + i + 4);            \
    acc = __smlad((int16x2_t)EXTEND(w0), (int16x2_t)ctnn_dot_load32(x16 + i), acc);   \
    acc = __smlad((int16x2_t)EXTEND_ROR8(w0), (int16x2_t)ctnn_dot_load32(x16 + i + 2), acc); \
    acc = __smlad((int16x2_t)EXTEND(w1), (int16x2_t)ctnn_dot_load32(x16 + i + 4), acc); \
    acc = __smlad((int16x2_t)EXTEND_ROR8(w1), (int16x2_t)ctnn_dot_load32(x16 + i + 6), acc); \
  }                                                                                   \
  if (i <= k - 4) {                                                                   \
    uint32_t w0 = ctnn_dot_load32(w + i);                                             \
    acc = __smlad((int16x2_t)EXTEND(w0), (int16x2_t)ctnn_dot_load32(x16 + i), acc);   \
    acc = __smlad((int16x2_t)EXTEND_ROR8(w0), (int16x2_t)ctnn_dot_load32(x16 + i + 2), acc); \
    i += 4;                                                                           \
  }                                                                                   \
  for (; i < k; ++i) acc += (int32_t)x16[i] * (int32_t)w[i];                          \
  return acc;
#else
#define CTNN_DOT1_BODY(EXTEND, EXTEND_ROR8)                                   \
  int32_t acc = 0;                                                          \
  for (int32_t i = 0; i < k; ++i) acc += (int32_t)x16[i] * (int32_t)w[i];   \
  return acc;
#endif

CTNN_DOT_INLINE int32_t ctnn_dot_s8(int16_t *x16, int8_t *w, int32_t k) {
  CTNN_DOT1_BODY(__sxtb16, ctnn_dot_sxtb16_ror8)
}

CTNN_DOT_INLINE int32_t ctnn_dot_u8(int16_t *x16, uint8_t *w, int32_t k) {
  CTNN_DOT1_BODY(__uxtb16, ctnn_dot_uxtb16_ror8)
}

/* ---- four outputs at once: rows w, w + k, w + 2k, w + 3k share each load of x16 ---- */

/* the scalar loop from i (all of k without SIMD, the last k % 4 with it), then the stores */
#define CTNN_DOT4_FINISH                                                             \
  for (; i < k; ++i) {                                                               \
    int32_t xi = x16[i];                                                             \
    a0 += xi * w[i];                                                                 \
    a1 += xi * w1[i];                                                                \
    a2 += xi * w2[i];                                                                \
    a3 += xi * w3[i];                                                                \
  }                                                                                  \
  out[0] = a0;                                                                       \
  out[1] = a1;                                                                       \
  out[2] = a2;                                                                       \
  out[3] = a3;                                                                       \
  return 0;

#if CTNN_DOT_SIMD
#define CTNN_DOT4_SIMD_ROW(ACC, ROW, EXTEND, EXTEND_ROR8)          \
  v = ctnn_dot_load32((ROW) + i);                                 \
  ACC = __smlad((int16x2_t)EXTEND(v), (int16x2_t)xe, ACC);        \
  ACC = __smlad((int16x2_t)EXTEND_ROR8(v), (int16x2_t)xo, ACC);
#define CTNN_DOT4_BODY(WT, EXTEND, EXTEND_ROR8)                                       \
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, i = 0;                                     \
  WT *w1 = w + k, *w2 = w + 2 * k, *w3 = w + 3 * k;                                  \
  for (; i <= k - 4; i += 4) {                                                       \
    uint32_t xe = ctnn_dot_load32(x16 + i), xo = ctnn_dot_load32(x16 + i + 2), v;    \
    CTNN_DOT4_SIMD_ROW(a0, w, EXTEND, EXTEND_ROR8)                                   \
    CTNN_DOT4_SIMD_ROW(a1, w1, EXTEND, EXTEND_ROR8)                                  \
    CTNN_DOT4_SIMD_ROW(a2, w2, EXTEND, EXTEND_ROR8)                                  \
    CTNN_DOT4_SIMD_ROW(a3, w3, EXTEND, EXTEND_ROR8)                                  \
  }                                                                                  \
  CTNN_DOT4_FINISH
#else
#define CTNN_DOT4_BODY(WT, EXTEND, EXTEND_ROR8)                                       \
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, i = 0;                                     \
  WT *w1 = w + k, *w2 = w + 2 * k, *w3 = w + 3 * k;                                  \
  CTNN_DOT4_FINISH
#endif

CTNN_DOT_INLINE int32_t ctnn_dot4_s8(int16_t *x16, int8_t *w, int32_t k, int32_t *out) {
  CTNN_DOT4_BODY(int8_t, __sxtb16, ctnn_dot_sxtb16_ror8)
}

CTNN_DOT_INLINE int32_t ctnn_dot4_u8(int16_t *x16, uint8_t *w, int32_t k, int32_t *out) {
  CTNN_DOT4_BODY(uint8_t, __uxtb16, ctnn_dot_uxtb16_ror8)
}

/* ---- requantization: round(v * m / 2^32) to nearest, ties toward +infinity ----
 * ctnn-deploy uses it only where the graph's bounds prove it equal to the dialect's
 * 64-bit round-half-away requantization (ctnn.deploy._requant). SMMULR on cores with the
 * DSP extension; a 32x32->64 multiply (SMULL) and an add elsewhere. */
CTNN_DOT_INLINE int32_t ctnn_dot_mulhr(int32_t v, int32_t m) {
#if CTNN_DOT_SIMD
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(v), "r"(m));
  return r;
#else
  return (int32_t)(((int64_t)v * m + INT64_C(0x80000000)) >> 32); /* arithmetic shift (gcc, clang) */
#endif
}

#endif /* CTNN_DOT_H_ */
