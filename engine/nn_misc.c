/* The small layers: NIN and Dense (one BLAS call per sample, with plain-loop references), SiLU,
 * the Fourier and positional time embeddings, and elementwise helpers for wiring networks.
 * Shapes and semantics are documented in nn.h. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "err.h"
#include "nn.h"
#include "nn_vec.h"

/* ---- NIN ---------------------------------------------------------------------------------- */

void nin_forward(float *out, const float *in, const float *w, const float *b,
                 int N, int C, int O, int P)
{
    // in: (N,C,P)  w: (C,O)  b: (O) or NULL  out: (N,O,P)
    SC_ASSERT(N >= 0 && C >= 1 && O >= 1 && P >= 1);
    for (int n = 0; n < N; n++) {   /* per sample: batch-invariant bits (see conv2d_forward) */
        const float *x = in + (size_t)n * C * P;
        float *y = out + (size_t)n * O * P;
        /* y (O,P) = w^T (O,C) . x (C,P) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, P, C, 1.0f, w, O, x, P, 0.0f, y, P);
        if (b)
            for (int o = 0; o < O; o++)
                for (int p = 0; p < P; p++) y[(size_t)o * P + p] += b[o];
    }
}

void nin_forward_ref(float *out, const float *in, const float *w, const float *b,
                     int N, int C, int O, int P)
{
    // in: (N,C,P)  w: (C,O)  b: (O) or NULL  out: (N,O,P)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int p = 0; p < P; p++) {
                double acc = b ? b[o] : 0.0;
                for (int c = 0; c < C; c++)
                    acc += (double)in[((size_t)n * C + c) * P + p] * w[(size_t)c * O + o];
                out[((size_t)n * O + o) * P + p] = (float)acc;
            }
}

void nin_backward_input(float *din, const float *dout, const float *w, int N, int C, int O, int P)
{
    // dout: (N,O,P)  w: (C,O)  din: (N,C,P) overwritten
    SC_ASSERT(N >= 0 && C >= 1 && O >= 1 && P >= 1);
    for (int n = 0; n < N; n++)
        /* dx (C,P) = w (C,O) . dy (O,P) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, P, O, 1.0f, w, O,
                    dout + (size_t)n * O * P, P, 0.0f, din + (size_t)n * C * P, P);
}

void nin_backward_input_ref(float *din, const float *dout, const float *w,
                            int N, int C, int O, int P)
{
    // dout: (N,O,P)  w: (C,O)  din: (N,C,P) overwritten
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                double acc = 0.0;
                for (int o = 0; o < O; o++)
                    acc += (double)w[(size_t)c * O + o] * dout[((size_t)n * O + o) * P + p];
                din[((size_t)n * C + c) * P + p] = (float)acc;
            }
}

/* ---- Dense -------------------------------------------------------------------------------- */

void dense_forward(float *out, const float *in, const float *w, const float *b,
                   int N, int Cin, int Cout)
{
    // in: (N,Cin)  w: (Cout,Cin)  b: (Cout) or NULL  out: (N,Cout)
    SC_ASSERT(N >= 0 && Cin >= 1 && Cout >= 1);
    for (int n = 0; n < N; n++) {
        float *y = out + (size_t)n * Cout;
        /* y starts as the bias and gemv adds with beta = 1: never reads uninitialised y */
        if (b)
            memcpy(y, b, sizeof(float) * Cout);
        else
            memset(y, 0, sizeof(float) * Cout);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Cout, Cin, 1.0f, w, Cin, in + (size_t)n * Cin, 1,
                    1.0f, y, 1);
    }
}

void dense_forward_ref(float *out, const float *in, const float *w, const float *b,
                       int N, int Cin, int Cout)
{
    // in: (N,Cin)  w: (Cout,Cin)  b: (Cout) or NULL  out: (N,Cout)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < Cin; i++)
                acc += (double)w[(size_t)o * Cin + i] * in[(size_t)n * Cin + i];
            out[(size_t)n * Cout + o] = (float)acc;
        }
}

void dense_backward_input(float *din, const float *dout, const float *w, int N, int Cin, int Cout)
{
    // dout: (N,Cout)  w: (Cout,Cin)  din: (N,Cin) overwritten
    SC_ASSERT(N >= 0 && Cin >= 1 && Cout >= 1);
    for (int n = 0; n < N; n++) {
        float *dx = din + (size_t)n * Cin;
        memset(dx, 0, sizeof(float) * Cin);
        /* dx (Cin) = w^T (Cin,Cout) . dy (Cout) */
        cblas_sgemv(CblasRowMajor, CblasTrans, Cout, Cin, 1.0f, w, Cin, dout + (size_t)n * Cout, 1,
                    1.0f, dx, 1);
    }
}

void dense_backward_input_ref(float *din, const float *dout, const float *w,
                              int N, int Cin, int Cout)
{
    // dout: (N,Cout)  w: (Cout,Cin)  din: (N,Cin) overwritten
    for (int n = 0; n < N; n++)
        for (int i = 0; i < Cin; i++) {
            double acc = 0.0;
            for (int o = 0; o < Cout; o++)
                acc += (double)w[(size_t)o * Cin + i] * dout[(size_t)n * Cout + o];
            din[(size_t)n * Cin + i] = (float)acc;
        }
}

/* ---- SiLU --------------------------------------------------------------------------------- */

/* SiLU runs 8 lanes at a time through nn_v8f_exp (nn_vec.h); the last n % 8 elements go
 * through the same vector code, zero-padded, so every element gets the same bits wherever it
 * sits.  silu_forward_ref / silu_backward_ref are the plain expf loops the tests compare
 * against (relative difference ~1e-7). */

static inline __attribute__((always_inline)) nn_v8f silu_grad_v8(nn_v8f dy, nn_v8f x)
{
    const nn_v8f one = nn_v8f_splat(1.0f);
    nn_v8f s = one / (one + nn_v8f_exp(-x));
    return dy * s * (one + x * (one - s));
}

NN_VEC_CLONES
void silu_forward(float *out, const float *in, size_t n)
{
    // in, out: (n); out may alias in
    size_t i = 0;
    for (; i + 8 <= n; i += 8) nn_v8f_store(out + i, nn_v8f_silu(nn_v8f_load(in + i)));
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, in + i, sizeof(float) * (n - i));
        nn_v8f_store(buf, nn_v8f_silu(nn_v8f_load(buf)));
        memcpy(out + i, buf, sizeof(float) * (n - i));
    }
}

NN_VEC_CLONES
void silu_backward(float *din, const float *dout, const float *in, size_t n)
{
    // dout, in, din: (n)
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        nn_v8f_store(din + i, silu_grad_v8(nn_v8f_load(dout + i), nn_v8f_load(in + i)));
    if (i < n) {
        float bd[8] = {0}, bx[8] = {0};
        memcpy(bd, dout + i, sizeof(float) * (n - i));
        memcpy(bx, in + i, sizeof(float) * (n - i));
        nn_v8f_store(bd, silu_grad_v8(nn_v8f_load(bd), nn_v8f_load(bx)));
        memcpy(din + i, bd, sizeof(float) * (n - i));
    }
}

void silu_forward_ref(float *out, const float *in, size_t n)
{
    // in, out: (n)
    for (size_t i = 0; i < n; i++) out[i] = in[i] / (1.0f + expf(-in[i]));
}

void silu_backward_ref(float *din, const float *dout, const float *in, size_t n)
{
    // dout, in, din: (n)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-in[i]));
        din[i] = dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}

/* ---- Embeddings --------------------------------------------------------------------------
 * The arguments of sin/cos are rounded to float32 exactly where PyTorch rounds them
 * (layerspp.GaussianFourierProjection, layers.get_timestep_embedding), so the embedding of a
 * given label matches the reference code's to the last bit or two; sin and cos themselves are
 * evaluated in double.  (With |t f| up to ~1e3, an argument computed in double instead would
 * differ from the reference's by up to ~1e-4.) */

void embed_gaussian_fourier(float *out, const float *log_sigma, const float *w, int N, int nf)
{
    // log_sigma: (N)  w: (nf)  out: (N, 2*nf)
    SC_ASSERT(N >= 0 && nf >= 1);
    const float pi_f = (float)3.14159265358979323846; /* np.pi as PyTorch casts it */
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nf; j++) {
            /* x[:, None] * W[None, :] * 2 * np.pi, left to right in float32 */
            float arg = log_sigma[n] * w[j];
            arg = arg * 2.0f;
            arg = arg * pi_f;
            out[(size_t)n * 2 * nf + j] = (float)sin((double)arg);
            out[(size_t)n * 2 * nf + nf + j] = (float)cos((double)arg);
        }
}

void embed_positional(float *out, const float *t, int N, int dim)
{
    // t: (N)  out: (N, dim)
    SC_ASSERT(N >= 0 && dim >= 4);
    const int half = dim / 2;
    const float neg_step = (float)(-log(10000.0) / (half - 1));
    for (int n = 0; n < N; n++) {
        float *e = out + (size_t)n * dim;
        for (int j = 0; j < half; j++) {
            float f =
                (float)exp((double)((float)j * neg_step)); /* f_j = exp(-j ln(1e4)/(half-1)) */
            float arg = t[n] * f;
            e[j] = (float)sin((double)arg);
            e[half + j] = (float)cos((double)arg);
        }
        if (dim % 2) e[dim - 1] = 0.0f;
    }
}

/* ---- Elementwise --------------------------------------------------------------------------
 * 8 lanes at a time, the rest one by one: an IEEE add or multiply gives the same bits in a
 * vector lane as in scalar code, so position in the array never matters. */

NN_VEC_CLONES
void nn_add(float *out, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) nn_v8f_store(out + i, nn_v8f_load(a + i) + nn_v8f_load(b + i));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

NN_VEC_CLONES
void nn_add_scaled(float *out, const float *a, const float *b, float s, size_t n)
{
    const nn_v8f vs = nn_v8f_splat(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) nn_v8f_store(out + i, (nn_v8f_load(a + i) + nn_v8f_load(b + i)) * vs);
    for (; i < n; i++) out[i] = (a[i] + b[i]) * s;
}

void nn_scale(float *out, const float *in, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] * s;
}

NN_VEC_CLONES
void nn_add_channel_bias(float *x, const float *bias, int N, int C, int P)
{
    // x: (N,C,P)  bias: (N,C)
    for (size_t nc = 0; nc < (size_t)N * C; nc++) {
        float *xp = x + nc * P;
        const nn_v8f vb = nn_v8f_splat(bias[nc]);
        int p = 0;
        for (; p + 8 <= P; p += 8) nn_v8f_store(xp + p, nn_v8f_load(xp + p) + vb);
        for (; p < P; p++) xp[p] += bias[nc];
    }
}

void nn_concat_channels(float *out, const float *a, const float *b, int N, int Ca, int Cb, int P)
{
    // a: (N,Ca,P)  b: (N,Cb,P)  out: (N,Ca+Cb,P)
    const size_t sa = (size_t)Ca * P, sb = (size_t)Cb * P;
    for (int n = 0; n < N; n++) {
        memcpy(out + n * (sa + sb), a + n * sa, sizeof(float) * sa);
        memcpy(out + n * (sa + sb) + sa, b + n * sb, sizeof(float) * sb);
    }
}

void nn_split_channels(float *a, float *b, const float *in, int N, int Ca, int Cb, int P)
{
    // in: (N,Ca+Cb,P)  a: (N,Ca,P) or NULL  b: (N,Cb,P) or NULL
    const size_t sa = (size_t)Ca * P, sb = (size_t)Cb * P;
    for (int n = 0; n < N; n++) {
        if (a) memcpy(a + n * sa, in + n * (sa + sb), sizeof(float) * sa);
        if (b) memcpy(b + n * sb, in + n * (sa + sb) + sa, sizeof(float) * sb);
    }
}
