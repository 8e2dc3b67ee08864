/* The network layers (engine/nn.h): every optimised op against its plain-loop _ref on awkward
 * sizes, every backward against central differences of L = sum(dout * out), closed forms from
 * spec §7.2-7.5 and §12, and batch invariance of the per-sample GEMMs. */
#include "testutil.h"

#include <cblas.h>

#include "nn.h"
#include "rng.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static float *randn(size_t n, uint64_t seed, float scale)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    rng_stream r;
    rng_init(&r, seed, 0);
    rng_normal(&r, x, n);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static float *zalloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* Norm-wise relative error max|a-b| / max|b| <= tol. */
static void expect_close(const float *a, const float *b, size_t n, double tol, const char *what)
{
    double err = 0, ref = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= err)) { /* also catches NaN */
            err = d;
            worst = i;
        }
        if (fabs(b[i]) > ref) ref = fabs(b[i]);
    }
    if (!(err <= tol * (ref > 0 ? ref : 1e-30)))
        fail_msg("%s: max |diff| %.3g at %zu (got %.9g, want %.9g), max |ref| %.3g, tol %.1g", what,
                 err, worst, a[worst], b[worst], ref, tol);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Central differences of L(x) = sum(dout * f(x)) at every coordinate of x, against the analytic
 * din: max |fd - din| <= 1e-2 max |din|.  Forwards run in float with h = 1e-2 (the step actually
 * taken, after rounding x +- h to float, is what divides). */
typedef void (*fwd_cb)(float *out, const float *in, void *ctx);

static void grad_check(fwd_cb f, void *ctx, const float *x, size_t nx, size_t ny, const float *dout,
                       const float *din, const char *what)
{
    const float h = 1e-2f;
    float *xp = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    memcpy(xp, x, sizeof(float) * nx);
    double maxerr = 0, maxg = 0;
    size_t worst = 0;
    double worst_fd = 0;
    for (size_t i = 0; i < nx; i++) {
        xp[i] = x[i] + h;
        double xplus = xp[i];
        f(y, xp, ctx);
        double lp = dot(dout, y, ny);
        xp[i] = x[i] - h;
        double xminus = xp[i];
        f(y, xp, ctx);
        double lm = dot(dout, y, ny);
        xp[i] = x[i];
        double fd = (lp - lm) / (xplus - xminus);
        double e = fabs(fd - din[i]);
        if (!(e <= maxerr)) {
            maxerr = e;
            worst = i;
            worst_fd = fd;
        }
        if (fabs(din[i]) > maxg) maxg = fabs(din[i]);
    }
    if (!(maxg > 0) || !(maxerr <= 1e-2 * maxg))
        fail_msg("%s: gradient check: max |fd - analytic| %.3g at %zu (fd %.6g, analytic %.6g), "
                 "max |grad| %.3g", what, maxerr, worst, worst_fd, din[worst], maxg);
    free(xp);
    free(y);
}

/* ---- conv2d ------------------------------------------------------------------------------- */

typedef struct conv_case {
    int N, C, H, W, K;
    conv2d_geom g;
    int bias;
} conv_case;

/* Awkward sizes: odd H, W and C, stride 2 and 3, asymmetric pads, 1x1, 3x3, kernel 4, kh != kw,
 * pads wider than the kernel reaches. */
static const conv_case conv_cases[] = {
    {2, 3, 7, 9, 5, CONV2D_3X3, 1},
    {3, 5, 5, 3, 4, CONV2D_1X1, 0},                      /* straight-to-sgemm path       */
    {2, 5, 5, 3, 4, CONV2D_1X1, 1},
    {2, 3, 7, 5, 2, {1, 1, 2, 0, 0, 0, 0}, 1},           /* 1x1 stride 2: im2col path     */
    {2, 3, 5, 5, 3, {1, 1, 1, 1, 0, 0, 2}, 1},           /* 1x1 padded: im2col path       */
    {2, 3, 8, 7, 3, CONV2D_3X3_DOWN_PAD_BR, 1},         /* §7.3 asymmetric stride-2      */
    {1, 3, 9, 9, 5, CONV2D_3X3_DOWN_VALID, 1},          /* §7.5 after the blur           */
    {2, 3, 9, 6, 3, {4, 4, 2, 1, 2, 2, 1}, 1},          /* kernel 4, asymmetric pads     */
    {2, 5, 7, 11, 3, {4, 2, 3, 0, 1, 3, 2}, 0},         /* 4x2, stride 3                 */
    {1, 2, 4, 5, 3, {3, 3, 1, 3, 0, 0, 3}, 1},          /* padding wider than the kernel */
    {2, 7, 6, 6, 1, {5, 5, 1, 2, 2, 2, 2}, 1},
    /* 'same'-width stride 1 (the shifted-plane im2col) where some kernel rows see only
     * padding: taller than the input plus its padding on one side */
    {2, 3, 1, 4, 2, {5, 5, 1, 2, 2, 2, 2}, 1},
    {2, 2, 1, 3, 2, {3, 3, 1, 2, 1, 0, 1}, 1},
    {1, 2, 2, 5, 3, {3, 3, 1, 0, 1, 2, 1}, 0},
};
#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])

static void test_conv2d_matches_ref(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        const conv_case *c = &conv_cases[t];
        const int Ho = conv2d_out_h(c->g, c->H), Wo = conv2d_out_w(c->g, c->W);
        const size_t nin = (size_t)c->N * c->C * c->H * c->W, nout = (size_t)c->N * c->K * Ho * Wo;
        const size_t nw = (size_t)c->K * c->C * c->g.kh * c->g.kw;
        float *x = randn(nin, 10 + t, 1.0f), *w = randn(nw, 20 + t, 0.5f),
              *b = randn(c->K, 30 + t, 1);
        float *dy = randn(nout, 40 + t, 1.0f);
        float *y = zalloc(nout), *yr = zalloc(nout), *dx = zalloc(nin), *dxr = zalloc(nin);
        float *scr = zalloc(conv2d_scratch_floats(c->C, c->H, c->W, c->g));
        char what[64];
        conv2d_forward(y, x, w, c->bias ? b : NULL, c->N, c->C, c->H, c->W, c->K, c->g, scr);
        conv2d_forward_ref(yr, x, w, c->bias ? b : NULL, c->N, c->C, c->H, c->W, c->K, c->g);
        snprintf(what, sizeof what, "conv2d_forward case %zu", t);
        expect_close(y, yr, nout, 1e-5, what);
        conv2d_backward_input(dx, dy, w, c->N, c->C, c->H, c->W, c->K, c->g, scr);
        conv2d_backward_input_ref(dxr, dy, w, c->N, c->C, c->H, c->W, c->K, c->g);
        snprintf(what, sizeof what, "conv2d_backward_input case %zu", t);
        expect_close(dx, dxr, nin, 1e-5, what);
        /* the adjoint identity <conv(x), dy> = <x, conv^T(dy)>, bias off */
        conv2d_forward_ref(yr, x, w, NULL, c->N, c->C, c->H, c->W, c->K, c->g);
        double lhs = dot(yr, dy, nout), rhs = dot(x, dxr, nin);
        if (!(fabs(lhs - rhs) <= 1e-5 * (fabs(lhs) + 1)))
            fail_msg("%s: adjoint %g vs %g", what, lhs, rhs);
        free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr), free(scr);
    }
}

/* The geometry helpers: output sizes of the network's convs (spec §7.3, §7.5). */
static void test_conv2d_geometry(void **state)
{
    (void)state;
    assert_int_equal(conv2d_out_h(CONV2D_3X3, 32), 32);
    assert_int_equal(conv2d_out_w(CONV2D_1X1, 17), 17);
    assert_int_equal(conv2d_out_h(CONV2D_3X3_DOWN_PAD_BR, 32), 16);
    assert_int_equal(conv2d_out_w(CONV2D_3X3_DOWN_PAD_BR, 16), 8);
    assert_int_equal(conv2d_out_h(CONV2D_3X3_DOWN_VALID, 32 + 1), 16);   /* after fir_blur_pad2 */
    assert_int_equal(conv2d_out_h((conv2d_geom){4, 4, 2, 1, 2, 2, 1}, 9), 5);
    assert_int_equal(conv2d_scratch_floats(8, 16, 16, CONV2D_1X1), 0);
    assert_int_equal(conv2d_scratch_floats(8, 16, 16, CONV2D_3X3), 8 * 9 * 16 * 16);
}

typedef struct conv_ctx {
    const conv_case *c;
    const float *w, *b;
    float *scratch;
} conv_ctx;

static void conv_fwd_cb(float *out, const float *in, void *p)
{
    conv_ctx *x = p;
    conv2d_forward(out, in, x->w, x->b, x->c->N, x->c->C, x->c->H, x->c->W, x->c->K, x->c->g,
                   x->scratch);
}

static void test_conv2d_backward_fd(void **state)
{
    (void)state;
    const size_t picks[] = {0, 1, 3, 5, 7, 8, 9};
    for (size_t pi = 0; pi < sizeof picks / sizeof picks[0]; pi++) {
        const conv_case *c = &conv_cases[picks[pi]];
        const int Ho = conv2d_out_h(c->g, c->H), Wo = conv2d_out_w(c->g, c->W);
        const size_t nin = (size_t)c->N * c->C * c->H * c->W, nout = (size_t)c->N * c->K * Ho * Wo;
        float *x = randn(nin, 50, 1), *w = randn((size_t)c->K * c->C * c->g.kh * c->g.kw, 51, 0.5f);
        float *b = randn(c->K, 52, 1), *dy = randn(nout, 53, 1), *dx = zalloc(nin);
        float *scr = zalloc(conv2d_scratch_floats(c->C, c->H, c->W, c->g));
        conv2d_backward_input(dx, dy, w, c->N, c->C, c->H, c->W, c->K, c->g, scr);
        conv_ctx ctx = {c, w, c->bias ? b : NULL, scr};
        char what[64];
        snprintf(what, sizeof what, "conv2d case %zu", picks[pi]);
        grad_check(conv_fwd_cb, &ctx, x, nin, nout, dy, dx, what);
        free(x), free(w), free(b), free(dy), free(dx), free(scr);
    }
}

/* A sample's output is the same bits alone or at any position in a batch of 5, with 1 and with
 * 2 OpenBLAS threads, on sizes large enough for OpenBLAS to thread. */
static void check_conv_batch_invariance(int C, int H, int W, int K, conv2d_geom g)
{
    enum { NB = 5 };
    const int Ho = conv2d_out_h(g, H), Wo = conv2d_out_w(g, W);
    const size_t sin = (size_t)C * H * W, sout = (size_t)K * Ho * Wo;
    float *x = randn(NB * sin, 60, 1), *w = randn((size_t)K * C * g.kh * g.kw, 61, 0.1f);
    float *b = randn(K, 62, 1), *dy = randn(NB * sout, 63, 1);
    float *y = zalloc(NB * sout), *y1 = zalloc(sout), *dx = zalloc(NB * sin), *dx1 = zalloc(sin);
    float *scr = zalloc(conv2d_scratch_floats(C, H, W, g));
    conv2d_forward(y, x, w, b, NB, C, H, W, K, g, scr);
    conv2d_backward_input(dx, dy, w, NB, C, H, W, K, g, scr);
    for (int i = 0; i < NB; i++) {
        conv2d_forward(y1, x + i * sin, w, b, 1, C, H, W, K, g, scr);
        assert_memory_equal(y1, y + i * sout, sizeof(float) * sout);
        conv2d_backward_input(dx1, dy + i * sout, w, 1, C, H, W, K, g, scr);
        assert_memory_equal(dx1, dx + i * sin, sizeof(float) * sin);
    }
    free(x), free(w), free(b), free(dy), free(y), free(y1), free(dx), free(dx1), free(scr);
}

static void test_conv2d_batch_invariance(void **state)
{
    (void)state;
    const int saved = openblas_get_num_threads();
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        check_conv_batch_invariance(64, 16, 16, 64, CONV2D_3X3);
        check_conv_batch_invariance(48, 17, 15, 40, CONV2D_1X1);
        check_conv_batch_invariance(32, 16, 16, 32, CONV2D_3X3_DOWN_PAD_BR);
    }
    openblas_set_num_threads(saved);
}

/* ---- Winograd F(2x2,3x3) ------------------------------------------------------------------ */

typedef struct wino_case {
    int N, C, H, W, K;
} wino_case;

/* Odd and even sides (half tiles at the right and bottom edges), 1x1 and 1-row images, channel
 * counts off the kernel's 8-row blocks, tile rows wider than a chunk (W 130: one row per chunk),
 * a multi-chunk 28x28 map, and many channels (short chunks). */
static const wino_case wino_cases[] = {
    {2, 3, 7, 9, 5}, {3, 1, 1, 1, 1}, {2, 2, 1, 6, 3}, {1, 4, 5, 1, 9}, {2, 16, 28, 28, 32},
    {1, 5, 3, 130, 4}, {2, 70, 8, 8, 90}, {3, 9, 14, 14, 17}, {2, 3, 5, 33, 4}, {1, 2, 16, 16, 3},
};

static void winograd_case(const wino_case *c, winograd_kernel kind, size_t t)
{
    const size_t nin = (size_t)c->N * c->C * c->H * c->W, nout = (size_t)c->N * c->K * c->H * c->W;
    float *x = randn(nin, 110 + t, 1.0f), *w = randn((size_t)c->K * c->C * 9, 120 + t, 0.5f);
    float *b = randn(c->K, 130 + t, 1), *dy = randn(nout, 140 + t, 1.0f);
    float *U = zalloc(conv2d_winograd_weight_floats(c->C, c->K));
    float *y = zalloc(nout), *yr = zalloc(nout), *dx = zalloc(nin), *dxr = zalloc(nin);
    float *scr = zalloc(conv2d_winograd_scratch_floats(c->C, c->K, c->H, c->W));
    char what[96];
    conv2d_winograd_weights(U, w, c->K, c->C);
    conv2d_winograd_forward_with(kind, y, x, U, b, c->N, c->C, c->H, c->W, c->K, scr);
    conv2d_forward_ref(yr, x, w, b, c->N, c->C, c->H, c->W, c->K, CONV2D_3X3);
    snprintf(what, sizeof what, "winograd forward case %zu kernel %d", t, (int)kind);
    expect_close(y, yr, nout, 1e-5, what);
    conv2d_winograd_backward_input_with(kind, dx, dy, U, c->N, c->C, c->H, c->W, c->K, scr);
    conv2d_backward_input_ref(dxr, dy, w, c->N, c->C, c->H, c->W, c->K, CONV2D_3X3);
    snprintf(what, sizeof what, "winograd backward case %zu kernel %d", t, (int)kind);
    expect_close(dx, dxr, nin, 1e-5, what);
    free(x), free(w), free(b), free(dy), free(U), free(y), free(yr), free(dx), free(dxr), free(scr);
}

/* Every kernel this CPU has, on every case, against the double-precision references. */
static void test_winograd_matches_ref(void **state)
{
    (void)state;
    assert_true(conv2d_winograd_applies(CONV2D_3X3));
    assert_false(conv2d_winograd_applies(CONV2D_1X1));
    assert_false(conv2d_winograd_applies(CONV2D_3X3_DOWN_PAD_BR));
    assert_false(conv2d_winograd_applies((conv2d_geom){3, 3, 1, 1, 1, 0, 1}));
    const winograd_kernel kinds[] = {WINOGRAD_AUTO, WINOGRAD_PLAIN, WINOGRAD_AVX2, WINOGRAD_AVX512};
    int ran = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (kinds[k] != WINOGRAD_AUTO && !winograd_kernel_available(kinds[k])) continue;
        for (size_t t = 0; t < sizeof wino_cases / sizeof wino_cases[0]; t++)
            winograd_case(&wino_cases[t], kinds[k], t);
        ran++;
    }
    print_message("winograd: %d kernel choices checked (AVX2 %s, AVX-512 %s)\n", ran,
                  winograd_kernel_available(WINOGRAD_AVX2) ? "yes" : "no",
                  winograd_kernel_available(WINOGRAD_AVX512) ? "yes" : "no");
    assert_true(ran >= 2);
}

/* The transformed kernel of a delta at tap (a, e) and the flip identity the backward uses:
 * U' of the flipped kernel is U with frequencies permuted by p = (3, 1, 2, 0). */
static void test_winograd_weight_transform(void **state)
{
    (void)state;
    float w[9] = {0}, U[16], Uf[16], wf[9];
    w[4] = 2.0f; /* centre tap: G g G^T = 2 * (G[:,1] G[:,1]^T), G[:,1] = (0, .5, -.5, 0) */
    conv2d_winograd_weights(U, w, 1, 1);
    const float g1[4] = {0, 0.5f, -0.5f, 0};
    for (int f = 0; f < 16; f++) assert_float_equal(U[f], 2.0f * g1[f / 4] * g1[f % 4], 0);
    float *r = randn(9, 150, 1.0f);
    for (int i = 0; i < 9; i++) wf[i] = r[8 - i];
    conv2d_winograd_weights(U, r, 1, 1);
    conv2d_winograd_weights(Uf, wf, 1, 1);
    const int p[4] = {3, 1, 2, 0};
    for (int f = 0; f < 16; f++) assert_float_equal(Uf[f], U[4 * p[f / 4] + p[f % 4]], 1e-6);
    free(r);
}

/* Bits: a sample alone = the same sample at each position of a batch of 5 (tiles of every
 * sample share the products); the AVX2 and AVX-512 kernels agree to the bit. */
static void test_winograd_batch_invariance(void **state)
{
    (void)state;
    enum { NB = 5 };
    const int C = 24, H = 13, W = 10, K = 20;
    const size_t sin = (size_t)C * H * W, sout = (size_t)K * H * W;
    float *x = randn(NB * sin, 160, 1), *w = randn((size_t)K * C * 9, 161, 0.1f), *b = randn(K, 162, 1);
    float *dy = randn(NB * sout, 163, 1), *U = zalloc(conv2d_winograd_weight_floats(C, K));
    float *y = zalloc(NB * sout), *y1 = zalloc(sout), *dx = zalloc(NB * sin), *dx1 = zalloc(sin);
    float *scr = zalloc(conv2d_winograd_scratch_floats(C, K, H, W));
    conv2d_winograd_weights(U, w, K, C);
    conv2d_winograd_forward(y, x, U, b, NB, C, H, W, K, scr);
    conv2d_winograd_backward_input(dx, dy, U, NB, C, H, W, K, scr);
    for (int i = 0; i < NB; i++) {
        conv2d_winograd_forward(y1, x + i * sin, U, b, 1, C, H, W, K, scr);
        assert_memory_equal(y1, y + i * sout, sizeof(float) * sout);
        conv2d_winograd_backward_input(dx1, dy + i * sout, U, 1, C, H, W, K, scr);
        assert_memory_equal(dx1, dx + i * sin, sizeof(float) * sin);
    }
    if (winograd_kernel_available(WINOGRAD_AVX2) && winograd_kernel_available(WINOGRAD_AVX512)) {
        float *y2 = zalloc(NB * sout);
        conv2d_winograd_forward_with(WINOGRAD_AVX2, y, x, U, b, NB, C, H, W, K, scr);
        conv2d_winograd_forward_with(WINOGRAD_AVX512, y2, x, U, b, NB, C, H, W, K, scr);
        assert_memory_equal(y, y2, sizeof(float) * NB * sout);
        free(y2);
    }
    free(x), free(w), free(b), free(dy), free(U), free(y), free(y1), free(dx), free(dx1), free(scr);
}

/* ---- NIN and Dense ------------------------------------------------------------------------ */

typedef struct lin_ctx {
    int N, C, O, P;
    const float *w, *b;
} lin_ctx;

static void nin_fwd_cb(float *out, const float *in, void *p)
{
    lin_ctx *c = p;
    nin_forward(out, in, c->w, c->b, c->N, c->C, c->O, c->P);
}

static void dense_fwd_cb(float *out, const float *in, void *p)
{
    lin_ctx *c = p;
    dense_forward(out, in, c->w, c->b, c->N, c->C, c->O);
}

static void test_nin(void **state)
{
    (void)state;
    const int shapes[][4] = {{3, 5, 7, 15}, {2, 1, 3, 1}, {1, 33, 17, 49}};   /* N, C, O, P */
    for (size_t s = 0; s < 3; s++) {
        const int N = shapes[s][0], C = shapes[s][1], O = shapes[s][2], P = shapes[s][3];
        const size_t nin = (size_t)N * C * P, nout = (size_t)N * O * P;
        float *x = randn(nin, 70, 1), *w = randn((size_t)C * O, 71, 0.5f), *b = randn(O, 72, 1);
        float *dy = randn(nout, 73, 1), *y = zalloc(nout), *yr = zalloc(nout);
        float *dx = zalloc(nin), *dxr = zalloc(nin);
        for (int withb = 0; withb < 2; withb++) {
            nin_forward(y, x, w, withb ? b : NULL, N, C, O, P);
            nin_forward_ref(yr, x, w, withb ? b : NULL, N, C, O, P);
            expect_close(y, yr, nout, 1e-5, "nin_forward");
        }
        nin_backward_input(dx, dy, w, N, C, O, P);
        nin_backward_input_ref(dxr, dy, w, N, C, O, P);
        expect_close(dx, dxr, nin, 1e-5, "nin_backward_input");
        if (s < 2) {
            lin_ctx ctx = {N, C, O, P, w, b};
            grad_check(nin_fwd_cb, &ctx, x, nin, nout, dy, dx, "nin");
        }
        free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr);
    }
}

/* NIN's W[in,out] is the transpose of a 1x1 conv's [out,in,1,1]: both give the same map. */
static void test_nin_is_transposed_conv1x1(void **state)
{
    (void)state;
    const int N = 2, C = 5, O = 3, P = 12;
    float *x = randn((size_t)N * C * P, 74, 1), *w = randn((size_t)C * O, 75, 1),
          *b = randn(O, 76, 1);
    float *wt = zalloc((size_t)O * C), *y = zalloc((size_t)N * O * P),
          *yc = zalloc((size_t)N * O * P);
    for (int c = 0; c < C; c++)
        for (int o = 0; o < O; o++) wt[o * C + c] = w[c * O + o];
    nin_forward(y, x, w, b, N, C, O, P);
    conv2d_forward(yc, x, wt, b, N, C, 3, 4, O, CONV2D_1X1, NULL);
    expect_close(y, yc, (size_t)N * O * P, 1e-6, "nin vs conv1x1");
    free(x), free(w), free(b), free(wt), free(y), free(yc);
}

static void test_dense(void **state)
{
    (void)state;
    const int shapes[][3] = {{3, 7, 5}, {1, 1, 9}, {4, 129, 65}};   /* N, Cin, Cout */
    for (size_t s = 0; s < 3; s++) {
        const int N = shapes[s][0], Ci = shapes[s][1], Co = shapes[s][2];
        float *x = randn((size_t)N * Ci, 80, 1), *w = randn((size_t)Co * Ci, 81, 0.5f),
              *b = randn(Co, 82, 1);
        float *dy = randn((size_t)N * Co, 83, 1), *y = zalloc((size_t)N * Co),
              *yr = zalloc((size_t)N * Co);
        float *dx = zalloc((size_t)N * Ci), *dxr = zalloc((size_t)N * Ci);
        for (int withb = 0; withb < 2; withb++) {
            dense_forward(y, x, w, withb ? b : NULL, N, Ci, Co);
            dense_forward_ref(yr, x, w, withb ? b : NULL, N, Ci, Co);
            expect_close(y, yr, (size_t)N * Co, 1e-5, "dense_forward");
        }
        dense_backward_input(dx, dy, w, N, Ci, Co);
        dense_backward_input_ref(dxr, dy, w, N, Ci, Co);
        expect_close(dx, dxr, (size_t)N * Ci, 1e-5, "dense_backward_input");
        lin_ctx ctx = {N, Ci, Co, 1, w, b};
        grad_check(dense_fwd_cb, &ctx, x, (size_t)N * Ci, (size_t)N * Co, dy, dx, "dense");
        free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr);
    }
}

/* ---- SiLU --------------------------------------------------------------------------------- */

static void silu_cb(float *out, const float *in, void *p) { silu_forward(out, in, *(size_t *)p); }

static void test_silu(void **state)
{
    (void)state;
    const float xs[] = {0.0f, 1.0f, -1.0f, 20.0f, -20.0f, 100.0f, -100.0f, -1000.0f, 2.5f};
    const size_t nx = sizeof xs / sizeof xs[0];
    float y[sizeof xs / sizeof xs[0]];
    silu_forward(y, xs, nx);
    for (size_t i = 0; i < nx; i++) {
        double want = xs[i] / (1.0 + exp(-(double)xs[i]));
        if (!(fabs(y[i] - want) <= 1e-6 * (fabs(want) + 1e-30) + 1e-37))
            fail_msg("silu(%g) = %.9g, want %.9g", xs[i], y[i], want);
    }
    /* in place */
    float z[sizeof xs / sizeof xs[0]];
    memcpy(z, xs, sizeof z);
    silu_forward(z, z, nx);
    assert_memory_equal(z, y, sizeof z);
    /* derivative against the closed form, then central differences */
    float ones[sizeof xs / sizeof xs[0]], d[sizeof xs / sizeof xs[0]];
    for (size_t i = 0; i < nx; i++) ones[i] = 1.0f;
    silu_backward(d, ones, xs, nx);
    for (size_t i = 0; i < nx; i++) {
        double s = 1.0 / (1.0 + exp(-(double)xs[i])), want = s * (1 + xs[i] * (1 - s));
        if (!(fabs(d[i] - want) <= 1e-6 * (fabs(want) + 1e-30) + 1e-37))
            fail_msg("silu'(%g) = %.9g, want %.9g", xs[i], d[i], want);
    }
    size_t n = 200;
    float *x = randn(n, 90, 3), *dy = randn(n, 91, 1), *dx = zalloc(n);
    silu_backward(dx, dy, x, n);
    grad_check(silu_cb, &n, x, n, n, dy, dx, "silu");
    free(x), free(dy), free(dx);
}

/* ---- GroupNorm ---------------------------------------------------------------------------- */

typedef struct gn_ctx {
    int N, C, P, G;
    const float *gamma, *beta;
    float *mean, *rstd;
} gn_ctx;

static void gn_cb(float *out, const float *in, void *p)
{
    gn_ctx *c = p;
    groupnorm_forward(out, c->mean, c->rstd, in, c->gamma, c->beta, c->N, c->C, c->P, c->G, 1e-6f);
}

static void test_groupnorm_normalises(void **state)
{
    (void)state;
    const int N = 3, C = 12, P = 35, G = 4, Cg = C / G;
    const size_t n = (size_t)N * C * P;
    float *x = randn(n, 100, 3), *y = zalloc(n), *mean = zalloc(N * G), *rstd = zalloc(N * G);
    for (size_t i = 0; i < n; i++) x[i] += 5.0f;   /* a large offset must not hurt */
    groupnorm_forward(y, mean, rstd, x, NULL, NULL, N, C, P, G, 1e-6f);
    for (int b = 0; b < N; b++)
        for (int g = 0; g < G; g++) {
            const float *yg = y + ((size_t)b * C + g * Cg) * P,
                        *xg = x + ((size_t)b * C + g * Cg) * P;
            double s = 0, ss = 0, xs = 0, xss = 0;
            for (int i = 0; i < Cg * P; i++) s += yg[i], xs += xg[i];
            for (int i = 0; i < Cg * P; i++) {
                ss += (yg[i] - s / (Cg * P)) * (yg[i] - s / (Cg * P));
                xss += (xg[i] - xs / (Cg * P)) * (xg[i] - xs / (Cg * P));
            }
            double var = ss / (Cg * P), xvar = xss / (Cg * P);   /* biased */
            if (!(fabs(s / (Cg * P)) < 1e-6)) fail_msg("group mean %g", s / (Cg * P));
            if (!(fabs(var - 1) < 1e-5)) fail_msg("group variance %.9g", var);
            if (!(fabs(mean[b * G + g] - xs / (Cg * P)) < 1e-5)) fail_msg("saved mean");
            if (!(fabs(rstd[b * G + g] - 1 / sqrt(xvar + 1e-6)) < 1e-6 * rstd[b * G + g]))
                fail_msg("saved rstd %.9g, want %.9g", rstd[b * G + g], 1 / sqrt(xvar + 1e-6));
        }
    /* gamma and beta are applied per channel; out may alias in */
    float *gamma = randn(C, 101, 1), *beta = randn(C, 102, 1), *y2 = zalloc(n);
    memcpy(y2, x, sizeof(float) * n);
    groupnorm_forward(y2, NULL, NULL, y2, gamma, beta, N, C, P, G, 1e-6f);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i / P % C);
        y[i] = y[i] * gamma[c] + beta[c];
    }
    expect_close(y2, y, n, 1e-6, "groupnorm gamma/beta");
    /* eps is a parameter: a constant group normalises to 0, and eps = 1 shrinks a unit-variance
     * group by 1/sqrt(2) */
    float cst[4] = {2, 2, 2, 2}, o[4], two[4] = {-1, 1, -1, 1}, o2[4];
    groupnorm_forward(o, NULL, NULL, cst, NULL, NULL, 1, 2, 2, 1, 1e-6f);
    for (int i = 0; i < 4; i++) assert_true(o[i] == 0.0f);
    groupnorm_forward(o2, NULL, NULL, two, NULL, NULL, 1, 2, 2, 2, 1.0f);
    for (int i = 0; i < 4; i++) assert_true(fabs(o2[i] - two[i] / sqrt(2.0)) < 1e-7);
    free(x), free(y), free(mean), free(rstd), free(gamma), free(beta), free(y2);
}

/* The vector SiLU and GroupNorm (nn_vec.h) against their plain references, and the property
 * that makes them batch-invariant: an element's bits do not depend on its position in the
 * array (the tail of an array goes through the same vector code as the blocks). */
static void test_vector_kernels_match_references(void **state)
{
    (void)state;
    const size_t n = 1003;   /* not a multiple of 8 */
    float *x = randn(n, 300, 6), *dy = randn(n, 301, 1);
    x[0] = 90.0f, x[1] = -90.0f, x[2] = 87.5f, x[3] = -86.5f, x[4] = 0.0f, x[5] = 1e-20f;
    float *y = zalloc(n), *yr = zalloc(n), *d = zalloc(n), *dr = zalloc(n);
    silu_forward(y, x, n);
    silu_forward_ref(yr, x, n);
    silu_backward(d, dy, x, n);
    silu_backward_ref(dr, dy, x, n);
    double worst = 0, worst_d = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(y[i] - yr[i]) / (fabs(yr[i]) + 1e-30));
        worst_d = fmax(worst_d, fabs(d[i] - dr[i]) / (fabs(dr[i]) + 1e-30));
    }
    print_message("silu: largest relative difference from expf %.2e (forward), %.2e (backward)\n", worst, worst_d);
    assert_true(worst < 1e-6 && worst_d < 1e-6);
    /* position independence: elements 5..17 alone equal the same elements inside the array */
    float part[13], dpart[13];
    silu_forward(part, x + 5, 13);
    assert_memory_equal(part, y + 5, sizeof part);
    silu_backward(dpart, dy + 5, x + 5, 13);
    assert_memory_equal(dpart, d + 5, sizeof dpart);

    /* GroupNorm (P = 49: 7x7 maps, not a multiple of 8) and the fused GroupNorm + SiLU */
    const int N = 3, C = 16, P = 49, G = 4;
    const size_t m = (size_t)N * C * P;
    float *gx = randn(m, 302, 2), *gamma = randn(C, 303, 1), *beta = randn(C, 304, 1);
    for (size_t i = 0; i < m; i++) gx[i] += 3.0f;
    float *g = zalloc(m), *gr = zalloc(m), *gs = zalloc(m), *g2 = zalloc(m), *s2 = zalloc(m);
    float mean[12], rstd[12], meanr[12], rstdr[12];
    groupnorm_forward(g, mean, rstd, gx, gamma, beta, N, C, P, G, 1e-6f);
    groupnorm_forward_ref(gr, meanr, rstdr, gx, gamma, beta, N, C, P, G, 1e-6f);
    expect_close(g, gr, m, 1e-5, "vector groupnorm against the reference");
    expect_close(mean, meanr, 12, 1e-6, "groupnorm mean");
    expect_close(rstd, rstdr, 12, 1e-6, "groupnorm rstd");
    groupnorm_silu_forward(g2, s2, NULL, NULL, gx, gamma, beta, N, C, P, G, 1e-6f);
    assert_memory_equal(g2, g, sizeof(float) * m);
    silu_forward(gs, g, m);
    assert_memory_equal(s2, gs, sizeof(float) * m);
    /* sample 2 alone gives the bits it got in the batch of 3 */
    groupnorm_silu_forward(g2, s2, NULL, NULL, gx + 2 * C * P, gamma, beta, 1, C, P, G, 1e-6f);
    assert_memory_equal(g2, g + 2 * C * P, sizeof(float) * C * P);
    assert_memory_equal(s2, gs + 2 * C * P, sizeof(float) * C * P);
    /* the vector GroupNorm backward against the plain loop, and sample 2 alone */
    float *gdy = randn(m, 305, 1);
    groupnorm_backward_input(g2, gdy, gx, mean, rstd, gamma, N, C, P, G);
    groupnorm_backward_input_ref(gr, gdy, gx, mean, rstd, gamma, N, C, P, G);
    expect_close(g2, gr, m, 1e-5, "vector groupnorm backward against the reference");
    groupnorm_backward_input(s2, gdy + 2 * C * P, gx + 2 * C * P, mean + 2 * G, rstd + 2 * G, gamma, 1, C, P, G);
    assert_memory_equal(s2, g2 + 2 * C * P, sizeof(float) * C * P);
    free(gdy);
    free(x), free(dy), free(y), free(yr), free(d), free(dr);
    free(gx), free(gamma), free(beta), free(g), free(gr), free(gs), free(g2), free(s2);
}

static void test_groupnorm_backward_fd(void **state)
{
    (void)state;
    const int shapes[][4] = {{2, 6, 5, 3}, {2, 4, 3, 1}, {1, 5, 7, 5}, {2, 8, 9, 2}}; /* N C P G */
    for (size_t s = 0; s < 4; s++) {
        const int N = shapes[s][0], C = shapes[s][1], P = shapes[s][2], G = shapes[s][3];
        const size_t n = (size_t)N * C * P;
        float *x = randn(n, 110 + s, 2), *gamma = randn(C, 111, 1), *beta = randn(C, 112, 1);
        float *dy = randn(n, 113, 1), *y = zalloc(n), *dx = zalloc(n);
        float *mean = zalloc(N * G), *rstd = zalloc(N * G);
        groupnorm_forward(y, mean, rstd, x, gamma, beta, N, C, P, G, 1e-6f);
        groupnorm_backward_input(dx, dy, x, mean, rstd, gamma, N, C, P, G);
        gn_ctx ctx = {N, C, P, G, gamma, beta, NULL, NULL};
        grad_check(gn_cb, &ctx, x, n, n, dy, dx, "groupnorm");
        /* gamma NULL means ones */
        float *ones = zalloc(C), *dx1 = zalloc(n);
        for (int c = 0; c < C; c++) ones[c] = 1;
        groupnorm_backward_input(dx, dy, x, mean, rstd, ones, N, C, P, G);
        groupnorm_backward_input(dx1, dy, x, mean, rstd, NULL, N, C, P, G);
        assert_memory_equal(dx, dx1, sizeof(float) * n);
        free(x), free(gamma), free(beta), free(dy), free(y), free(dx), free(mean), free(rstd);
        free(ones), free(dx1);
    }
}

/* ---- attention ---------------------------------------------------------------------------- */

static void test_attn_matches_ref(void **state)
{
    (void)state;
    const int shapes[][3] = {{2, 5, 35}, {1, 1, 1}, {3, 7, 9}, {1, 16, 64}};   /* N, C, P */
    for (size_t s = 0; s < 4; s++) {
        const int N = shapes[s][0], C = shapes[s][1], P = shapes[s][2];
        const size_t n = (size_t)N * C * P, nw = (size_t)N * P * P;
        float *q = randn(n, 120, 1), *k = randn(n, 121, 1), *v = randn(n, 122, 1);
        float *dy = randn(n, 123, 1), *o = zalloc(n), * or = zalloc(n), *w = zalloc(nw),
              *wr = zalloc(nw);
        float *dq = zalloc(n), *dk = zalloc(n), *dv = zalloc(n);
        float *dqr = zalloc(n), *dkr = zalloc(n), *dvr = zalloc(n);
        float *scr = zalloc(attn_backward_scratch_floats(P));
        attn_forward(o, w, q, k, v, N, C, P);
        attn_forward_ref(or, wr, q, k, v, N, C, P);
        expect_close(w, wr, nw, 1e-5, "attn weights");
        expect_close(o, or, n, 1e-5, "attn_forward");
        for (int r = 0; r < N * P; r++) {   /* rows are distributions */
            double sum = 0;
            for (int j = 0; j < P; j++) sum += w[(size_t)r * P + j];
            assert_true(fabs(sum - 1) < 1e-5);
        }
        attn_backward(dq, dk, dv, dy, w, q, k, v, N, C, P, scr);
        attn_backward_ref(dqr, dkr, dvr, dy, wr, q, k, v, N, C, P);
        expect_close(dq, dqr, n, 1e-5, "attn dq");
        expect_close(dk, dkr, n, 1e-5, "attn dk");
        expect_close(dv, dvr, n, 1e-5, "attn dv");
        free(q), free(k), free(v), free(dy), free(o), free(or), free(w), free(wr);
        free(dq), free(dk), free(dv), free(dqr), free(dkr), free(dvr), free(scr);
    }
}

typedef struct attn_ctx {
    int N, C, P, which;   /* which of q, k, v the checked input replaces */
    const float *q, *k, *v;
    float *w;
} attn_ctx;

static void attn_cb(float *out, const float *in, void *p)
{
    attn_ctx *c = p;
    attn_forward(out, c->w, c->which == 0 ? in : c->q, c->which == 1 ? in : c->k,
                 c->which == 2 ? in : c->v, c->N, c->C, c->P);
}

static void test_attn_backward_fd(void **state)
{
    (void)state;
    const int N = 2, C = 3, P = 10;
    const size_t n = (size_t)N * C * P;
    float *q = randn(n, 130, 1), *k = randn(n, 131, 1), *v = randn(n, 132, 1),
          *dy = randn(n, 133, 1);
    float *o = zalloc(n), *w = zalloc((size_t)N * P * P), *w2 = zalloc((size_t)N * P * P);
    float *d[3] = {zalloc(n), zalloc(n), zalloc(n)}, *scr = zalloc(attn_backward_scratch_floats(P));
    attn_forward(o, w, q, k, v, N, C, P);
    attn_backward(d[0], d[1], d[2], dy, w, q, k, v, N, C, P, scr);
    const char *names[3] = {"attn dq", "attn dk", "attn dv"};
    const float *inputs[3] = {q, k, v};
    for (int which = 0; which < 3; which++) {
        attn_ctx ctx = {N, C, P, which, q, k, v, w2};
        grad_check(attn_cb, &ctx, inputs[which], n, n, dy, d[which], names[which]);
    }
    free(q), free(k), free(v), free(dy), free(o), free(w), free(w2), free(d[0]), free(d[1]);
    free(d[2]), free(scr);
}

/* Identical keys give uniform weights: every output position is the mean of the values.  Huge
 * logits (the softmax's max subtraction) stay finite and match the double reference. */
static void test_attn_closed_forms(void **state)
{
    (void)state;
    const int N = 2, C = 4, P = 13;
    const size_t n = (size_t)N * C * P;
    float *q = randn(n, 140, 1), *k = zalloc(n), *v = randn(n, 141, 1), *o = zalloc(n);
    float *w = zalloc((size_t)N * P * P), *or = zalloc(n), *wr = zalloc((size_t)N * P * P);
    float kc[4] = {0.3f, -1.2f, 2.0f, 0.7f};
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) k[((size_t)b * C + c) * P + p] = kc[c];
    attn_forward(o, w, q, k, v, N, C, P);
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++) {
            double mean = 0;
            for (int p = 0; p < P; p++) mean += v[((size_t)b * C + c) * P + p];
            mean /= P;
            for (int p = 0; p < P; p++)
                if (!(fabs(o[((size_t)b * C + c) * P + p] - mean) < 1e-6))
                    fail_msg("identical keys: o = %.9g, mean of values %.9g",
                             o[((size_t)b * C + c) * P + p], mean);
        }
    float *k2 = randn(n, 142, 1);
    for (size_t i = 0; i < n; i++) q[i] *= 300.0f;
    attn_forward(o, w, q, k2, v, N, C, P);
    attn_forward_ref(or, wr, q, k2, v, N, C, P);
    for (size_t i = 0; i < n; i++) assert_true(isfinite(o[i]));
    expect_close(o, or, n, 1e-4, "attn with logits ~1e3");
    free(q), free(k), free(v), free(o), free(w), free(or), free(wr), free(k2);
}

static void test_attn_batch_invariance(void **state)
{
    (void)state;
    enum { NB = 5, C = 64, P = 256 };
    const size_t s = (size_t)C * P;
    float *q = randn(NB * s, 150, 1), *k = randn(NB * s, 151, 1), *v = randn(NB * s, 152, 1);
    float *o = zalloc(NB * s), *w = zalloc((size_t)NB * P * P), *o1 = zalloc(s),
          *w1 = zalloc((size_t)P * P);
    attn_forward(o, w, q, k, v, NB, C, P);
    for (int i = 0; i < NB; i++) {
        attn_forward(o1, w1, q + i * s, k + i * s, v + i * s, 1, C, P);
        assert_memory_equal(o1, o + i * s, sizeof(float) * s);
    }
    free(q), free(k), free(v), free(o), free(w), free(o1), free(w1);
}

/* ---- FIR resampling ----------------------------------------------------------------------- */

typedef struct fir_ctx {
    int N, C, H, W, up, down, p0, p1;
    float *scratch;
} fir_ctx;

static void fir_cb(float *out, const float *in, void *p)
{
    fir_ctx *c = p;
    upfirdn2d_forward(out, in, c->N, c->C, c->H, c->W, c->up, c->down, c->p0, c->p1, c->scratch);
}

static void test_upfirdn2d_matches_ref_and_adjoint(void **state)
{
    (void)state;
    const int cases[][8] = {
        /* N C H W up down pad0 pad1 */
        {2, 3, 5, 7, 2, 1, 2, 1},   /* upsample_2d, odd sizes */
        {2, 3, 8, 6, 1, 2, 1, 1},   /* downsample_2d          */
        {1, 3, 7, 9, 1, 2, 1, 1},   /* downsample_2d, odd     */
        {2, 2, 6, 5, 1, 1, 2, 2},   /* the blur of conv_downsample_2d */
        {1, 2, 4, 5, 3, 2, 0, 3},   /* up 3, down 2, asymmetric */
        {1, 1, 1, 1, 2, 1, 2, 1},   /* a single pixel */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        const int Ho = upfirdn2d_out_size(c[2], c[4], c[5], c[6], c[7]);
        const int Wo = upfirdn2d_out_size(c[3], c[4], c[5], c[6], c[7]);
        const size_t nin = (size_t)c[0] * c[1] * c[2] * c[3], nout = (size_t)c[0] * c[1] * Ho * Wo;
        float *x = randn(nin, 160 + t, 1), *dy = randn(nout, 170 + t, 1);
        float *y = zalloc(nout), *yr = zalloc(nout), *dx = zalloc(nin), *dxr = zalloc(nin);
        float *scr = zalloc(upfirdn2d_scratch_floats(c[2], c[3], c[4], c[5], c[6], c[7]));
        char what[64];
        upfirdn2d_forward(y, x, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], scr);
        upfirdn2d_forward_ref(yr, x, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
        snprintf(what, sizeof what, "upfirdn2d_forward case %zu", t);
        expect_close(y, yr, nout, 1e-5, what);
        upfirdn2d_backward(dx, dy, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], scr);
        upfirdn2d_backward_ref(dxr, dy, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
        snprintf(what, sizeof what, "upfirdn2d_backward case %zu", t);
        expect_close(dx, dxr, nin, 1e-5, what);
        double lhs = dot(yr, dy, nout), rhs = dot(x, dxr, nin);
        if (!(fabs(lhs - rhs) <= 1e-5 * (fabs(lhs) + 1)))
            fail_msg("%s: adjoint %g vs %g", what, lhs, rhs);
        fir_ctx ctx = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], scr};
        grad_check(fir_cb, &ctx, x, nin, nout, dy, dx, what);
        free(x), free(dy), free(y), free(yr), free(dx), free(dxr), free(scr);
    }
}

/* The per-axis formulas of §7.5, written out for one line (x outside [0,n) is 0). */
static double at(const float *x, int n, int i) { return i >= 0 && i < n ? x[i] : 0.0; }

static void spec_up1d(double *y, const float *x, int n)
{
    for (int i = 0; i < n; i++) {
        y[2 * i] = 0.25 * at(x, n, i - 1) + 0.75 * x[i];
        y[2 * i + 1] = 0.75 * x[i] + 0.25 * at(x, n, i + 1);
    }
}
static void spec_down1d(double *y, const float *x, int n)
{
    for (int i = 0; i < n / 2; i++)
        y[i] = (at(x, n, 2 * i - 1) + 3 * x[2 * i] + 3 * x[2 * i + 1] + at(x, n, 2 * i + 2)) / 8;
}
static void spec_blur1d(double *y, const float *x, int n)
{
    for (int m = 0; m <= n; m++)
        y[m] = (at(x, n, m - 2) + 3 * at(x, n, m - 1) + 3 * at(x, n, m) + at(x, n, m + 1)) / 8;
}

/* Applies a 1-D spec formula along W then along H: in (H,W) -> out (Ho,Wo). */
static void spec_2d(float *out, const float *in, int H, int W, int Ho, int Wo,
                    void (*f)(double *, const float *, int))
{
    float *mid = zalloc((size_t)H * Wo), *col = zalloc(H);
    double *line = calloc((size_t)(2 * (H > W ? H : W) + 2), sizeof(double));
    for (int r = 0; r < H; r++) {
        f(line, in + (size_t)r * W, W);
        for (int j = 0; j < Wo; j++) mid[(size_t)r * Wo + j] = (float)line[j];
    }
    for (int j = 0; j < Wo; j++) {
        for (int r = 0; r < H; r++) col[r] = mid[(size_t)r * Wo + j];
        f(line, col, H);
        for (int i = 0; i < Ho; i++) out[(size_t)i * Wo + j] = (float)line[i];
    }
    free(mid), free(col), free(line);
}

static void test_fir_helpers_match_spec(void **state)
{
    (void)state;
    const int H = 6, W = 7;   /* odd W: the downsample drops the last column, as PyTorch does */
    float *x = randn((size_t)H * W, 180, 1), *scr = zalloc(fir_scratch_floats(H, W));
    float *y = zalloc((size_t)4 * H * W), *want = zalloc((size_t)4 * H * W);

    fir_upsample2x_forward(y, x, 1, 1, H, W, scr);
    spec_2d(want, x, H, W, 2 * H, 2 * W, spec_up1d);
    expect_close(y, want, (size_t)4 * H * W, 1e-6, "fir_upsample2x vs §7.5");
    /* borders are not renormalised: y[0] = 3/4 x[0] per axis */
    assert_true(fabs(y[0] - 0.5625 * x[0]) < 1e-6);
    assert_true(fabs(y[1] - 0.75 * (0.75 * x[0] + 0.25 * x[1])) < 1e-6);
    assert_true(fabs(y[(size_t)2 * W * 2 * H - 1] - 0.5625 * x[(size_t)H * W - 1]) < 1e-6);

    assert_int_equal(upfirdn2d_out_size(W, 1, 2, 1, 1), W / 2);
    fir_downsample2x_forward(y, x, 1, 1, H, W, scr);
    spec_2d(want, x, H, W, H / 2, W / 2, spec_down1d);
    expect_close(y, want, (size_t)(H / 2) * (W / 2), 1e-6, "fir_downsample2x vs §7.5");

    fir_blur_pad2_forward(y, x, 1, 1, H, W, scr);
    spec_2d(want, x, H, W, H + 1, W + 1, spec_blur1d);
    expect_close(y, want, (size_t)(H + 1) * (W + 1), 1e-6, "fir_blur_pad2 vs §7.5");

    /* the helper backwards are the upfirdn2d adjoints */
    float *d = zalloc((size_t)H * W), *dr = zalloc((size_t)H * W),
          *g = randn((size_t)4 * H * W, 181, 1);
    fir_upsample2x_backward(d, g, 1, 1, H, W, scr);
    upfirdn2d_backward_ref(dr, g, 1, 1, H, W, 2, 1, 2, 1);
    expect_close(d, dr, (size_t)H * W, 1e-5, "fir_upsample2x_backward");
    fir_downsample2x_backward(d, g, 1, 1, H, W, scr);
    upfirdn2d_backward_ref(dr, g, 1, 1, H, W, 1, 2, 1, 1);
    expect_close(d, dr, (size_t)H * W, 1e-5, "fir_downsample2x_backward");
    fir_blur_pad2_backward(d, g, 1, 1, H, W, scr);
    upfirdn2d_backward_ref(dr, g, 1, 1, H, W, 1, 1, 2, 2);
    expect_close(d, dr, (size_t)H * W, 1e-5, "fir_blur_pad2_backward");
    free(x), free(scr), free(y), free(want), free(d), free(dr), free(g);
}

/* Upsampling a ramp a*r + b*c + d gives, away from the borders, the ramp sampled at the
 * half-pixel-shifted positions (m - 1/2)/2. */
static void test_fir_upsample_ramp(void **state)
{
    (void)state;
    const int H = 5, W = 8;
    const double a = 0.7, b = -1.3, d0 = 2.0;
    float x[5 * 8], y[10 * 16], scr[5 * 17];
    assert_true(fir_scratch_floats(H, W) <= sizeof scr / sizeof scr[0]);
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) x[r * W + c] = (float)(a * r + b * c + d0);
    fir_upsample2x_forward(y, x, 1, 1, H, W, scr);
    for (int m = 1; m < 2 * H - 1; m++)
        for (int l = 1; l < 2 * W - 1; l++) {
            double want = a * (m - 0.5) / 2 + b * (l - 0.5) / 2 + d0;
            if (!(fabs(y[m * 2 * W + l] - want) < 1e-5))
                fail_msg("ramp at (%d,%d): %.7g, want %.7g", m, l, y[m * 2 * W + l], want);
        }
}

/* A constant image downsamples to the constant inside; the first and last rows and columns get
 * 7/8 of it per axis (the taps x[-1] and x[n] read the zero padding). */
static void test_fir_downsample_constant(void **state)
{
    (void)state;
    const int H = 8, W = 10;
    float x[8 * 10], y[4 * 5], scr[8 * 20];
    for (int i = 0; i < H * W; i++) x[i] = 3.0f;
    fir_downsample2x_forward(y, x, 1, 1, H, W, scr);
    for (int i = 0; i < H / 2; i++)
        for (int j = 0; j < W / 2; j++) {
            double fy = i == 0 || i == H / 2 - 1 ? 7.0 / 8 : 1.0;
            double fx = j == 0 || j == W / 2 - 1 ? 7.0 / 8 : 1.0;
            if (!(fabs(y[i * (W / 2) + j] - 3.0 * fy * fx) < 1e-6))
                fail_msg("downsample of a constant at (%d,%d): %g", i, j, y[i * (W / 2) + j]);
        }
    /* the blur of conv_downsample_2d: n+1 outputs per axis, c/2, 7c/8, c ..., c, 7c/8, c/2; then
     * the stride-2 valid 3x3 conv brings n+1 back to n/2 */
    float b[9 * 11];
    fir_blur_pad2_forward(b, x, 1, 1, H, W, scr);
    assert_true(fabs(b[0] - 0.75f) < 1e-6);                  /* (1/2)(1/2) c */
    assert_true(fabs(b[2 * 11 + 5] - 3.0f) < 1e-6);
    assert_true(fabs(b[1 * 11 + 5] - 3.0f * 7 / 8) < 1e-6);
    assert_true(fabs(b[8 * 11 + 5] - 1.5f) < 1e-6);
    assert_true(fabs(b[8 * 11 + 10] - 0.75f) < 1e-6);
    assert_int_equal(conv2d_out_h(CONV2D_3X3_DOWN_VALID, H + 1), H / 2);
    assert_int_equal(conv2d_out_w(CONV2D_3X3_DOWN_VALID, W + 1), W / 2);
}

/* ---- naive resampling --------------------------------------------------------------------- */

typedef struct naive_ctx {
    int N, C, H, W;
} naive_ctx;

static void nearest_cb(float *out, const float *in, void *p)
{
    naive_ctx *c = p;
    nearest_upsample2x_forward(out, in, c->N, c->C, c->H, c->W);
}
static void avgpool_cb(float *out, const float *in, void *p)
{
    naive_ctx *c = p;
    avgpool2x2_forward(out, in, c->N, c->C, c->H, c->W);
}

static void test_naive_resampling(void **state)
{
    (void)state;
    const int N = 2, C = 3, H = 5, W = 7;
    const size_t n = (size_t)N * C * H * W, nup = 4 * n, ndown = (size_t)N * C * (H / 2) * (W / 2);
    float *x = randn(n, 190, 1), *up = zalloc(nup), *down = zalloc(ndown);
    nearest_upsample2x_forward(up, x, N, C, H, W);
    for (int pl = 0; pl < N * C; pl++)
        for (int m = 0; m < 2 * H; m++)
            for (int l = 0; l < 2 * W; l++)
                assert_true(up[((size_t)pl * 2 * H + m) * 2 * W + l] ==
                            x[((size_t)pl * H + m / 2) * W + l / 2]);
    avgpool2x2_forward(down, x, N, C, H, W);
    for (int pl = 0; pl < N * C; pl++)
        for (int i = 0; i < H / 2; i++)
            for (int j = 0; j < W / 2; j++) {
                const float *p = x + ((size_t)pl * H + 2 * i) * W + 2 * j;
                double want = (p[0] + p[1] + p[W] + p[W + 1]) / 4.0;
                assert_true(fabs(down[((size_t)pl * (H / 2) + i) * (W / 2) + j] - want) < 1e-6);
            }
    /* nearest then mean is the identity */
    float *back = zalloc(n);
    avgpool2x2_forward(back, up, N, C, 2 * H, 2 * W);
    expect_close(back, x, n, 1e-7, "avgpool(nearest(x))");

    naive_ctx ctx = {N, C, H, W};
    float *gu = randn(nup, 191, 1), *gd = randn(ndown, 192, 1), *dx = zalloc(n);
    nearest_upsample2x_backward(dx, gu, N, C, H, W);
    grad_check(nearest_cb, &ctx, x, n, nup, gu, dx, "nearest_upsample2x");
    avgpool2x2_backward(dx, gd, N, C, H, W);
    grad_check(avgpool_cb, &ctx, x, n, ndown, gd, dx, "avgpool2x2");
    for (int pl = 0; pl < N * C; pl++)   /* the dropped last row and column get no gradient */
        for (int c = 0; c < W; c++) assert_true(dx[((size_t)pl * H + H - 1) * W + c] == 0.0f);
    free(x), free(up), free(down), free(back), free(gu), free(gd), free(dx);
}

/* ---- embeddings --------------------------------------------------------------------------- */

static void test_positional_embedding(void **state)
{
    (void)state;
    /* spec §12: nf = 128 gives f_0 = 1, f_1 = 0.863988449, f_63 = 1e-4 */
    const float t[3] = {1.0f, 1000.0f, 0.0f};
    float e[3 * 128];
    embed_positional(e, t, 3, 128);
    assert_true(fabs(e[0] - sin(1.0)) < 1e-7);            /* sin(t f_0), f_0 = 1   */
    assert_true(fabs(e[64] - cos(1.0)) < 1e-7);           /* cos block second      */
    assert_true(fabs(e[1] - sin(0.863988449)) < 1e-7);    /* f_1                   */
    assert_true(fabs(e[63] - sin(1e-4)) < 1e-9);          /* t = 1: sin(f_63)      */
    assert_true(fabs(e[128 + 63] - sin(0.1)) < 2e-6); /* t = 1000: sin(1000 f_63), f_63 = 1e-4 */
    assert_true(fabs(e[128 + 127] - cos(0.1)) < 2e-6);
    for (int j = 0; j < 64; j++) {   /* t = 0: sin 0, cos 1 */
        assert_true(e[256 + j] == 0.0f);
        assert_true(e[256 + 64 + j] == 1.0f);
    }
    /* odd dim: half = 3 (f = 1, 1e-2, 1e-4) and one zero pad */
    float o[2 * 7];
    const float t2[2] = {2.0f, 50.0f};
    embed_positional(o, t2, 2, 7);
    const double f[3] = {1, 1e-2, 1e-4};
    for (int n = 0; n < 2; n++) {
        for (int j = 0; j < 3; j++) {
            assert_true(fabs(o[n * 7 + j] - sin(t2[n] * f[j])) < 1e-6);
            assert_true(fabs(o[n * 7 + 3 + j] - cos(t2[n] * f[j])) < 1e-6);
        }
        assert_true(o[n * 7 + 6] == 0.0f);
    }
}

static void test_gaussian_fourier_embedding(void **state)
{
    (void)state;
    const int N = 3, nf = 5;
    const float sigma[3] = {0.01f, 1.0f, 50.0f};
    float u[3], e[3 * 10];
    for (int n = 0; n < N; n++) u[n] = logf(sigma[n]);
    float *w = randn(nf, 200, 16.0f);   /* N(0, 16^2), as initialised */
    embed_gaussian_fourier(e, u, w, N, nf);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nf; j++) {
            double arg = 2 * M_PI * (double)u[n] * w[j];
            /* the argument is rounded to float as in PyTorch: |arg| ulp(float) of slack */
            double tol = 4 * fabs(arg) * 6e-8 + 1e-6;
            if (!(fabs(e[n * 2 * nf + j] - sin(arg)) < tol)) fail_msg("fourier sin %d %d", n, j);
            if (!(fabs(e[n * 2 * nf + nf + j] - cos(arg)) < tol))
                fail_msg("fourier cos %d %d", n, j);
        }
    /* sigma = 1: ln sigma = 0, so sin block 0 and cos block 1 */
    for (int j = 0; j < nf; j++) {
        assert_true(e[1 * 2 * nf + j] == 0.0f);
        assert_true(e[1 * 2 * nf + nf + j] == 1.0f);
    }
    free(w);
}

/* ---- elementwise -------------------------------------------------------------------------- */

static void test_elementwise(void **state)
{
    (void)state;
    const int N = 2, Ca = 3, Cb = 2, P = 5;
    const size_t na = (size_t)N * Ca * P, nb = (size_t)N * Cb * P;
    float *a = randn(na, 210, 1), *b = randn(nb, 211, 1), *cat = zalloc(na + nb);
    float *a2 = zalloc(na), *b2 = zalloc(nb);
    nn_concat_channels(cat, a, b, N, Ca, Cb, P);
    for (int n = 0; n < N; n++) {
        assert_memory_equal(cat + n * (Ca + Cb) * P, a + n * Ca * P, sizeof(float) * Ca * P);
        assert_memory_equal(cat + n * (Ca + Cb) * P + Ca * P, b + n * Cb * P,
                            sizeof(float) * Cb * P);
    }
    nn_split_channels(a2, b2, cat, N, Ca, Cb, P);
    assert_memory_equal(a2, a, sizeof(float) * na);
    assert_memory_equal(b2, b, sizeof(float) * nb);
    memset(b2, 0, sizeof(float) * nb);
    nn_split_channels(NULL, b2, cat, N, Ca, Cb, P);
    assert_memory_equal(b2, b, sizeof(float) * nb);

    float *bias = randn((size_t)N * Ca, 212, 1), *x = zalloc(na);
    memcpy(x, a, sizeof(float) * na);
    nn_add_channel_bias(x, bias, N, Ca, P);
    for (size_t i = 0; i < na; i++) assert_true(x[i] == a[i] + bias[i / P]);

    float s[4] = {1, 2, 3, 4}, t[4] = {4, 3, 2, 1}, r[4];
    nn_add(r, s, t, 4);
    for (int i = 0; i < 4; i++) assert_true(r[i] == 5.0f);
    nn_add_scaled(s, s, t, 0.5f, 4);   /* aliasing out = a */
    for (int i = 0; i < 4; i++) assert_true(s[i] == 2.5f);
    nn_scale(t, t, -2.0f, 4);
    assert_true(t[0] == -8.0f && t[3] == -2.0f);
    free(a), free(b), free(cat), free(a2), free(b2), free(bias), free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_matches_ref),
        cmocka_unit_test(test_conv2d_geometry),
        cmocka_unit_test(test_conv2d_backward_fd),
        cmocka_unit_test(test_conv2d_batch_invariance),
        cmocka_unit_test(test_winograd_matches_ref),
        cmocka_unit_test(test_winograd_weight_transform),
        cmocka_unit_test(test_winograd_batch_invariance),
        cmocka_unit_test(test_nin),
        cmocka_unit_test(test_nin_is_transposed_conv1x1),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_groupnorm_normalises),
        cmocka_unit_test(test_vector_kernels_match_references),
        cmocka_unit_test(test_groupnorm_backward_fd),
        cmocka_unit_test(test_attn_matches_ref),
        cmocka_unit_test(test_attn_backward_fd),
        cmocka_unit_test(test_attn_closed_forms),
        cmocka_unit_test(test_attn_batch_invariance),
        cmocka_unit_test(test_upfirdn2d_matches_ref_and_adjoint),
        cmocka_unit_test(test_fir_helpers_match_spec),
        cmocka_unit_test(test_fir_upsample_ramp),
        cmocka_unit_test(test_fir_downsample_constant),
        cmocka_unit_test(test_naive_resampling),
        cmocka_unit_test(test_positional_embedding),
        cmocka_unit_test(test_gaussian_fourier_embedding),
        cmocka_unit_test(test_elementwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
