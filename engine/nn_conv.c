/* 2-D convolution, forward and backward-to-input: im2col + one cblas_sgemm per sample, and the
 * plain-loop references the tests compare against.  No weight gradients, no transposed conv.
 * Shapes and semantics are documented in nn.h. */
#include <string.h>

#include <cblas.h>

#include "err.h"
#include "nn.h"
#include "nn_vec.h"

int conv2d_out_h(conv2d_geom g, int H)
{
    return (H + g.pad_top + g.pad_bottom - g.kh) / g.stride + 1;
}
int conv2d_out_w(conv2d_geom g, int W)
{
    return (W + g.pad_left + g.pad_right - g.kw) / g.stride + 1;
}

static void check_geom(conv2d_geom g, int N, int C, int H, int W, int K)
{
    SC_ASSERT(N >= 0 && C >= 1 && H >= 1 && W >= 1 && K >= 1);
    SC_ASSERT(g.kh >= 1 && g.kw >= 1 && g.stride >= 1);
    SC_ASSERT(g.pad_top >= 0 && g.pad_left >= 0 && g.pad_bottom >= 0 && g.pad_right >= 0);
    SC_ASSERT(H + g.pad_top + g.pad_bottom >= g.kh && W + g.pad_left + g.pad_right >= g.kw);
}

/* A 1x1 stride-1 unpadded conv is a plain matrix product on the input: no im2col needed. */
static int is_pointwise(conv2d_geom g)
{
    return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0 &&
           g.pad_bottom == 0 && g.pad_right == 0;
}

size_t conv2d_scratch_floats(int C, int H, int W, conv2d_geom g)
{
    if (is_pointwise(g)) return 0;
    return (size_t)C * g.kh * g.kw * conv2d_out_h(g, H) * conv2d_out_w(g, W);
}

/* Output columns j in [*j0, *j1) read input column j*s + off inside [0, W); the rest read the
 * zero padding. */
static void valid_range(int off, int s, int W, int Wo, int *j0, int *j1)
{
    /* smallest j with j*s + off >= 0, largest j with j*s + off <= W-1 */
    int lo = off >= 0 ? 0 : (-off + s - 1) / s;
    int hi = W - 1 - off < 0 ? -1 : (W - 1 - off) / s;
    if (hi > Wo - 1) hi = Wo - 1;
    if (lo > hi + 1) lo = hi + 1;
    *j0 = lo;
    *j1 = hi + 1;
}

/* dst[0..n) = src[0..n): 8 floats at a time (rows here are short: a call to memcpy per row
 * cost more than the copy). */
static inline __attribute__((always_inline)) void copy_floats(float *dst, const float *src, int n)
{
    int j = 0;
    for (; j + 8 <= n; j += 8) nn_v8f_store(dst + j, nn_v8f_load(src + j));
    for (; j < n; j++) dst[j] = src[j];
}

/* im2col for stride 1 with W' = W (the 'same' convs: 3x3 pad 1): row (c,a,e) is channel c's
 * plane shifted by (a - pt) rows and (e - pl) columns, so its valid rows are ONE contiguous
 * copy of the plane; the columns that wrapped around a row edge are then set to 0.  Same
 * values as the general loop below, with long copies instead of one per output row. */
static void im2col_same_width(float *col, const float *x, int C, int H, int W, conv2d_geom g, int Ho)
{
    const size_t plane = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (int a = 0; a < g.kh; a++)
            for (int e = 0; e < g.kw; e++) {
                float *row = col + ((size_t)(c * g.kh + a) * g.kw + e) * Ho * W;
                const int dy = a - g.pad_top, dx = e - g.pad_left;
                /* output rows [i0, i1) read input rows inside [0, H) */
                int i0 = dy < 0 ? -dy : 0, i1 = H - dy < Ho ? H - dy : Ho;
                if (i0 > Ho) i0 = Ho;
                if (i1 < i0) i1 = i0;
                int j0, j1;
                valid_range(dx, 1, W, W, &j0, &j1);
                memset(row, 0, sizeof(float) * (size_t)i0 * W);
                memset(row + (size_t)i1 * W, 0, sizeof(float) * (size_t)(Ho - i1) * W);
                if (i1 == i0) continue;
                /* dst index d reads plane index d + off; keep reads inside the plane (the
                 * elements skipped are wrapped edge columns, zeroed below) */
                const long off = (long)dy * W + dx;
                long d0 = (long)i0 * W, d1 = (long)i1 * W;
                if (d0 + off < 0) d0 = -off;
                if (d1 + off > (long)plane) d1 = (long)plane - off;
                if (d1 > d0) memcpy(row + d0, x + (size_t)c * plane + (d0 + off), sizeof(float) * (size_t)(d1 - d0));
                for (int i = i0; i < i1; i++) {
                    float *dst = row + (size_t)i * W;
                    for (int j = 0; j < j0; j++) dst[j] = 0.0f;
                    for (int j = j1; j < W; j++) dst[j] = 0.0f;
                }
            }
}

/* x (C,H,W) -> col (C*kh*kw, H'*W'), row (c,a,e) holding x[c, i*s+a-pt, j*s+e-pl] or 0. */
NN_VEC_CLONES
static void im2col(float *col, const float *x, int C, int H, int W, conv2d_geom g, int Ho, int Wo)
{
    const int s = g.stride;
    if (s == 1 && Wo == W) {
        im2col_same_width(col, x, C, H, W, g, Ho);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int a = 0; a < g.kh; a++)
            for (int e = 0; e < g.kw; e++) {
                float *row = col + ((size_t)(c * g.kh + a) * g.kw + e) * Ho * Wo;
                int j0, j1;
                valid_range(e - g.pad_left, s, W, Wo, &j0, &j1);
                for (int i = 0; i < Ho; i++) {
                    float *dst = row + (size_t)i * Wo;
                    int y = i * s + a - g.pad_top;
                    if (y < 0 || y >= H || j0 == j1) {
                        for (int j = 0; j < Wo; j++) dst[j] = 0.0f;
                        continue;
                    }
                    /* j0*s + e - pl >= 0 by construction, so src never points before x */
                    const float *src = x + ((size_t)c * H + y) * W + (j0 * s + e - g.pad_left);
                    for (int j = 0; j < j0; j++) dst[j] = 0.0f;
                    if (s == 1)
                        copy_floats(dst + j0, src, j1 - j0);
                    else
                        for (int j = j0; j < j1; j++) dst[j] = src[(size_t)(j - j0) * s];
                    for (int j = j1; j < Wo; j++) dst[j] = 0.0f;
                }
            }
}

/* The adjoint of im2col: dx (C,H,W) = sum of col entries over the positions they were read
 * from.  dx is overwritten. */
NN_VEC_CLONES
static void col2im(float *dx, const float *col, int C, int H, int W, conv2d_geom g, int Ho, int Wo)
{
    const int s = g.stride;
    memset(dx, 0, sizeof(float) * C * H * W);
    for (int c = 0; c < C; c++)
        for (int a = 0; a < g.kh; a++)
            for (int e = 0; e < g.kw; e++) {
                const float *row = col + ((size_t)(c * g.kh + a) * g.kw + e) * Ho * Wo;
                int j0, j1;
                valid_range(e - g.pad_left, s, W, Wo, &j0, &j1);
                for (int i = 0; i < Ho; i++) {
                    int y = i * s + a - g.pad_top;
                    if (y < 0 || y >= H || j0 == j1) continue;
                    const float *src = row + (size_t)i * Wo;
                    float *dst = dx + ((size_t)c * H + y) * W + (j0 * s + e - g.pad_left);
                    if (s == 1) { /* the same adds in the same order, 8 lanes at a time */
                        int j = j0;
                        for (; j + 8 <= j1; j += 8)
                            nn_v8f_store(dst + (j - j0), nn_v8f_load(dst + (j - j0)) + nn_v8f_load(src + j));
                        for (; j < j1; j++) dst[j - j0] += src[j];
                    } else
                        for (int j = j0; j < j1; j++) dst[(size_t)(j - j0) * s] += src[j];
                }
            }
}

/* Batch invariance: every sample gets its own sgemm whose sizes (K, H'*W', C*kh*kw) do not
 * depend on N, and nothing is folded across samples.  Folding the batch into one GEMM would let
 * OpenBLAS pick a different blocking/kernel split for different N and change the rounding of a
 * sample's result with its batch size; per-sample calls keep sample i bit-identical alone or in
 * any batch. */
void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                    int N, int C, int H, int W, int K, conv2d_geom g, float *scratch)
{
    // in: (N,C,H,W)  w: (K,C,kh,kw)  b: (K) or NULL  out: (N,K,H',W')  scratch: (C*kh*kw, H'*W')
    check_geom(g, N, C, H, W, K);
    const int Ho = conv2d_out_h(g, H), Wo = conv2d_out_w(g, W), Po = Ho * Wo;
    const int CKK = C * g.kh * g.kw;
    const int pointwise = is_pointwise(g);
    SC_ASSERT(pointwise || scratch != NULL);
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C * H * W;
        float *y = out + (size_t)n * K * Po;
        const float *col = x;
        if (!pointwise) {
            im2col(scratch, x, C, H, W, g, Ho, Wo);
            col = scratch;
        }
        /* y (K,P') = w (K,CKK) . col (CKK,P') */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, Po, CKK, 1.0f, w, CKK, col, Po,
                    0.0f, y, Po);
        if (b) nn_add_channel_bias(y, b, 1, K, Po); /* y (K,P') += b[k] on row k */
    }
}

void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        int N, int C, int H, int W, int K, conv2d_geom g)
{
    // in: (N,C,H,W)  w: (K,C,kh,kw)  b: (K) or NULL  out: (N,K,H',W')
    check_geom(g, N, C, H, W, K);
    const int Ho = conv2d_out_h(g, H), Wo = conv2d_out_w(g, W);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double acc = b ? b[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int a = 0; a < g.kh; a++)
                            for (int e = 0; e < g.kw; e++) {
                                int y = i * g.stride + a - g.pad_top;
                                int x = j * g.stride + e - g.pad_left;
                                if (y < 0 || y >= H || x < 0 || x >= W) continue;
                                acc += (double)w[((size_t)(k * C + c) * g.kh + a) * g.kw + e] *
                                       in[(((size_t)n * C + c) * H + y) * W + x];
                            }
                    out[(((size_t)n * K + k) * Ho + i) * Wo + j] = (float)acc;
                }
}

void conv2d_backward_input(float *din, const float *dout, const float *w,
                           int N, int C, int H, int W, int K, conv2d_geom g, float *scratch)
{
    // dout: (N,K,H',W')  w: (K,C,kh,kw)  din: (N,C,H,W) overwritten  scratch: (C*kh*kw, H'*W')
    check_geom(g, N, C, H, W, K);
    const int Ho = conv2d_out_h(g, H), Wo = conv2d_out_w(g, W), Po = Ho * Wo;
    const int CKK = C * g.kh * g.kw;
    const int pointwise = is_pointwise(g);
    SC_ASSERT(pointwise || scratch != NULL);
    /* Per sample for the same batch-invariance reason as the forward. */
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (size_t)n * K * Po;
        float *dx = din + (size_t)n * C * H * W;
        float *dcol = pointwise ? dx : scratch;
        /* dcol (CKK,P') = w^T (CKK,K) . dy (K,P') */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, Po, K, 1.0f, w, CKK, dy, Po,
                    0.0f, dcol, Po);
        if (!pointwise) col2im(dx, dcol, C, H, W, g, Ho, Wo);
    }
}

void conv2d_backward_input_ref(float *din, const float *dout, const float *w,
                               int N, int C, int H, int W, int K, conv2d_geom g)
{
    // dout: (N,K,H',W')  w: (K,C,kh,kw)  din: (N,C,H,W) overwritten
    /* Gather form: din[n,c,y,x] = sum over (k,a,e) with y = i*s+a-pt, x = j*s+e-pl for some
     * output (i,j) of w[k,c,a,e] * dout[n,k,i,j]. */
    check_geom(g, N, C, H, W, K);
    const int Ho = conv2d_out_h(g, H), Wo = conv2d_out_w(g, W), s = g.stride;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double acc = 0.0;
                    for (int a = 0; a < g.kh; a++) {
                        int ty = y + g.pad_top - a;
                        if (ty < 0 || ty % s || ty / s >= Ho) continue;
                        for (int e = 0; e < g.kw; e++) {
                            int tx = x + g.pad_left - e;
                            if (tx < 0 || tx % s || tx / s >= Wo) continue;
                            for (int k = 0; k < K; k++)
                                acc += (double)w[((size_t)(k * C + c) * g.kh + a) * g.kw + e] *
                                       dout[(((size_t)n * K + k) * Ho + ty / s) * Wo + tx / s];
                        }
                    }
                    din[(((size_t)n * C + c) * H + y) * W + x] = (float)acc;
                }
}
