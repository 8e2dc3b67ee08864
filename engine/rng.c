/* Philox4x32-10 (Salmon et al., SC'11) and the distributions built on it. */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rng_init(rng_stream *r, uint64_t seed, uint64_t index)
{
    r->seed = seed;
    r->index = index;
    r->counter = 0;
}

static void next_block(rng_stream *r, uint32_t out[4])
{
    const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32),
                             (uint32_t)r->index, (uint32_t)(r->index >> 32)};
    rng_philox4x32(key, ctr, out);
    r->counter++;
}

/* Two words -> one double in [0,1) with 53 random bits. */
static double words_to_unit(uint32_t hi, uint32_t lo)
{
    uint64_t bits = ((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11);
    bits &= (UINT64_C(1) << 53) - 1;
    return (double)bits * 0x1.0p-53;
}

void rng_uniform(rng_stream *r, double *out, size_t n)
{
    uint32_t w[4];
    for (size_t i = 0; i < n; i += 2) {
        next_block(r, w);
        out[i] = words_to_unit(w[0], w[1]);
        if (i + 1 < n) out[i + 1] = words_to_unit(w[2], w[3]);
    }
}

/* One block -> two independent N(0,1) values (Box-Muller in double). */
static void normal_pair(rng_stream *r, double *a, double *b)
{
    uint32_t w[4];
    next_block(r, w);
    /* u1 in (0,1] so the log is finite; u2 in [0,1). */
    double u1 = 1.0 - words_to_unit(w[0], w[1]);
    double u2 = words_to_unit(w[2], w[3]);
    double radius = sqrt(-2.0 * log(u1));
    double angle = 2.0 * M_PI * u2;
    *a = radius * cos(angle);
    *b = radius * sin(angle);
}

void rng_normal_f64(rng_stream *r, double *out, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        double a, b;
        normal_pair(r, &a, &b);
        out[i] = a;
        if (i + 1 < n) out[i + 1] = b;
    }
}

void rng_normal(rng_stream *r, float *out, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        double a, b;
        normal_pair(r, &a, &b);
        out[i] = (float)a;
        if (i + 1 < n) out[i + 1] = (float)b;
    }
}

void rng_rademacher(rng_stream *r, float *out, size_t n)
{
    uint32_t w[4];
    for (size_t i = 0; i < n; i += 128) {
        next_block(r, w);
        for (size_t j = 0; j < 128 && i + j < n; j++)
            out[i + j] = ((w[j >> 5] >> (j & 31)) & 1u) ? 1.0f : -1.0f;
    }
}
