/* Eight-lane float vectors (GCC/Clang vector extensions) and a vector exp, for the elementwise
 * layers (SiLU, GroupNorm).  Internal to engine/nn_*.c.
 *
 * NN_VEC_CLONES compiles a function twice on x86-64, for AVX2 and for the baseline, and picks
 * one at load time (ifunc).  Both clones give the same bits: the Makefile builds with
 * -ffp-contract=off (no fused multiply-adds), and every operation below is a correctly rounded
 * IEEE single operation done in the same order in both.  The helpers are always inlined into
 * their (cloned) callers.
 *
 * Batch invariance: callers run whole arrays through 8-lane blocks and push a short tail
 * through the same vector code (zero-padded), so an element's result never depends on where
 * it sits in the array, hence never on its batch-mates. */
#ifndef SCORED_NN_VEC_H
#define SCORED_NN_VEC_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NN_VEC_CLONES
#endif

typedef float nn_v8f __attribute__((vector_size(32)));
typedef int32_t nn_v8i __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) nn_v8f nn_v8f_load(const float *p)
{
    nn_v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void nn_v8f_store(float *p, nn_v8f v)
{
    memcpy(p, &v, sizeof v);
}

static inline __attribute__((always_inline)) nn_v8f nn_v8f_splat(float a)
{
    return (nn_v8f){a, a, a, a, a, a, a, a};
}

/* Lanewise min and max (vector ?: is C++ only): select through the comparison mask. */
static inline __attribute__((always_inline)) nn_v8f nn_v8f_select(nn_v8i mask, nn_v8f a, nn_v8f b)
{
    nn_v8i ia, ib, r;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    r = (mask & ia) | (~mask & ib);
    nn_v8f out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* exp(x) per lane.  For x in [-87, 88]: relative error about 1e-7 (Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2/2, then a degree-7 polynomial for e^r whose Taylor remainder
 * r^8/8! <= 6e-9 is below float rounding; measured worst 1.0e-7 over 6e7 inputs).  Beyond:
 * +inf above 88 (expf is finite up to 88.72) and 0 below -87 (expf < 1.6e-38 there), so an
 * absolute error under 1.6e-38 at the low end.  NaN stays NaN. */
static inline __attribute__((always_inline)) nn_v8f nn_v8f_exp(nn_v8f x)
{
    const nn_v8f hi = nn_v8f_splat(88.0f), lo = nn_v8f_splat(-87.0f);
    const nn_v8i over = x > hi, under = x < lo;
    x = nn_v8f_select(over, hi, x);
    x = nn_v8f_select(under, lo, x);
    /* n = round(x / ln2) with the 1.5 * 2^23 trick: t's low mantissa bits hold n */
    const nn_v8f shifter = nn_v8f_splat(12582912.0f);
    nn_v8f t = x * nn_v8f_splat(1.44269504088896341f) + shifter;
    nn_v8f n = t - shifter;
    nn_v8i ni;
    memcpy(&ni, &t, sizeof ni);
    ni = ni - (nn_v8i){0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000,
                       0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000};
    /* ln2 split so that n * ln2_hi is exact for |n| < 2^9 */
    nn_v8f r = x - n * nn_v8f_splat(0.693145751953125f);
    r = r - n * nn_v8f_splat(1.428606765330187e-06f);
    nn_v8f p = nn_v8f_splat(1.0f / 5040.0f);
    p = p * r + nn_v8f_splat(1.0f / 720.0f);
    p = p * r + nn_v8f_splat(1.0f / 120.0f);
    p = p * r + nn_v8f_splat(1.0f / 24.0f);
    p = p * r + nn_v8f_splat(1.0f / 6.0f);
    p = p * r + nn_v8f_splat(0.5f);
    p = p * r + nn_v8f_splat(1.0f);
    p = p * r + nn_v8f_splat(1.0f);
    /* 2^n as a float: n + 127 in the exponent field (n in [-126, 127] after the clamp) */
    nn_v8i bits = (ni + (nn_v8i){127, 127, 127, 127, 127, 127, 127, 127}) << 23;
    nn_v8f scale;
    memcpy(&scale, &bits, sizeof scale);
    nn_v8f y = p * scale;
    y = nn_v8f_select(over, nn_v8f_splat(__builtin_inff()), y);
    return nn_v8f_select(under, nn_v8f_splat(0.0f), y);
}

/* SiLU per lane: x / (1 + exp(-x)). */
static inline __attribute__((always_inline)) nn_v8f nn_v8f_silu(nn_v8f x)
{
    return x / (nn_v8f_splat(1.0f) + nn_v8f_exp(-x));
}

#endif
