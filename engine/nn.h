/* Neural-network layers of the engine (spec score-sde.md §7.2-7.5): convolution, NIN and Dense,
 * GroupNorm, SiLU, the attention core, FIR and naive resampling, time embeddings, and the few
 * elementwise helpers a network needs.  Networks themselves are assembled elsewhere.
 *
 * Conventions for every function below:
 *  - Tensors are float32, NCHW, row-major (outer to inner).  P = H*W where an op does not care
 *    about the spatial layout (NIN, GroupNorm, attention).  All buffers are caller-owned; no
 *    layer allocates, keeps state, or touches globals, so every function is reentrant.
 *  - Argument order: outputs, inputs (then what backward needs from forward), weights, sizes,
 *    scratch.  Scratch sizes (in floats) come from the matching *_scratch_floats() function;
 *    scratch contents are garbage on entry and on return.
 *  - Backward functions give the gradient of L with respect to the op's inputs, for a loss L
 *    whose gradient with respect to the op's output is dout.  They OVERWRITE their outputs
 *    (never accumulate); add into a running gradient with nn_add.  Ops with weights end in
 *    _backward_input: weight gradients are never computed (the engine only needs
 *    vector-Jacobian products with respect to the network input).
 *  - Buffers must not overlap unless a function says "may alias".
 *  - Precision: fast paths accumulate in float (OpenBLAS sgemm/sgemv, float loops); every _ref
 *    accumulates in double and is the plain-loop definition the fast path is tested against.
 *    GroupNorm statistics and softmax denominators are accumulated in double.
 *  - A sample's result never depends on its batch-mates: batched ops loop over samples and
 *    issue one BLAS call per sample with sizes that do not involve N, so sample i gives the
 *    same bits alone or in any batch (for a fixed OpenBLAS thread count).
 *  - Sizes are checked with SC_ASSERT (programmer errors): user input must be validated before
 *    it reaches a layer.
 */
#ifndef SCORED_NN_H
#define SCORED_NN_H

#include <stddef.h>

/* ---- 2-D convolution (nn_conv.c) ---------------------------------------------------------
 * PyTorch Conv2d semantics (cross-correlation): weight w (K,C,kh,kw), bias b (K) or NULL.
 *   out[n,k,i,j] = b[k] + sum_{c,a,e} w[k,c,a,e] * in[n,c, i*stride+a-pad_top, j*stride+e-pad_left]
 * with in = 0 outside [0,H)x[0,W).  pad_bottom/pad_right only enlarge the output:
 *   H' = (H + pad_top + pad_bottom - kh)/stride + 1,  W' likewise (floor division). */
typedef struct conv2d_geom {
    int kh, kw;     /* kernel height, width                   */
    int stride;     /* same on both axes, >= 1                */
    int pad_top, pad_left, pad_bottom, pad_right; /* zero padding, >= 0 */
} conv2d_geom;

/* ddpm_conv3x3: kernel 3, stride 1, padding 1. */
#define CONV2D_3X3 ((conv2d_geom){3, 3, 1, 1, 1, 1, 1})
/* ddpm_conv1x1 / Combine: kernel 1, stride 1, no padding (goes straight to sgemm). */
#define CONV2D_1X1 ((conv2d_geom){1, 1, 1, 0, 0, 0, 0})
/* §7.3 Downsample without FIR: zero-pad right and bottom by 1, then 3x3 stride 2 pad 0. */
#define CONV2D_3X3_DOWN_PAD_BR ((conv2d_geom){3, 3, 2, 0, 0, 1, 1})
/* §7.5 conv_downsample_2d: after fir_blur_pad2, a 3x3 stride-2 "valid" convolution. */
#define CONV2D_3X3_DOWN_VALID ((conv2d_geom){3, 3, 2, 0, 0, 0, 0})

int conv2d_out_h(conv2d_geom g, int H);
int conv2d_out_w(conv2d_geom g, int W);

/* Scratch for one call of conv2d_forward or conv2d_backward_input on any batch size: one
 * sample's im2col matrix, (C*kh*kw) x (H'*W') floats; 0 for 1x1 stride-1 unpadded convs. */
size_t conv2d_scratch_floats(int C, int H, int W, conv2d_geom g);

/* in (N,C,H,W)  w (K,C,kh,kw)  b (K) or NULL  ->  out (N,K,H',W').
 * im2col + one cblas_sgemm per sample (1x1 stride-1 unpadded: sgemm on the input directly). */
void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                    int N, int C, int H, int W, int K, conv2d_geom g, float *scratch);
void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        int N, int C, int H, int W, int K, conv2d_geom g);

/* dout (N,K,H',W')  w (K,C,kh,kw)  ->  din (N,C,H,W), overwritten.
 * Per sample: dcol = w^T dout by cblas_sgemm, then col2im (1x1 stride-1 unpadded: sgemm only). */
void conv2d_backward_input(float *din, const float *dout, const float *w,
                           int N, int C, int H, int W, int K, conv2d_geom g, float *scratch);
void conv2d_backward_input_ref(float *din, const float *dout, const float *w,
                               int N, int C, int H, int W, int K, conv2d_geom g);

/* ---- 3x3 'same' convs by Winograd F(2x2,3x3) (nn_winograd.c) -------------------------------
 * For CONV2D_3X3 only (conv2d_winograd_applies).  The kernels are transformed once, at load:
 * U (16, K, C) = conv2d_winograd_weights(w (K, C, 3, 3)); both directions use the same U.
 * Every sample's tiles are columns of shared products computed in a fixed per-column order, so
 * results are bit-identical alone or in any batch (see the file's comment).  Scratch: per call,
 * independent of N.  Same semantics as conv2d_forward / conv2d_backward_input with CONV2D_3X3,
 * equal to them up to rounding (the transforms add and subtract before multiplying). */
int conv2d_winograd_applies(conv2d_geom g);
size_t conv2d_winograd_weight_floats(int C, int K);
void conv2d_winograd_weights(float *U, const float *w, int K, int C);
size_t conv2d_winograd_scratch_floats(int C, int K, int H, int W);
/* in (N,C,H,W), b (K) or NULL -> out (N,K,H,W) */
void conv2d_winograd_forward(float *out, const float *in, const float *U, const float *b,
                             int N, int C, int H, int W, int K, float *scratch);
/* dout (N,K,H,W) -> din (N,C,H,W), overwritten */
void conv2d_winograd_backward_input(float *din, const float *dout, const float *U,
                                    int N, int C, int H, int W, int K, float *scratch);
/* The matrix-product kernel, chosen at run time (AUTO: the widest the CPU has); the _with
 * forms pin one, for tests and benchmarks.  AVX2 and AVX-512 give the same bits (fused
 * multiply-adds in the same order); PLAIN rounds each product (no FMA). */
typedef enum { WINOGRAD_AUTO, WINOGRAD_PLAIN, WINOGRAD_AVX2, WINOGRAD_AVX512 } winograd_kernel;
int winograd_kernel_available(winograd_kernel kind);
void conv2d_winograd_forward_with(winograd_kernel kind, float *out, const float *in, const float *U,
                                  const float *b, int N, int C, int H, int W, int K, float *scratch);
void conv2d_winograd_backward_input_with(winograd_kernel kind, float *din, const float *dout,
                                         const float *U, int N, int C, int H, int W, int K,
                                         float *scratch);

/* ---- NIN and Dense (nn_misc.c) ------------------------------------------------------------
 * NIN (layers.NIN): per-position linear map, w (C,O) -- transposed relative to a 1x1 conv --,
 * b (O) or NULL:  out[n,o,p] = b[o] + sum_c in[n,c,p] * w[c,o].  One sgemm per sample. */
void nin_forward(float *out, const float *in, const float *w, const float *b,
                 int N, int C, int O, int P);
void nin_forward_ref(float *out, const float *in, const float *w, const float *b,
                     int N, int C, int O, int P);
/* dout (N,O,P) -> din (N,C,P), overwritten. */
void nin_backward_input(float *din, const float *dout, const float *w, int N, int C, int O, int P);
void nin_backward_input_ref(float *din, const float *dout, const float *w,
                            int N, int C, int O, int P);

/* Dense (torch Linear): w (Cout,Cin), b (Cout) or NULL:
 *   out[n,o] = b[o] + sum_i w[o,i] * in[n,i]        in (N,Cin) -> out (N,Cout).
 * One sgemv per sample.  (Not "I"/"O": <complex.h>, pulled in by cblas.h, defines I.) */
void dense_forward(float *out, const float *in, const float *w, const float *b,
                   int N, int Cin, int Cout);
void dense_forward_ref(float *out, const float *in, const float *w, const float *b,
                       int N, int Cin, int Cout);
/* dout (N,Cout) -> din (N,Cin), overwritten. */
void dense_backward_input(float *din, const float *dout, const float *w, int N, int Cin, int Cout);
void dense_backward_input_ref(float *din, const float *dout, const float *w,
                              int N, int Cin, int Cout);

/* ---- SiLU (nn_misc.c): out = x * sigmoid(x), 8 lanes at a time with a vector exp (relative
 * difference from the plain expf references: 1.6e-7 forward, 5e-7 backward; see nn_vec.h) --- */
void silu_forward(float *out, const float *in, size_t n);                    /* out may alias in */
/* din = dout * s * (1 + x (1 - s)), s = sigmoid(x); in is the forward input; din may alias dout. */
void silu_backward(float *din, const float *dout, const float *in, size_t n);
void silu_forward_ref(float *out, const float *in, size_t n);
void silu_backward_ref(float *din, const float *dout, const float *in, size_t n);

/* ---- GroupNorm (nn_norm.c); vector loops, and groupnorm_forward_ref the plain one ----------
 * G groups of C/G consecutive channels (C % G == 0).  Per (sample, group): mean and biased
 * variance over (C/G)*P values (two passes, double), rstd = 1/sqrt(var + eps), then
 *   out[n,c,p] = (in[n,c,p] - mean) * rstd * gamma[c] + beta[c]
 * gamma NULL means 1, beta NULL means 0.  mean, rstd (N,G) are written for the backward pass
 * (either may be NULL when no backward follows).  out may alias in (but backward needs in). */
void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int N, int C, int P, int G, float eps);
void groupnorm_forward_ref(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                           const float *beta, int N, int C, int P, int G, float eps);
/* groupnorm_forward that also writes silu = SiLU(out) (N,C,P) in the same pass: a GroupNorm
 * followed by SiLU reads its input once.  silu NULL: plain groupnorm_forward. */
void groupnorm_silu_forward(float *out, float *silu, float *mean, float *rstd, const float *in,
                            const float *gamma, const float *beta, int N, int C, int P, int G, float eps);
/* dout (N,C,P), in and mean/rstd (N,G) from the forward -> din (N,C,P), overwritten:
 *   din = rstd * (g - mean_group(g) - xhat * mean_group(g * xhat)),  g = dout*gamma. */
void groupnorm_backward_input(float *din, const float *dout, const float *in, const float *mean,
                              const float *rstd, const float *gamma, int N, int C, int P, int G);
/* The plain loop (double sums) the vector version above is tested against. */
void groupnorm_backward_input_ref(float *din, const float *dout, const float *in, const float *mean,
                              const float *rstd, const float *gamma, int N, int C, int P, int G);

/* ---- Attention core (nn_attn.c), single head as AttnBlockpp ----------------------------------
 * q, k, v (N,C,P) (the NIN_0/1/2 outputs) ->
 *   weights[n,p,p'] = softmax_p'( sum_c q[n,c,p] k[n,c,p'] / sqrt(C) )  (N,P,P) for backward
 *   out[n,c,p]      = sum_p' weights[n,p,p'] v[n,c,p']                  (N,C,P)
 * The softmax subtracts the row maximum before exponentiating.  Three sgemms per sample. */
void attn_forward(float *out, float *weights, const float *q, const float *k, const float *v,
                  int N, int C, int P);
void attn_forward_ref(float *out, float *weights, const float *q, const float *k, const float *v,
                      int N, int C, int P);
size_t attn_backward_scratch_floats(int P);   /* P*P: one sample's d(scores) */
/* dout (N,C,P), weights (N,P,P) from the forward, q, k, v -> dq, dk, dv (N,C,P), overwritten. */
void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *weights,
                   const float *q, const float *k, const float *v, int N, int C, int P,
                   float *scratch);
void attn_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *weights,
                       const float *q, const float *k, const float *v, int N, int C, int P);

/* ---- FIR resampling with k = [1,3,3,1] (nn_resample.c, §7.5) ------------------------------
 * upfirdn2d per channel plane, the same on both axes: insert up-1 zeros after every sample,
 * zero-pad pad0 before and pad1 after, filter with the per-axis taps (up/8)*[1,3,3,1] (the 2-D
 * kernel outer(k,k)/64 times the gain up^2 that upsample_2d uses; up = 1 for the down/blur
 * paths), keep every down-th output.  Output length per axis (n = H or W):
 *   upfirdn2d_out_size(n) = (n*up + pad0 + pad1 - 4)/down + 1   (must be >= 1).
 * Borders are zero-padded, not renormalised (Q13).  The fast path is separable (a pass along W
 * into scratch, then one along H); the _ref applies the 4x4 kernel directly in double. */
int upfirdn2d_out_size(int n, int up, int down, int pad0, int pad1);
size_t upfirdn2d_scratch_floats(int H, int W, int up, int down, int pad0, int pad1);
/* in (N,C,H,W) -> out (N,C,H',W'). */
void upfirdn2d_forward(float *out, const float *in, int N, int C, int H, int W,
                       int up, int down, int pad0, int pad1, float *scratch);
void upfirdn2d_forward_ref(float *out, const float *in, int N, int C, int H, int W,
                           int up, int down, int pad0, int pad1);
/* The exact adjoint: dout (N,C,H',W') -> din (N,C,H,W), overwritten. */
void upfirdn2d_backward(float *din, const float *dout, int N, int C, int H, int W,
                        int up, int down, int pad0, int pad1, float *scratch);
void upfirdn2d_backward_ref(float *din, const float *dout, int N, int C, int H, int W,
                            int up, int down, int pad0, int pad1);

/* The three uses in the networks; sizes are the input's.  Scratch: fir_scratch_floats(H, W)
 * suffices for any of them, forward or backward.
 *   fir_upsample2x  (upsample_2d):       up 2, pads (2,1)        (N,C,H,W) -> (N,C,2H,2W)
 *                   per axis y[2i] = x[i-1]/4 + 3x[i]/4, y[2i+1] = 3x[i]/4 + x[i+1]/4
 *   fir_downsample2x (downsample_2d):    down 2, pads (1,1)      -> (N,C,H/2,W/2)
 *                   per axis y[i] = (x[2i-1] + 3x[2i] + 3x[2i+1] + x[2i+2])/8
 *   fir_blur_pad2   (conv_downsample_2d's blur): pads (2,2)      -> (N,C,H+1,W+1)
 *                   per axis b[m] = (x[m-2] + 3x[m-1] + 3x[m] + x[m+1])/8, then
 *                   conv2d_forward with CONV2D_3X3_DOWN_VALID completes conv_downsample_2d. */
size_t fir_scratch_floats(int H, int W);
void fir_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W,
                            float *scratch);
void fir_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W,
                             float *scratch);
void fir_downsample2x_forward(float *out, const float *in, int N, int C, int H, int W,
                              float *scratch);
void fir_downsample2x_backward(float *din, const float *dout, int N, int C, int H, int W,
                               float *scratch);
void fir_blur_pad2_forward(float *out, const float *in, int N, int C, int H, int W, float *scratch);
void fir_blur_pad2_backward(float *din, const float *dout, int N, int C, int H, int W,
                            float *scratch);

/* Naive resampling (fir=False); plain loops, their own reference.  Sizes are the input's.
 * nearest x2: (N,C,H,W) -> (N,C,2H,2W), each pixel repeated 2x2.
 * avgpool 2x2 stride 2 (F.avg_pool2d(x, 2, 2)): (N,C,H,W) -> (N,C,H/2,W/2); an odd last row or
 * column is dropped (its gradient is 0). */
void nearest_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W);
void nearest_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W);
void avgpool2x2_forward(float *out, const float *in, int N, int C, int H, int W);
void avgpool2x2_backward(float *din, const float *dout, int N, int C, int H, int W);

/* ---- Time / noise embeddings (nn_misc.c, §7.4), forward only ------------------------------
 * The sin/cos arguments are rounded to float32 where PyTorch rounds them (so a label embeds as
 * in the reference code); sin and cos are evaluated in double. */
/* GaussianFourierProjection: log_sigma (N) (u = ln sigma), w (nf) -> out (N, 2*nf):
 *   out[n,j] = sin(2 pi u_n w_j),  out[n,nf+j] = cos(2 pi u_n w_j)   (sin block first). */
void embed_gaussian_fourier(float *out, const float *log_sigma, const float *w, int N, int nf);
/* get_timestep_embedding (max_positions 10000): t (N) -> out (N, dim), dim >= 4; half = dim/2,
 *   f_j = exp(-j ln(10000)/(half-1)),  out[n,j] = sin(t_n f_j),  out[n,half+j] = cos(t_n f_j),
 *   and out[n,dim-1] = 0 when dim is odd. */
void embed_positional(float *out, const float *t, int N, int dim);

/* ---- Elementwise helpers (nn_misc.c) ------------------------------------------------------ */
void nn_add(float *out, const float *a, const float *b, size_t n);            /* out = a + b     */
void nn_add_scaled(float *out, const float *a, const float *b, float s, size_t n); /* (a + b) * s */
void nn_scale(float *out, const float *in, float s, size_t n);                /* out = s * in    */
/* (out may alias any input in the three above.) */
/* x (N,C,P) += bias (N,C) broadcast over P: the per-sample time-embedding bias of a resblock. */
void nn_add_channel_bias(float *x, const float *bias, int N, int C, int P);
/* Channel concatenation [a, b]: a (N,Ca,P), b (N,Cb,P) -> out (N,Ca+Cb,P). */
void nn_concat_channels(float *out, const float *a, const float *b, int N, int Ca, int Cb, int P);
/* Its backward (the split): in (N,Ca+Cb,P) -> a (N,Ca,P), b (N,Cb,P), overwritten; either
 * output may be NULL to skip it. */
void nn_split_channels(float *a, float *b, const float *in, int N, int Ca, int Cb, int P);

#endif
