/* GroupNorm forward and backward-to-input (biased variance, eps a parameter; spec §7.2).
 * groupnorm_forward (and its fusion with the SiLU that follows it in every ResNet block) runs
 * 8 lanes at a time (nn_vec.h); groupnorm_forward_ref is the plain double-accumulator loop the
 * tests compare it against.  No gradients for gamma/beta.  Shapes and semantics: nn.h. */
#include <math.h>

#include "err.h"
#include "nn.h"
#include "nn_vec.h"

typedef float nn_v4f __attribute__((vector_size(16)));
typedef double nn_v4d __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) nn_v4d load_v4d(const float *p)
{
    nn_v4f f;
    memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, nn_v4d);
}

static inline __attribute__((always_inline)) double lanes_sum(nn_v4d a, nn_v4d b)
{
    nn_v4d c = a + b;
    return (c[0] + c[1]) + (c[2] + c[3]);
}

/* sum of x[0..count) and of (x - mu)^2, in double: 8 double lanes over blocks of 8, then the
 * lanes in a fixed order, then the tail.  Deterministic for a given count (a group's values
 * sit at the same offsets whatever the batch). */
static inline __attribute__((always_inline)) double group_sum(const float *x, size_t count)
{
    nn_v4d a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        a += load_v4d(x + i);
        b += load_v4d(x + i + 4);
    }
    double s = lanes_sum(a, b);
    for (; i < count; i++) s += x[i];
    return s;
}

static inline __attribute__((always_inline)) double group_sq_dev(const float *x, size_t count, double mu)
{
    const nn_v4d m = {mu, mu, mu, mu};
    nn_v4d a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        nn_v4d d0 = load_v4d(x + i) - m, d1 = load_v4d(x + i + 4) - m;
        a += d0 * d0;
        b += d1 * d1;
    }
    double ss = lanes_sum(a, b);
    for (; i < count; i++) {
        double d = x[i] - mu;
        ss += d * d;
    }
    return ss;
}

/* y = (x - mu) * (rstd * gamma) + beta over one channel's P values; silu (may be NULL) also
 * gets SiLU(y).  The tail runs zero-padded through the same vector code. */
static inline __attribute__((always_inline)) void channel_apply(float *y, float *silu, const float *x, int P, float mu, float a, float be)
{
    const nn_v8f vm = nn_v8f_splat(mu), va = nn_v8f_splat(a), vb = nn_v8f_splat(be);
    int p = 0;
    for (; p + 8 <= P; p += 8) {
        nn_v8f v = (nn_v8f_load(x + p) - vm) * va + vb;
        nn_v8f_store(y + p, v);
        if (silu) nn_v8f_store(silu + p, nn_v8f_silu(v));
    }
    if (p < P) {
        float buf[8] = {0};
        memcpy(buf, x + p, sizeof(float) * (P - p));
        nn_v8f v = (nn_v8f_load(buf) - vm) * va + vb;
        nn_v8f_store(buf, v);
        memcpy(y + p, buf, sizeof(float) * (P - p));
        if (silu) {
            nn_v8f_store(buf, nn_v8f_silu(v));
            memcpy(silu + p, buf, sizeof(float) * (P - p));
        }
    }
}

NN_VEC_CLONES
void groupnorm_silu_forward(float *out, float *silu, float *mean, float *rstd, const float *in,
                            const float *gamma, const float *beta, int N, int C, int P, int G, float eps)
{
    // in, out, silu: (N,C,P)  gamma, beta: (C) or NULL  mean, rstd: (N,G) or NULL
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1 && G >= 1 && C % G == 0);
    const int Cg = C / G;
    const size_t count = (size_t)Cg * P;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * Cg) * P;
            const float *x = in + base;
            /* two passes: the mean, then the biased variance about it (no cancellation) */
            const double mu = group_sum(x, count) / count;
            const double r = 1.0 / sqrt(group_sq_dev(x, count, mu) / count + eps);
            if (mean) mean[(size_t)n * G + g] = (float)mu;
            if (rstd) rstd[(size_t)n * G + g] = (float)r;
            for (int c = 0; c < Cg; c++) {
                const int ch = g * Cg + c;
                const float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
                const size_t off = base + (size_t)c * P;
                channel_apply(out + off, silu ? silu + off : NULL, in + off, P, (float)mu,
                              (float)r * ga, be);
            }
        }
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *gamma, const float *beta, int N, int C, int P, int G, float eps)
{
    groupnorm_silu_forward(out, NULL, mean, rstd, in, gamma, beta, N, C, P, G, eps);
}

void groupnorm_forward_ref(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int N, int C, int P, int G, float eps)
{
    // in, out: (N,C,P)  gamma, beta: (C) or NULL  mean, rstd: (N,G) or NULL
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1 && G >= 1 && C % G == 0);
    const int Cg = C / G;
    const size_t count = (size_t)Cg * P;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * Cg) * P;
            const float *x = in + base;
            /* two passes: the mean, then the biased variance about it (no cancellation) */
            double s = 0.0;
            for (size_t i = 0; i < count; i++) s += x[i];
            const double mu = s / count;
            double ss = 0.0;
            for (size_t i = 0; i < count; i++) {
                double d = x[i] - mu;
                ss += d * d;
            }
            const double r = 1.0 / sqrt(ss / count + eps);
            if (mean) mean[(size_t)n * G + g] = (float)mu;
            if (rstd) rstd[(size_t)n * G + g] = (float)r;
            const float muf = (float)mu, rf = (float)r;
            for (int c = 0; c < Cg; c++) {
                const int ch = g * Cg + c;
                const float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
                const float *xc = x + (size_t)c * P;
                float *yc = out + base + (size_t)c * P;
                for (int p = 0; p < P; p++) yc[p] = (xc[p] - muf) * rf * ga + be;
            }
        }
}

void groupnorm_backward_input_ref(float *din, const float *dout, const float *in, const float *mean,
                                  const float *rstd, const float *gamma, int N, int C, int P, int G)
{
    // dout, in, din: (N,C,P)  mean, rstd: (N,G) from groupnorm_forward  gamma: (C) or NULL
    /* With xhat = (x - mean) rstd and g = dout gamma, per group of M = (C/G) P values:
     *   din = rstd (g - sum(g)/M - xhat sum(g xhat)/M)
     * (the two sums are the mean's and the variance's contributions). */
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1 && G >= 1 && C % G == 0);
    const int Cg = C / G;
    const size_t count = (size_t)Cg * P;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * Cg) * P;
            const float mu = mean[(size_t)n * G + g], r = rstd[(size_t)n * G + g];
            double sg = 0.0, sgx = 0.0;
            for (int c = 0; c < Cg; c++) {
                const float ga = gamma ? gamma[g * Cg + c] : 1.0f;
                const float *xc = in + base + (size_t)c * P, *dc = dout + base + (size_t)c * P;
                for (int p = 0; p < P; p++) {
                    double gi = (double)dc[p] * ga;
                    sg += gi;
                    sgx += gi * ((double)(xc[p] - mu) * r);
                }
            }
            const float m1 = (float)(sg / count), m2 = (float)(sgx / count);
            for (int c = 0; c < Cg; c++) {
                const float ga = gamma ? gamma[g * Cg + c] : 1.0f;
                const float *xc = in + base + (size_t)c * P, *dc = dout + base + (size_t)c * P;
                float *oc = din + base + (size_t)c * P;
                for (int p = 0; p < P; p++) {
                    float xhat = (xc[p] - mu) * r;
                    oc[p] = r * (dc[p] * ga - m1 - xhat * m2);
                }
            }
        }
}

/* sum of d[0..P) and of d (x - mu), in double: 8 lanes over blocks of 8, the lanes in a fixed
 * order, then the tail (the same for a channel wherever it sits in the batch). */
static inline __attribute__((always_inline)) void channel_grad_sums(const float *d, const float *x, int P, double mu,
                                                                    double *sd, double *sdx)
{
    const nn_v4d m = {mu, mu, mu, mu};
    nn_v4d a0 = {0, 0, 0, 0}, a1 = a0, b0 = a0, b1 = a0;
    int p = 0;
    for (; p + 8 <= P; p += 8) {
        const nn_v4d d0 = load_v4d(d + p), d1 = load_v4d(d + p + 4);
        a0 += d0, a1 += d1;
        b0 += d0 * (load_v4d(x + p) - m), b1 += d1 * (load_v4d(x + p + 4) - m);
    }
    double s = lanes_sum(a0, a1), sx = lanes_sum(b0, b1);
    for (; p < P; p++) {
        s += d[p];
        sx += d[p] * ((double)x[p] - mu);
    }
    *sd = s, *sdx = sx;
}

/* din = r (dout ga - m1 - (x - mu) r m2) over one channel, 8 lanes at a time (the tail
 * zero-padded through the same code). */
static inline __attribute__((always_inline)) void channel_grad_apply(float *din, const float *d, const float *x, int P,
                                                                     float mu, float r, float ga, float m1, float m2)
{
    const nn_v8f vmu = nn_v8f_splat(mu), vr = nn_v8f_splat(r), vga = nn_v8f_splat(ga), vm1 = nn_v8f_splat(m1),
                 vm2 = nn_v8f_splat(m2);
    int p = 0;
    for (; p + 8 <= P; p += 8) {
        const nn_v8f xhat = (nn_v8f_load(x + p) - vmu) * vr;
        nn_v8f_store(din + p, vr * (nn_v8f_load(d + p) * vga - vm1 - xhat * vm2));
    }
    if (p < P) {
        float bd[8] = {0}, bx[8] = {0};
        memcpy(bd, d + p, sizeof(float) * (P - p));
        memcpy(bx, x + p, sizeof(float) * (P - p));
        const nn_v8f xhat = (nn_v8f_load(bx) - vmu) * vr;
        nn_v8f_store(bd, vr * (nn_v8f_load(bd) * vga - vm1 - xhat * vm2));
        memcpy(din + p, bd, sizeof(float) * (P - p));
    }
}

NN_VEC_CLONES
void groupnorm_backward_input(float *din, const float *dout, const float *in, const float *mean,
                              const float *rstd, const float *gamma, int N, int C, int P, int G)
{
    // dout, in, din: (N,C,P)  mean, rstd: (N,G) from groupnorm_forward  gamma: (C) or NULL
    /* groupnorm_backward_input_ref's formula; the sums per channel in double lanes, scaled by
     * the channel's gamma, then summed over the group's channels in order. */
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1 && G >= 1 && C % G == 0);
    const int Cg = C / G;
    const size_t count = (size_t)Cg * P;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * Cg) * P;
            const float mu = mean[(size_t)n * G + g], r = rstd[(size_t)n * G + g];
            double sg = 0.0, sgx = 0.0;
            for (int c = 0; c < Cg; c++) {
                const double ga = gamma ? gamma[g * Cg + c] : 1.0;
                double sd, sdx;
                channel_grad_sums(dout + base + (size_t)c * P, in + base + (size_t)c * P, P, mu, &sd, &sdx);
                sg += ga * sd;
                sgx += ga * sdx;
            }
            const float m1 = (float)(sg / count), m2 = (float)(sgx * r / count);
            for (int c = 0; c < Cg; c++) {
                const size_t off = base + (size_t)c * P;
                channel_grad_apply(din + off, dout + off, in + off, P, mu, r, gamma ? gamma[g * Cg + c] : 1.0f, m1,
                                   m2);
            }
        }
}
