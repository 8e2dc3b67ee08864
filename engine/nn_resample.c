/* Resampling (spec §7.5): upfirdn2d with the separable FIR kernel [1,3,3,1] and its exact
 * adjoint, the three FIR helpers the networks use, and the naive nearest-x2 / 2x2-mean pair.
 * No transposed-conv resampling (upsample_conv_2d is unused, Q13).  Shapes are in nn.h. */
#include <string.h>

#include "err.h"
#include "nn.h"

static const float fir_k[4] = {1.0f, 3.0f, 3.0f, 1.0f};

int upfirdn2d_out_size(int n, int up, int down, int pad0, int pad1)
{
    SC_ASSERT(n >= 1 && up >= 1 && down >= 1 && pad0 >= 0 && pad1 >= 0);
    const int span = n * up + pad0 + pad1 - 4;   /* last valid filter start */
    SC_ASSERT(span >= 0);
    return span / down + 1;
}

size_t upfirdn2d_scratch_floats(int H, int W, int up, int down, int pad0, int pad1)
{
    return (size_t)H * upfirdn2d_out_size(W, up, down, pad0, pad1);
}

/* Per-axis taps: (up/8) k; the kernel is symmetric, so convolution = cross-correlation. */
static void taps(float f[4], int up)
{
    for (int t = 0; t < 4; t++) f[t] = fir_k[t] * (float)up / 8.0f;
}

/* Filter tap t of output j reads upsampled position m = j*down + t - pad0, which holds input
 * sample m/up when m >= 0, m % up == 0 and m/up < n; otherwise it is an inserted or padding
 * zero.  Returns that input index, or -1. */
static inline int src_index(int j, int t, int n, int up, int down, int pad0)
{
    const int m = j * down + t - pad0;
    if (m < 0 || m % up) return -1;
    return m / up < n ? m / up : -1;
}

/* Along W: x (H,W) -> y (H,Wo). */
static void pass_w(float *y, const float *x, int H, int W, int Wo, const float f[4], int up,
                   int down, int pad0)
{
    for (int r = 0; r < H; r++) {
        const float *xr = x + (size_t)r * W;
        float *yr = y + (size_t)r * Wo;
        for (int j = 0; j < Wo; j++) {
            float acc = 0.0f;
            for (int t = 0; t < 4; t++) {
                int s = src_index(j, t, W, up, down, pad0);
                if (s >= 0) acc += f[t] * xr[s];
            }
            yr[j] = acc;
        }
    }
}

/* Adjoint of pass_w: dy (H,Wo) -> dx (H,W), overwritten. */
static void pass_w_adj(float *dx, const float *dy, int H, int W, int Wo, const float f[4], int up,
                       int down, int pad0)
{
    memset(dx, 0, sizeof(float) * H * W);
    for (int r = 0; r < H; r++) {
        float *xr = dx + (size_t)r * W;
        const float *yr = dy + (size_t)r * Wo;
        for (int j = 0; j < Wo; j++)
            for (int t = 0; t < 4; t++) {
                int s = src_index(j, t, W, up, down, pad0);
                if (s >= 0) xr[s] += f[t] * yr[j];
            }
    }
}

/* Along H, a whole row at a time: x (H,Wo) -> y (Ho,Wo). */
static void pass_h(float *y, const float *x, int H, int Ho, int Wo, const float f[4], int up,
                   int down, int pad0)
{
    for (int i = 0; i < Ho; i++) {
        float *yr = y + (size_t)i * Wo;
        memset(yr, 0, sizeof(float) * Wo);
        for (int t = 0; t < 4; t++) {
            int s = src_index(i, t, H, up, down, pad0);
            if (s < 0) continue;
            const float *xr = x + (size_t)s * Wo;
            for (int j = 0; j < Wo; j++) yr[j] += f[t] * xr[j];
        }
    }
}

/* Adjoint of pass_h: dy (Ho,Wo) -> dx (H,Wo), overwritten. */
static void pass_h_adj(float *dx, const float *dy, int H, int Ho, int Wo, const float f[4], int up,
                       int down, int pad0)
{
    memset(dx, 0, sizeof(float) * H * Wo);
    for (int i = 0; i < Ho; i++) {
        const float *yr = dy + (size_t)i * Wo;
        for (int t = 0; t < 4; t++) {
            int s = src_index(i, t, H, up, down, pad0);
            if (s < 0) continue;
            float *xr = dx + (size_t)s * Wo;
            for (int j = 0; j < Wo; j++) xr[j] += f[t] * yr[j];
        }
    }
}

void upfirdn2d_forward(float *out, const float *in, int N, int C, int H, int W,
                       int up, int down, int pad0, int pad1, float *scratch)
{
    // in: (N,C,H,W)  out: (N,C,H',W')  scratch: (H,W')
    SC_ASSERT(N >= 0 && C >= 1);
    const int Ho = upfirdn2d_out_size(H, up, down, pad0, pad1);
    const int Wo = upfirdn2d_out_size(W, up, down, pad0, pad1);
    float f[4];
    taps(f, up);
    for (size_t pl = 0; pl < (size_t)N * C; pl++) {
        pass_w(scratch, in + pl * H * W, H, W, Wo, f, up, down, pad0);
        pass_h(out + pl * Ho * Wo, scratch, H, Ho, Wo, f, up, down, pad0);
    }
}

void upfirdn2d_backward(float *din, const float *dout, int N, int C, int H, int W,
                        int up, int down, int pad0, int pad1, float *scratch)
{
    // dout: (N,C,H',W')  din: (N,C,H,W) overwritten  scratch: (H,W')
    SC_ASSERT(N >= 0 && C >= 1);
    const int Ho = upfirdn2d_out_size(H, up, down, pad0, pad1);
    const int Wo = upfirdn2d_out_size(W, up, down, pad0, pad1);
    float f[4];
    taps(f, up);
    for (size_t pl = 0; pl < (size_t)N * C; pl++) {
        pass_h_adj(scratch, dout + pl * Ho * Wo, H, Ho, Wo, f, up, down, pad0);
        pass_w_adj(din + pl * H * W, scratch, H, W, Wo, f, up, down, pad0);
    }
}

void upfirdn2d_forward_ref(float *out, const float *in, int N, int C, int H, int W,
                           int up, int down, int pad0, int pad1)
{
    // in: (N,C,H,W)  out: (N,C,H',W')
    /* out[i,j] = sum_{a,b} K[a,b] u[i*down+a, j*down+b], K = outer(k,k) up^2/64, u the
     * zero-inserted, zero-padded input. */
    const int Ho = upfirdn2d_out_size(H, up, down, pad0, pad1);
    const int Wo = upfirdn2d_out_size(W, up, down, pad0, pad1);
    const double g = (double)up * up / 64.0;
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                double acc = 0.0;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) {
                        int my = i * down + a - pad0, mx = j * down + b - pad0;
                        if (my < 0 || mx < 0 || my % up || mx % up) continue;
                        if (my / up >= H || mx / up >= W) continue;
                        acc += g * fir_k[a] * fir_k[b] * in[(pl * H + my / up) * W + mx / up];
                    }
                out[(pl * Ho + i) * Wo + j] = (float)acc;
            }
}

void upfirdn2d_backward_ref(float *din, const float *dout, int N, int C, int H, int W,
                            int up, int down, int pad0, int pad1)
{
    // dout: (N,C,H',W')  din: (N,C,H,W) overwritten
    /* Gather form of the adjoint: input (y,x) sits at upsampled (y*up, x*up) and is read by tap
     * (a,b) of output (i,j) when i*down + a - pad0 = y*up and j*down + b - pad0 = x*up. */
    const int Ho = upfirdn2d_out_size(H, up, down, pad0, pad1);
    const int Wo = upfirdn2d_out_size(W, up, down, pad0, pad1);
    const double g = (double)up * up / 64.0;
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double acc = 0.0;
                for (int a = 0; a < 4; a++) {
                    int ty = y * up + pad0 - a;
                    if (ty < 0 || ty % down || ty / down >= Ho) continue;
                    for (int b = 0; b < 4; b++) {
                        int tx = x * up + pad0 - b;
                        if (tx < 0 || tx % down || tx / down >= Wo) continue;
                        acc +=
                            g * fir_k[a] * fir_k[b] * dout[(pl * Ho + ty / down) * Wo + tx / down];
                    }
                }
                din[(pl * H + y) * W + x] = (float)acc;
            }
}

/* ---- The three network uses ---------------------------------------------------------------- */

size_t fir_scratch_floats(int H, int W)
{
    /* the W-pass output: H x 2W (up), H x (W+1) (blur), H x W/2 (down) */
    return (size_t)H * (2 * W > W + 1 ? 2 * W : W + 1);
}

void fir_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W, float *scratch)
{
    // in: (N,C,H,W)  out: (N,C,2H,2W)
    upfirdn2d_forward(out, in, N, C, H, W, 2, 1, 2, 1, scratch);
}

void fir_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W,
                             float *scratch)
{
    // dout: (N,C,2H,2W)  din: (N,C,H,W) overwritten
    upfirdn2d_backward(din, dout, N, C, H, W, 2, 1, 2, 1, scratch);
}

void fir_downsample2x_forward(float *out, const float *in, int N, int C, int H, int W,
                              float *scratch)
{
    // in: (N,C,H,W)  out: (N,C,H/2,W/2)
    upfirdn2d_forward(out, in, N, C, H, W, 1, 2, 1, 1, scratch);
}

void fir_downsample2x_backward(float *din, const float *dout, int N, int C, int H, int W,
                               float *scratch)
{
    // dout: (N,C,H/2,W/2)  din: (N,C,H,W) overwritten
    upfirdn2d_backward(din, dout, N, C, H, W, 1, 2, 1, 1, scratch);
}

void fir_blur_pad2_forward(float *out, const float *in, int N, int C, int H, int W, float *scratch)
{
    // in: (N,C,H,W)  out: (N,C,H+1,W+1)
    upfirdn2d_forward(out, in, N, C, H, W, 1, 1, 2, 2, scratch);
}

void fir_blur_pad2_backward(float *din, const float *dout, int N, int C, int H, int W,
                            float *scratch)
{
    // dout: (N,C,H+1,W+1)  din: (N,C,H,W) overwritten
    upfirdn2d_backward(din, dout, N, C, H, W, 1, 1, 2, 2, scratch);
}

/* ---- Naive (fir=False) ------------------------------------------------------------------- */

void nearest_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W)
{
    // in: (N,C,H,W)  out: (N,C,2H,2W)
    const int Wo = 2 * W;
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int y = 0; y < H; y++) {
            const float *xr = in + (pl * H + y) * W;
            float *r0 = out + (pl * 2 * H + 2 * y) * Wo, *r1 = r0 + Wo;
            for (int x = 0; x < W; x++) r0[2 * x] = r0[2 * x + 1] = xr[x];
            memcpy(r1, r0, sizeof(float) * Wo);
        }
}

void nearest_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W)
{
    // dout: (N,C,2H,2W)  din: (N,C,H,W) overwritten
    const int Wo = 2 * W;
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int y = 0; y < H; y++) {
            const float *r0 = dout + (pl * 2 * H + 2 * y) * Wo, *r1 = r0 + Wo;
            float *xr = din + (pl * H + y) * W;
            for (int x = 0; x < W; x++)
                xr[x] = r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1];
        }
}

void avgpool2x2_forward(float *out, const float *in, int N, int C, int H, int W)
{
    // in: (N,C,H,W)  out: (N,C,H/2,W/2)
    SC_ASSERT(H >= 2 && W >= 2);
    const int Ho = H / 2, Wo = W / 2;
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int i = 0; i < Ho; i++) {
            const float *r0 = in + (pl * H + 2 * i) * W, *r1 = r0 + W;
            float *yr = out + (pl * Ho + i) * Wo;
            /* summed in F.avg_pool2d's order, then divided by 4 */
            for (int j = 0; j < Wo; j++)
                yr[j] = (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) * 0.25f;
        }
}

void avgpool2x2_backward(float *din, const float *dout, int N, int C, int H, int W)
{
    // dout: (N,C,H/2,W/2)  din: (N,C,H,W) overwritten (an odd last row/column gets 0)
    SC_ASSERT(H >= 2 && W >= 2);
    const int Ho = H / 2, Wo = W / 2;
    memset(din, 0, sizeof(float) * N * C * H * W);
    for (size_t pl = 0; pl < (size_t)N * C; pl++)
        for (int i = 0; i < Ho; i++) {
            const float *yr = dout + (pl * Ho + i) * Wo;
            float *r0 = din + (pl * H + 2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < Wo; j++) {
                const float g = yr[j] * 0.25f;
                r0[2 * j] = r0[2 * j + 1] = r1[2 * j] = r1[2 * j + 1] = g;
            }
        }
}
