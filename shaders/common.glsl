/* What every qkern shader shares: the format tables, byte access to packed blocks, and the
 * exact fp32 arithmetic that lets a GPU encoder write the CPU reference's bytes.
 *
 * The contract between a shader and the format code (shaders/formats/<family>.glsl):
 * - The shader defines QK_TYPE_<NAME> (one type per compiled variant, e.g. QK_TYPE_Q4_K) and
 *   QK_SRC_WORD(i), the i-th 32-bit little-endian word of the memory that blocks are read
 *   from (a storage buffer or shared memory), then includes this file and qk_format.glsl,
 *   generated from the format table (include/qkern_formats.h): it defines the type's
 *   QK_TYPE_ID, QK_BLOCK_ELEMS, QK_BLOCK_BYTES and QK_BLOCK_WORDS (words of the block's
 *   bytes), then includes the family's file.
 * - A block at byte offset `base` of that memory is read with qk_rd8/16/32(base + k): any
 *   alignment, since blocks are packed (MXFP4's are 17 bytes).
 * - The family file defines
 *     void qk_dequant_part(uint base, uint p, out float v[32]);
 *   values 32p..32p+31 of the block at `base`, bit-exact with the CPU reference, and
 *     void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw,
 *                         float row_sigma2, inout uint blk[QK_BLOCK_WORDS]);
 *   the CPU reference's encoder: blk arrives zeroed and leaves holding the block's bytes,
 *   little-endian (qk_blk_* below). row_sigma2 is the row statistic of the legacy types
 *   (formats that need it define QK_NEEDS_ROW_SIGMA2); others ignore it.
 * - Encoders divide with qk_div and take square roots with qk_sqrt (Vulkan's own `/` and
 *   sqrt are not correctly rounded); the reference never calls fmaf, so neither do they
 *   (a driver may split GLSL's fma() into two roundings anyway).
 *   The build marks every other multiply and add of an encoder shader NoContraction
 *   (scripts/spv_nocontract.py), so the compiler fuses nothing on its own.
 * - Tables come from qk_tables.glsl (generated, like the C tables, by scripts/gen_tables.py):
 *   qk_tab_u8/i8/u16/u32/u64(QK_TAB_<name>, i). The IQ lattice maps, built on the host by
 *   kernels/cpu/iq_grid.c, follow the static tables: qk_grid_*(). */
#ifndef QK_COMMON_GLSL
#define QK_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

#include "qk_tables.glsl"

layout(std430, set = 0, binding = 0) readonly buffer QkTables { uint qk_tab[]; };

uint qk_tab_u8(uint tab, uint i) { return (qk_tab[tab + (i >> 2)] >> ((i & 3u) * 8u)) & 0xffu; }
int qk_tab_i8(uint tab, uint i) { return int(qk_tab_u8(tab, i) << 24) >> 24; }
uint qk_tab_u16(uint tab, uint i) { return (qk_tab[tab + (i >> 1)] >> ((i & 1u) * 16u)) & 0xffffu; }
uint qk_tab_u32(uint tab, uint i) { return qk_tab[tab + i]; }
uvec2 qk_tab_u64(uint tab, uint i) { return uvec2(qk_tab[tab + 2u * i], qk_tab[tab + 2u * i + 1u]); }

/* The lattice maps of kernels/cpu/iq_grid.h, after the static tables: a header of 8 words per
 * grid id (qk_iq_grid_id order) - ncoord, bits, ngrid, nwant, map_size, and the word offsets
 * of codes (uint16 pairs), map (int32) and neighbours (uint16 pairs) - then the arrays. */
#define QK_GRID_HEADER QK_TAB_WORDS
uint qk_grid_field(uint grid, uint f) { return qk_tab[QK_GRID_HEADER + 8u * grid + f]; }
uint qk_grid_code(uint grid, uint i) { return qk_tab_u16(qk_grid_field(grid, 5u), i); }
int qk_grid_map(uint grid, uint u) { return int(qk_tab[qk_grid_field(grid, 6u) + u]); }
/* Entry i of the neighbour list array (the list of a code u starts at -1 - map[u]: count,
 * then that many grid indices). */
uint qk_grid_neighbour(uint grid, uint i) { return qk_tab_u16(qk_grid_field(grid, 7u), i); }

/* ---- packed blocks ---------------------------------------------------------------------- */

uint qk_rd8(uint off) { return (QK_SRC_WORD(off >> 2) >> ((off & 3u) * 8u)) & 0xffu; }
uint qk_rd32(uint off) {
    uint s = (off & 3u) * 8u, lo = QK_SRC_WORD(off >> 2);
    return s == 0u ? lo : (lo >> s) | (QK_SRC_WORD((off >> 2) + 1u) << (32u - s));
}
uint qk_rd16(uint off) {
    return (off & 3u) == 3u ? qk_rd8(off) | (qk_rd8(off + 1u) << 8) : (QK_SRC_WORD(off >> 2) >> ((off & 3u) * 8u)) & 0xffffu;
}

/* A block being written: uint words of little-endian bytes, zeroed by the caller. Macros, so
 * that they take the block array of any format (its size, QK_BLOCK_WORDS, is defined by the
 * format file after this one). Arguments are evaluated more than once. */
#define qk_blk_get8(blk, off) (((blk)[(off) >> 2] >> (((off) & 3u) * 8u)) & 0xffu)
#define qk_blk_or8(blk, off, v) \
    do { (blk)[(off) >> 2] |= (uint(v) & 0xffu) << (((off) & 3u) * 8u); } while (false)
#define qk_blk_set8(blk, off, v) \
    do { \
        uint o_ = uint(off), s_ = (o_ & 3u) * 8u; \
        (blk)[o_ >> 2] = ((blk)[o_ >> 2] & ~(0xffu << s_)) | ((uint(v) & 0xffu) << s_); \
    } while (false)
#define qk_blk_set16(blk, off, v) \
    do { \
        uint o2_ = uint(off), v2_ = uint(v); \
        qk_blk_set8(blk, o2_, v2_); \
        qk_blk_set8(blk, o2_ + 1u, v2_ >> 8); \
    } while (false)
#define qk_blk_set32(blk, off, v) \
    do { \
        uint o4_ = uint(off), v4_ = uint(v); \
        qk_blk_set16(blk, o4_, v4_); \
        qk_blk_set16(blk, o4_ + 2u, v4_ >> 16); \
    } while (false)

/* ---- exact conversions ---------------------------------------------------------------- */

/* binary16 -> binary32, exact (subnormals, inf and NaN kept). */
float qk_fp16_to_f32(uint h) {
    uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (e == 0x1fu) return uintBitsToFloat(sign | 0x7f800000u | (man << 13));
    if (e == 0u) {
        float v = float(man) * 5.9604644775390625e-08;
        return sign != 0u ? -v : v;
    }
    return uintBitsToFloat(sign | ((e + 112u) << 23) | (man << 13));
}

/* binary32 -> binary16, round to nearest even; overflow -> inf, NaN -> sign|0x7E00. */
uint qk_f32_to_fp16(float f) {
    uint x = floatBitsToUint(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;
    if (ax >= 0x477ff000u) return sign | 0x7c00u;
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) return sign;
        uint m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - (ax >> 23);
        uint q = m >> shift, rem = m & ((1u << shift) - 1u), tie = 1u << (shift - 1u);
        if (rem > tie || (rem == tie && (q & 1u) != 0u)) q++;
        return sign | q;
    }
    uint q = ax - 0x38000000u, rem = q & 0x1fffu;
    q >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u) != 0u)) q++;
    return sign | q;
}

float qk_bf16_to_f32(uint h) { return uintBitsToFloat(h << 16); }
uint qk_f32_to_bf16(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return ((x >> 16) | 0x40u) & 0xffffu;
    return ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) & 0xffffu;
}

float qk_rdh(uint off) { return qk_fp16_to_f32(qk_rd16(off)); }

/* E8M0 exponent byte -> half of its nominal value, 2^(e-128), as ggml's MXFP4 uses it. */
float qk_e8m0_to_f32_half(uint e) {
    return uintBitsToFloat(e >= 2u ? (e - 1u) << 23 : (e == 1u ? 0x00400000u : 0x00200000u));
}

/* ---- the reference encoders' arithmetic ----------------------------------------------- */

/* A double rounded to the nearest float, ties to even, in integer arithmetic: Vulkan leaves
 * the rounding of a narrowing conversion to the implementation. Subnormal results included. */
float qk_f64_to_f32(double d) {
    uvec2 w = unpackDouble2x32(d);
    uint sign = w.y & 0x80000000u, e11 = (w.y >> 20) & 0x7ffu;
    if (e11 == 0x7ffu) return uintBitsToFloat(sign | 0x7f800000u | (((w.y & 0xfffffu) | w.x) != 0u ? 0x400000u : 0u));
    if (e11 == 0u) return uintBitsToFloat(sign); /* double subnormals are far below float's */
    int e = int(e11) - 1023 + 127;
    if (e >= 255) return uintBitsToFloat(sign | 0x7f800000u);
    /* 24 significant bits (implicit one included) and the 29 below them */
    uint m = 0x800000u | ((w.y & 0xfffffu) << 3) | (w.x >> 29), rest = w.x & 0x1fffffffu;
    const uint tie = 0x10000000u;
    if (e <= 0) { /* subnormal: shift right by 1 - e, folding the shifted-out bits into rest */
        int sh = 1 - e;
        if (sh > 25) return uintBitsToFloat(sign);
        uint out_bits = m & ((1u << sh) - 1u);
        bool sticky = rest != 0u;
        m >>= sh;
        /* the new rounding position: out_bits is the part below it, with sh bits */
        uint h = 1u << (sh - 1);
        bool up = out_bits > h || (out_bits == h && (sticky || (m & 1u) != 0u));
        return uintBitsToFloat(sign | (m + (up ? 1u : 0u)));
    }
    bool up = rest > tie || (rest == tie && (m & 1u) != 0u);
    return uintBitsToFloat(sign | ((uint(e) << 23) + (m & 0x7fffffu) + (up ? 1u : 0u)));
}

/* a / b and sqrt(x) correctly rounded, where Vulkan promises only 2.5 ulp for floats and may
 * split fma(): computed in double (error far below the distance of any float quotient or
 * root from a rounding boundary), then rounded to float exactly. Needs shaderFloat64. */
/* A float as a double, exactly, subnormals included (a driver may flush them in a plain
 * conversion). */
double qk_f32_to_f64(float f) {
    uint b = floatBitsToUint(f);
    if ((b & 0x7f800000u) != 0u || (b & 0x7fffffu) == 0u) return double(f);
    double v = double(b & 0x7fffffu) * 1.4012984643248171e-45lf; /* man * 2^-149 */
    return (b & 0x80000000u) != 0u ? -v : v;
}

/* Special operands are told apart by their bits: a device may flush subnormals in compares. */
float qk_div(float a, float b) {
    uint ab = floatBitsToUint(a) & 0x7fffffffu, bb = floatBitsToUint(b) & 0x7fffffffu;
    if (bb == 0u && ab != 0u && ab <= 0x7f800000u) /* nonzero / 0: inf, even where a is subnormal */
        return uintBitsToFloat(((floatBitsToUint(a) ^ floatBitsToUint(b)) & 0x80000000u) | 0x7f800000u);
    if (ab >= 0x7f800000u || bb >= 0x7f800000u || bb == 0u) return a / b;
    return qk_f64_to_f32(qk_f32_to_f64(a) / qk_f32_to_f64(b));
}

float qk_sqrt(float x) {
    uint b = floatBitsToUint(x);
    if ((b & 0x7fffffffu) == 0u || b == 0x7f800000u) return x; /* +-0, +inf */
    if (b >= 0x7f800000u) return uintBitsToFloat(0x7fc00000u); /* negative or NaN */
    /* Below 2^-100 the root is taken of x * 2^128 and scaled back by 2^-64 (both exact), so the
     * double root never sees a value near double's subnormals. (The zeros the H100's driver
     * still gave for subnormal x at 36629ef most likely came from the test shader's abs(),
     * which flushes x itself: arith_check.comp now clears the sign bit instead, qk_absf; not yet
     * rerun on the device.) */
    if (b < 0x0d800000u) return qk_f64_to_f32(sqrt(qk_f32_to_f64(x) * 3.4028236692093846e38lf) * 5.421010862427522e-20lf);
    return qk_f64_to_f32(sqrt(qk_f32_to_f64(x)));
}

/* ---- float arithmetic on subnormals ---------------------------------------------------- *
 * The H100's driver flushes subnormal operands and results of float multiplies, adds and
 * compares to zero, whatever the module's DenormPreserve mode says. Where an encoder works on a
 * block whose values can be subnormal, it multiplies, adds and compares with these instead:
 * a product or sum of two floats computed in double (a product exactly; a sum rounded to 53 bits,
 * and 53 >= 2*24 + 2 makes rounding that to float give the float operation's result) then
 * rounded once with qk_f64_to_f32; a compare on the bits. No double result here is subnormal
 * (the smallest nonzero product is 2^-298), so the driver has nothing to flush. */

bool qk_special(uint abs_bits) { return abs_bits >= 0x7f800000u; } /* inf or NaN */

float qk_mul(float a, float b) {
    const uint ab = floatBitsToUint(a) & 0x7fffffffu, bb = floatBitsToUint(b) & 0x7fffffffu;
    if (qk_special(ab) || qk_special(bb)) {
        const uint other = qk_special(ab) ? bb : ab;
        /* inf times a nonzero finite value is inf: a subnormal one must not become 0 (NaN) */
        if (ab > 0x7f800000u || bb > 0x7f800000u || other == 0u || other >= 0x00800000u) return a * b;
        return uintBitsToFloat(((floatBitsToUint(a) ^ floatBitsToUint(b)) & 0x80000000u) | 0x7f800000u);
    }
    return qk_f64_to_f32(qk_f32_to_f64(a) * qk_f32_to_f64(b));
}

/* a + b; inf or NaN operands make the result without help (a flushed finite operand cannot
 * change it) */
float qk_add(float a, float b) {
    if (qk_special(floatBitsToUint(a) & 0x7fffffffu) || qk_special(floatBitsToUint(b) & 0x7fffffffu)) return a + b;
    return qk_f64_to_f32(qk_f32_to_f64(a) + qk_f32_to_f64(b));
}

float qk_sub(float a, float b) { return qk_add(a, uintBitsToFloat(floatBitsToUint(b) ^ 0x80000000u)); }

float qk_absf(float a) { return uintBitsToFloat(floatBitsToUint(a) & 0x7fffffffu); }

/* The order of non-NaN floats as signed integers, +0 and -0 equal. */
int qk_order_key(float a) {
    const uint b = floatBitsToUint(a);
    return (b & 0x80000000u) != 0u ? -int(b & 0x7fffffffu) : int(b);
}
bool qk_lt(float a, float b) { return qk_order_key(a) < qk_order_key(b); }
bool qk_le(float a, float b) { return qk_order_key(a) <= qk_order_key(b); }
bool qk_eq(float a, float b) { return qk_order_key(a) == qk_order_key(b); }

/* Round to nearest, ties to even (valid for |v| <= 4194303), as the reference encoders do;
 * a NaN (made from finite input where an inverse scale overflowed) gives 0 as on x86. */
int qk_nearest_int(float v) {
    float val = v + QKC_NEAREST_INT_MAGIC;
    if (isnan(val)) return 0;
    return (floatBitsToInt(val) & 0x007fffff) - 0x00400000;
}

/* (int)v as x86's cvttss2si computes it: NaN and out-of-range values give INT_MIN. */
int qk_trunc_int(float v) { return v >= -2147483648.0 && v < 2147483648.0 ? int(v) : int(0x80000000u); }

/* (int)lroundf(v) as glibc computes it on x86-64: half away from zero; NaN, inf and
 * |v| >= 2^63 give 0; otherwise the low 32 bits of the rounded integer. Integer arithmetic on
 * the bits, so that no compiler can fold it into another rounding. */
int qk_lround_int(float v) {
    uint b = floatBitsToUint(v), e = (b >> 23) & 0xffu, m = (b & 0x7fffffu) | 0x800000u;
    if (e >= 127u + 63u) return 0; /* |v| >= 2^63, inf, NaN */
    if (e < 126u) return 0;        /* |v| < 0.5 */
    uint mag;
    if (e >= 150u) {
        mag = e - 150u < 32u ? m << (e - 150u) : 0u; /* an integer already: low 32 bits */
    } else {
        uint sh = 150u - e; /* 1..24 fraction bits */
        mag = (m >> sh) + ((m >> (sh - 1u)) & 1u);
    }
    return int((b & 0x80000000u) != 0u ? 0u - mag : mag);
}

int qk_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

#endif
