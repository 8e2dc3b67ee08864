/* GroupNorm forward and backward-to-input (biased variance, eps a parameter; spec §7.2).
 * Plain loops with double accumulators; they are their own reference.  No gradients for
 * gamma/beta.  Shapes and semantics are documented in nn.h. */
#include <math.h>

#include "err.h"
#include "nn.h"

void groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
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

void groupnorm_backward_input(float *din, const float *dout, const float *in, const float *mean,
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
