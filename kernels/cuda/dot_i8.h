/* Weights as 8-bit integers, for the MoE matmul's integer dot products (moe_kernels.cuh: the
 * vector path multiplies them with activations quantized to 8 bits, four products per dp4a).
 *
 * Every quantized format decodes a 32-value part of a block (part p of a 256-value block, the
 * whole block of a 32-value one) to 32 signed 8-bit integers q_i and, per half of 16 values, a
 * scale s and an offset o, such that the value the format's dequantizer gives is
 *
 *     w_i = s[i / 16] * q_i + o[i / 16]        (in real numbers; in f32 to within a few ulp)
 *
 * The integers are the format's own codes with its integer parts folded in (Q4_0's nibble - 8,
 * Q3_K's 3-bit value - 4, an I-quant's lattice point with its signs, MXFP4's E2M1 value times 2,
 * IQ1's delta times 8), so that all the floating point of a part is four numbers. Per format,
 * dot_i8_<family>.h defines
 *
 *     static inline QK_HD void qk_part_i8_<codec>(const uint8_t *b, int p, qk_part_i8 *r);
 *     #define QK_I8_OFFSET_<codec> 0 or 1   (1 if o can be non-zero; 0 lets the kernel skip it)
 *
 * b is the block (aligned as the block size allows: a row starts where the caller put it, which
 * the kernel checks against QK_I8_ALIGN), p the part. The text is the common subset of C11 and
 * CUDA (qk_hd.h): tests/test_dot_i8.c runs it on the host against the CPU dequantizers. */
#ifndef QK_DOT_I8_H
#define QK_DOT_I8_H

#include "qk_float.h"
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

typedef struct qk_part_i8 {
    uint32_t q[8]; /* q_i = (int8_t)(q[i / 4] >> 8 * (i % 4)): four codes per word, little-endian */
    float s[2], o[2];
} qk_part_i8;

/* The alignment the decoders need of every block start: the blocks of an odd size (MXFP4's 17
 * bytes) 1, of an even one 2, of a multiple of 4 bytes 4, of a multiple of 16 (Q4_K's 144,
 * Q5_K's 176) 16, which their decoders read 16 bytes at a time. A row that starts so aligned
 * keeps every block so; the kernels check the weights' address against it (and take a path that
 * needs none where it fails), and read through qk_ld32_a<QK_I8_ALIGN(bytes)> or qk_ld32x4_a16. */
#define QK_I8_ALIGN(block_bytes)                                                                                       \
    ((block_bytes) % 16 == 0 ? 16 : (block_bytes) % 4 == 0 ? 4 : (block_bytes) % 2 == 0 ? 2 : 1)

/* An fp16 scale (the low 16 bits of h) as f32, exactly: the hardware conversion on the device, where
 * qk_fp16_to_f32's bit-level one costs about 25 instructions a call, a large share of a part. */
static inline QK_HD float qk_i8_half(uint32_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half((unsigned short)(h & 0xffffu)));
#else
    return qk_fp16_to_f32((uint16_t)h);
#endif
}

/* Bytes of (y:x) picked by the four selector nibbles of s, of which only the low 3 bits count
 * (CUDA's __byte_perm, a single PRMT). */
static inline QK_HD uint32_t qk_byte_perm(uint32_t x, uint32_t y, uint32_t s) {
#ifdef __CUDA_ARCH__
    return __byte_perm(x, y, s);
#else
    const uint64_t v = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int n = 0; n < 4; n++) r |= (uint32_t)((v >> 8 * ((s >> 4 * n) & 7u)) & 0xffu) << 8 * n;
    return r;
#endif
}

/* 32 bits at p, little-endian, p 4-byte aligned. */
static inline QK_HD uint32_t qk_ld32_a4(const uint8_t *p) {
#ifdef __CUDA_ARCH__
    return *(const uint32_t *)p;
#else
    return qk_rd32(p);
#endif
}

/* Four 32-bit words at p, little-endian, p 16-byte aligned: one 128-bit load on the device, where
 * four 32-bit ones would each be a request of their own. */
static inline QK_HD void qk_ld32x4_a16(const uint8_t *p, uint32_t *w) {
#ifdef __CUDA_ARCH__
    const uint4 v = *(const uint4 *)p;
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
#else
    for (int k = 0; k < 4; k++) w[k] = qk_rd32(p + 4 * k);
#endif
}

/* 32 bits at p, p 2-byte aligned (two 16-bit loads on the device). */
static inline QK_HD uint32_t qk_ld32_a2(const uint8_t *p) {
#ifdef __CUDA_ARCH__
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | (uint32_t)h[1] << 16;
#else
    return qk_rd32(p);
#endif
}

/* 16 bits at p, little-endian, p 2-byte aligned: a block's last 16-bit field, where a 32-bit
 * read would leave the block. */
static inline QK_HD uint32_t qk_ld16_a2(const uint8_t *p) {
#ifdef __CUDA_ARCH__
    return *(const uint16_t *)p;
#else
    return qk_rd16(p);
#endif
}

/* (hi:lo) >> min(shift, 32), its low 32 bits: CUDA's __funnelshift_rc, a single SHF. */
static inline QK_HD uint32_t qk_funnel_rc(uint32_t lo, uint32_t hi, uint32_t shift) {
#ifdef __CUDA_ARCH__
    return __funnelshift_rc(lo, hi, shift);
#else
    return (uint32_t)((((uint64_t)hi << 32) | lo) >> (shift < 32u ? shift : 32u));
#endif
}

/* The n 32-bit words at p (n <= 8, a constant once inlined), p 2-byte aligned, reading no byte
 * outside [p, p + 4n): where p is 4-byte aligned, n 32-bit loads; else n - 1 of them from p + 2
 * and the two 16-bit ends, each word then a funnel shift of two neighbours. n + 1 loads at most
 * on the device, where n calls of qk_ld32_a2 take 2n, so that a part's loads fit in flight at
 * once. The same text runs on the host (tests/test_dot_i8.c, at both alignments). */
static inline QK_HD void qk_ld32n_a2(const uint8_t *p, int n, uint32_t *w) {
    const unsigned m = (unsigned)((uintptr_t)p & 2u);
    const uint8_t *a = p + m; /* 4-byte aligned */
    uint32_t e[9]; /* e[k + 1] = word k at a; where m, e[0]'s high half and e[n]'s low half the 16-bit ends */
    for (int k = 0; k < n - 1; k++) e[k + 1] = qk_ld32_a4(a + 4 * k);
    e[0] = m ? qk_ld16_a2(p) << 16 : 0u;
    e[n] = m ? qk_ld16_a2(p + 4 * n - 2) : qk_ld32_a4(a + 4 * (n - 1));
    /* m: bytes 2..3 of e[k] and 0..1 of e[k + 1]; else e[k + 1] whole (the shift clamps at 32) */
    for (int k = 0; k < n; k++) w[k] = qk_funnel_rc(e[k], e[k + 1], m ? 16u : 32u);
}

/* 32 bits at p, any alignment. */
static inline QK_HD uint32_t qk_ld32_a1(const uint8_t *p) { return qk_rd32(p); }

/* The signed code i of a part (for tests and reference code). */
static inline QK_HD int qk_part_i8_code(const qk_part_i8 *r, int i) { return (int8_t)(r->q[i / 4] >> 8 * (i % 4)); }

#endif
