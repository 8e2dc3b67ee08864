/* The single-head attention core of AttnBlockpp (spec §7.3): softmax(q^T k / sqrt(C)) applied
 * to v, forward and backward to q, k, v, with plain-loop references.  The GroupNorm and NIN
 * projections around it are separate layers.  Shapes are documented in nn.h. */
#include <math.h>

#include <cblas.h>

#include "err.h"
#include "nn.h"

/* Row-wise softmax of s (P,P) in place, subtracting each row's maximum first. */
static void softmax_rows(float *s, int P)
{
    for (int p = 0; p < P; p++) {
        float *row = s + (size_t)p * P;
        float mx = row[0];
        for (int j = 1; j < P; j++)
            if (row[j] > mx) mx = row[j];
        double sum = 0.0;
        for (int j = 0; j < P; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = (float)(1.0 / sum);   /* sum >= 1: the maximum contributes exp(0) */
        for (int j = 0; j < P; j++) row[j] *= inv;
    }
}

void attn_forward(float *out, float *weights, const float *q, const float *k, const float *v,
                  int N, int C, int P)
{
    // q, k, v: (N,C,P)  weights: (N,P,P)  out: (N,C,P)
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1);
    const float scale = (float)(1.0 / sqrt((double)C));
    for (int n = 0; n < N; n++) {   /* per sample: batch-invariant bits (see conv2d_forward) */
        const size_t o = (size_t)n * C * P;
        float *w = weights + (size_t)n * P * P;
        /* w (P,P') = scale q^T (P,C) . k (C,P') */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, P, C, scale, q + o, P, k + o, P,
                    0.0f, w, P);
        softmax_rows(w, P);
        /* out (C,P) = v (C,P') . w^T (P',P) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, P, P, 1.0f, v + o, P, w, P, 0.0f,
                    out + o, P);
    }
}

void attn_forward_ref(float *out, float *weights, const float *q, const float *k, const float *v,
                      int N, int C, int P)
{
    // q, k, v: (N,C,P)  weights: (N,P,P)  out: (N,C,P)
    const double scale = 1.0 / sqrt((double)C);
    for (int n = 0; n < N; n++) {
        const float *qn = q + (size_t)n * C * P, *kn = k + (size_t)n * C * P;
        const float *vn = v + (size_t)n * C * P;
        float *w = weights + (size_t)n * P * P;
        for (int p = 0; p < P; p++) {
            /* scores are recomputed rather than buffered: the reference needs no scratch */
            double mx = -INFINITY, sum = 0.0;
            for (int pass = 0; pass < 3; pass++)
                for (int j = 0; j < P; j++) {
                    double s = 0.0;
                    for (int c = 0; c < C; c++)
                        s += (double)qn[(size_t)c * P + p] * kn[(size_t)c * P + j];
                    s *= scale;
                    if (pass == 0) mx = s > mx ? s : mx;
                    else if (pass == 1) sum += exp(s - mx);
                    else w[(size_t)p * P + j] = (float)(exp(s - mx) / sum);
                }
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int j = 0; j < P; j++)
                    acc += (double)w[(size_t)p * P + j] * vn[(size_t)c * P + j];
                out[((size_t)n * C + c) * P + p] = (float)acc;
            }
        }
    }
}

size_t attn_backward_scratch_floats(int P) { return (size_t)P * P; }

void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *weights,
                   const float *q, const float *k, const float *v, int N, int C, int P,
                   float *scratch)
{
    // dout, q, k, v: (N,C,P)  weights: (N,P,P)  dq, dk, dv: (N,C,P) overwritten  scratch: (P,P)
    /* With s = scale q^T k and w = softmax_rows(s):
     *   dv = dout w;  dw = dout^T v;  ds = w * (dw - rowsum(w * dw));
     *   dq = scale k ds^T;  dk = scale q ds. */
    SC_ASSERT(N >= 0 && C >= 1 && P >= 1);
    const float scale = (float)(1.0 / sqrt((double)C));
    float *ds = scratch;
    for (int n = 0; n < N; n++) {
        const size_t o = (size_t)n * C * P;
        const float *w = weights + (size_t)n * P * P;
        /* dv (C,P') = dout (C,P) . w (P,P') */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, P, 1.0f, dout + o, P, w, P,
                    0.0f, dv + o, P);
        /* dw (P,P') = dout^T (P,C) . v (C,P') */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, P, C, 1.0f, dout + o, P, v + o, P,
                    0.0f, ds, P);
        for (int p = 0; p < P; p++) {
            const float *wr = w + (size_t)p * P;
            float *dr = ds + (size_t)p * P;
            double dot = 0.0;
            for (int j = 0; j < P; j++) dot += (double)wr[j] * dr[j];
            const float dotf = (float)dot;
            for (int j = 0; j < P; j++) dr[j] = wr[j] * (dr[j] - dotf);
        }
        /* dq (C,P) = scale k (C,P') . ds^T (P',P);  dk (C,P') = scale q (C,P) . ds (P,P') */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, P, P, scale, k + o, P, ds, P, 0.0f,
                    dq + o, P);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, P, scale, q + o, P, ds, P,
                    0.0f, dk + o, P);
    }
}

/* Reference helpers for one sample (pointers already offset to it). */
static double ref_dw(const float *dout, const float *v, int C, int P, int p, int j)
{
    double s = 0.0;   /* dL/dw[p,j] = sum_c dout[c,p] v[c,j] */
    for (int c = 0; c < C; c++) s += (double)dout[(size_t)c * P + p] * v[(size_t)c * P + j];
    return s;
}

static double ref_ds(const float *dout, const float *w, const float *v, int C, int P, int p, int j)
{
    double dot = 0.0;   /* dL/ds[p,j] (before the 1/sqrt(C) scale) */
    for (int i = 0; i < P; i++) dot += (double)w[(size_t)p * P + i] * ref_dw(dout, v, C, P, p, i);
    return w[(size_t)p * P + j] * (ref_dw(dout, v, C, P, p, j) - dot);
}

void attn_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *weights,
                       const float *q, const float *k, const float *v, int N, int C, int P)
{
    // dout, q, k, v: (N,C,P)  weights: (N,P,P)  dq, dk, dv: (N,C,P) overwritten
    /* Each output element is one double sum; the score gradients are recomputed (slow, for
     * tests on small P). */
    const double scale = 1.0 / sqrt((double)C);
    for (int n = 0; n < N; n++) {
        const size_t o = (size_t)n * C * P;
        const float *w = weights + (size_t)n * P * P, *dy = dout + o;
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                double sv = 0.0, sq = 0.0, sk = 0.0;
                for (int j = 0; j < P; j++) {
                    sv += (double)dy[(size_t)c * P + j] * w[(size_t)j * P + p];
                    sq += ref_ds(dy, w, v + o, C, P, p, j) * k[o + (size_t)c * P + j];
                    sk += ref_ds(dy, w, v + o, C, P, j, p) * q[o + (size_t)c * P + j];
                }
                dv[o + (size_t)c * P + p] = (float)sv;
                dq[o + (size_t)c * P + p] = (float)(scale * sq);
                dk[o + (size_t)c * P + p] = (float)(scale * sk);
            }
    }
}
