/* Vectors of LANES values, one per image, the float64 exp and log and the float32 tanh built from IEEE-754
   +, -, *, / alone (no libm: its results differ between C libraries and CPUs). */
#pragma once
#include "platform.h"

#ifndef LANES
#define LANES 8  /* images per group */
#endif

/* LANES floats, one per image: every operation on it is LANES independent IEEE operations. */
typedef float Lane __attribute__((vector_size(4 * LANES)));
typedef float Unaligned __attribute__((vector_size(4 * LANES), aligned(4)));  /* LANES floats of one image or tensor */
typedef double Wide __attribute__((vector_size(8 * LANES)));
typedef int64_t Words __attribute__((vector_size(8 * LANES)));
typedef int32_t Mask __attribute__((vector_size(4 * LANES)));  /* a comparison of Lanes */
typedef int32_t Ints __attribute__((vector_size(4 * LANES)));

/* The LANES x LANES block whose row i is in[i], transposed: out[l][i] = in[i][l].  Lanes hold images, so this
   turns LANES values of each image into each value's LANES images and back (loading images, adding up a batch). */
INLINE void transpose(const Lane *in, Lane *out) {
#if LANES == 8
    /* Three rounds of swapping one bit of the row index with the same bit of the lane index: 24 shuffles. */
    Lane a[8], b[8];
    for (int r = 0; r < 4; r++) {
        a[r] = __builtin_shufflevector(in[r], in[r + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        a[r + 4] = __builtin_shufflevector(in[r], in[r + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
    for (int r = 0; r < 8; r += (r % 4 == 1) ? 3 : 1) {
        b[r] = __builtin_shufflevector(a[r], a[r + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        b[r + 2] = __builtin_shufflevector(a[r], a[r + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int r = 0; r < 8; r += 2) {
        out[r] = __builtin_shufflevector(b[r], b[r + 1], 0, 8, 2, 10, 4, 12, 6, 14);
        out[r + 1] = __builtin_shufflevector(b[r], b[r + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    }
#else
    for (int l = 0; l < LANES; l++)
        for (int i = 0; i < LANES; i++) out[l][i] = in[i][l];
#endif
}

static const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;

typedef union { double d; int64_t i; } Bits;

INLINE Wide select_wide(Words mask, Wide yes, Wide no) {
    return (Wide)((mask & (Words)yes) | (~mask & (Words)no));
}

/* e^x = scale (1 + q) and e^x - 1 = scale q + (scale - 1), for x <= 0 (below -700, x = -700):
   x = k ln2 + r with k an integer and |r| <= ln2/2; scale = 2^k; q = e^r - 1 by its Taylor series to r^9. */
INLINE Wide exp_parts(Wide x, Wide *scale) {
    const Wide floor = (Wide){0} - 700.0;
    x = select_wide(x < floor, floor, x);  /* written so that a NaN stays NaN */
    Ints n = __builtin_convertvector(x * INV_LN2 - 0.5, Ints);  /* nearest integer, as x <= 0 */
    Ints low = n < -1022;  /* only a NaN converts below -1010 (to what the CPU chooses): keep the shift defined */
    n = (low & -1022) | (~low & n);
    Wide k = __builtin_convertvector(n, Wide);
    Wide r = (x - k * LN2_HI) - k * LN2_LO;
    Wide p = r * (1.0 / 362880.0) + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    *scale = (Wide)((__builtin_convertvector(n, Words) + 1023) << 52);
    return p * r;
}

INLINE Wide exp_nonpositive(Wide x) {
    Wide scale, q = exp_parts(x, &scale);
    return scale * (1.0 + q);
}

/* log(s) for s >= 1: s = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)). */
static double log_at_least_one(double s) {
    if (!(s <= 1.7976931348623157e308)) return s;  /* NaN or infinity: diverged training, reported as such */
    Bits bits = {.d = s};
    int64_t e = ((bits.i >> 52) & 0x7ff) - 1023;
    bits.i = (bits.i & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
    double m = bits.d;
    if (m > 1.41421356237309504880) { m = m * 0.5; e += 1; }
    double z = (m - 1.0) / (m + 1.0), z2 = z * z, series = 1.0 / 25.0;
    for (int n = 23; n >= 1; n -= 2) series = series * z2 + 1.0 / n;
    return (double)e * LN2_HI + ((double)e * LN2_LO + 2.0 * z * series);
}

INLINE Lane select_lane(Mask mask, Lane yes, Lane no) {
    return (Lane)((mask & (Mask)yes) | (~mask & (Mask)no));
}

/* tanh(a) = sign(a) (-m) / (2 + m) with m = e^(-2|a|) - 1, in float32; |a| capped at 10 (tanh is 1 in float32
   from 9.01).  e^x - 1 = scale q + (scale - 1) as exp_parts, with float32 constants: LN2_HI_F has 9 bits, so
   k LN2_HI_F is exact, and the Taylor series of q stops at r^7 (|r| <= ln2/2: error below 2e-8 of q).  Within
   2 ulp of tanh, 94% of floats exactly rounded; float32, because a float64 tanh takes twice the vectors:
   16 lanes' worth of divisions where 8 are needed. */
static const float LN2_HI_F = 0.693359375f, LN2_LO_F = -2.12194440e-4f, INV_LN2_F = 1.44269504088896341f;

/* tanh of v[0], ..., v[count - 1] in place, each step applied to every vector before the next: `count` independent
   chains side by side.  One tanh is a long chain of dependent operations, and the CPU's queues hold only a few
   of them when they come one after another; side by side they overlap.  The same bits: each lane's
   operations are the same.  `count`, at most TANH_AT_ONCE, is
   a constant where it is called, so the loops unroll. */
enum { TANH_AT_ONCE = 8 };

INLINE void tanh_each(Lane *v, int count) {
    const Ints sign = (Ints){0} + INT32_MIN;
    const Lane cap = (Lane){0} + 10.0f;
    Ints negative[TANH_AT_ONCE], n[TANH_AT_ONCE];
    Lane x[TANH_AT_ONCE], r[TANH_AT_ONCE], p[TANH_AT_ONCE], m[TANH_AT_ONCE];
    for (int t = 0; t < count; t++) {
        negative[t] = (Ints)v[t] & sign;
        Lane magnitude = (Lane)((Ints)v[t] & ~sign);
        x[t] = select_lane(magnitude > cap, cap, magnitude) * -2.0f;  /* a NaN stays NaN */
    }
    for (int t = 0; t < count; t++) n[t] = __builtin_convertvector(x[t] * INV_LN2_F - 0.5f, Ints);  /* nearest, x <= 0 */
    for (int t = 0; t < count; t++) {
        Lane k = __builtin_convertvector(n[t], Lane);
        r[t] = (x[t] - k * LN2_HI_F) - k * LN2_LO_F;
    }
    for (int t = 0; t < count; t++) p[t] = r[t] * (1.0f / 5040.0f) + 1.0f / 720.0f;
    for (int t = 0; t < count; t++) p[t] = p[t] * r[t] + 1.0f / 120.0f;
    for (int t = 0; t < count; t++) p[t] = p[t] * r[t] + 1.0f / 24.0f;
    for (int t = 0; t < count; t++) p[t] = p[t] * r[t] + 1.0f / 6.0f;
    for (int t = 0; t < count; t++) p[t] = p[t] * r[t] + 0.5f;
    for (int t = 0; t < count; t++) p[t] = p[t] * r[t] + 1.0f;
    for (int t = 0; t < count; t++) {
        Lane q = p[t] * r[t], scale = (Lane)((n[t] + 127) << 23);  /* n >= -29: 2^n is a normal float */
        m[t] = scale * q + (scale - 1.0f);
    }
    for (int t = 0; t < count; t++) {
        Lane y = (0.0f - m[t]) / (2.0f + m[t]);  /* 0 - m, not -m: tanh(+0) = +0 */
        v[t] = (Lane)((Ints)y | negative[t]);
    }
}

INLINE Lane tanh_lanes(Lane a) {
    tanh_each(&a, 1);
    return a;
}

