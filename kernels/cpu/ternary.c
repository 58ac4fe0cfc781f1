/* TQ1_0 and TQ2_0 (FORMATS.md §8): ternary values {-1, 0, +1} * d. */
#include "cpu_kernels.h"
#include "qk_float.h"

enum {
    QK = QKC_QK_K,
    /* TQ1_0: 48 bytes of 5 trits, 4 bytes of 4 trits, then d */
    TQ1_QS = 0,
    TQ1_QS_BYTES = 48,
    TQ1_QH = TQ1_QS + TQ1_QS_BYTES,
    TQ1_QH_BYTES = 4,
    TQ1_D = TQ1_QH + TQ1_QH_BYTES,
    TQ1_BYTES = TQ1_D + 2,
    /* TQ2_0: 64 bytes of 2-bit codes, then d */
    TQ2_QS = 0,
    TQ2_D = QK / 4,
    TQ2_BYTES = TQ2_D + 2,
};

/* Trit n of a base-3 fixed-point byte: multiply up (keeping 8 bits) and read the top trit. */
static int tq1_trit(uint8_t q, int n) {
    uint8_t v = (uint8_t)(q * qk_tq1_0_pow3[n]);
    return (v * 3) >> 8;
}

/* Element i -> (byte offset, trit number) in a TQ1_0 block. */
static void tq1_position(int i, int *byte, int *trit) {
    if (i < 160) {
        *byte = TQ1_QS + i % 32, *trit = i / 32;
    } else if (i < 240) {
        *byte = TQ1_QS + 32 + (i - 160) % 16, *trit = (i - 160) / 16;
    } else {
        *byte = TQ1_QH + (i - 240) % 4, *trit = (i - 240) / 4;
    }
}

void qk_cpu_dequant_tq1_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK; blk++, b += TQ1_BYTES, dst += QK) {
        const float d = qk_rdh(b + TQ1_D);
        for (int i = 0; i < QK; i++) {
            int byte, trit;
            tq1_position(i, &byte, &trit);
            dst[i] = (float)(tq1_trit(b[byte], trit) - 1) * d;
        }
    }
}

void qk_cpu_quant_tq1_0(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw; /* ternary rounding has no search to weigh */
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK; blk++, b += TQ1_BYTES, src += QK) {
        float amax = 0.0f;
        for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(src[i]));
        const float d = amax, id = d ? 1.0f / d : 0.0f;
        /* q = sum of trits as base-3 digits, most significant first; qh bytes hold 4 trits
         * and a zero fifth */
        int q[TQ1_QS_BYTES + TQ1_QH_BYTES] = {0};
        for (int i = 0; i < QK; i++) {
            int byte, trit;
            tq1_position(i, &byte, &trit);
            int t = (int)lroundf(src[i] * id) + 1;
            int pow = 1;
            for (int k = trit; k < 4; k++) pow *= 3;
            q[byte] += t * pow;
        }
        for (int k = 0; k < TQ1_QS_BYTES + TQ1_QH_BYTES; k++) b[k] = (uint8_t)((q[k] * 256 + 242) / 243);
        qk_wrh(b + TQ1_D, d);
    }
}

void qk_cpu_dequant_tq2_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK; blk++, b += TQ2_BYTES, dst += QK) {
        const float d = qk_rdh(b + TQ2_D);
        for (int i = 0; i < QK; i++) {
            int q = (b[TQ2_QS + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
            dst[i] = (float)(q - 1) * d;
        }
    }
}

void qk_cpu_quant_tq2_0(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK; blk++, b += TQ2_BYTES, src += QK) {
        float amax = 0.0f;
        for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(src[i]));
        const float d = amax, id = d ? 1.0f / d : 0.0f;
        memset(b + TQ2_QS, 0, QK / 4);
        for (int i = 0; i < QK; i++) {
            int q = (int)lroundf(src[i] * id) + 1;
            b[TQ2_QS + 32 * (i / 128) + i % 32] |= (uint8_t)(q << (2 * ((i % 128) / 32)));
        }
        qk_wrh(b + TQ2_D, d);
    }
}
