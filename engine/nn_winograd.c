/* 3x3 stride-1 'same' convolutions (CONV2D_3X3: pad 1 on every side) by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * CVPR 2016).  Every 2x2 output tile of a (k, c) pair is
 *     Y = A^T [ U (.) V ] A,   U = G g G^T (4x4, g the 3x3 kernel),   V = B^T d B
 * with d the tile's 4x4 input patch: 16 products instead of 36 multiply-adds.  Summed over the
 * input channels, the products become 16 matrix products, one per frequency f = 4i + j:
 *     M_f (K, T) = U_f (K, C) . V_f (C, T)      T = tile columns
 * which this file computes with its own register-blocked kernels (AVX-512, AVX2+FMA, plain C)
 * on chunks of tile rows small enough to stay in L2.
 *
 * Batch invariance: tiles of every sample in the batch are columns of the same products, so the
 * kernels must give a column the same bits wherever it sits.  They do: each output element is
 * one accumulator that starts at 0 and takes a fused multiply-add per input channel in
 * ascending order (the plain-C kernel: a multiply, then an add), one SIMD lane per column, and
 * a chunk's last block is padded with zero columns and run through the same kernel.  The
 * transforms are per-column adds.  So a sample's output is bit-identical alone or in any batch,
 * and the AVX-512 and AVX2 kernels give the same bits as each other.
 *
 * Layouts (floats):
 *   U   (16, K, C)       the transformed kernels, f-major: conv2d_winograd_weights
 *   V   (16, Cin, CH)    a chunk's transformed input patches, column = tile
 *   M   (16, Coutp, CH)  their products (Coutp = Cout rounded up to 8; extra rows unused)
 * The backward pass (input gradient) is the same-size 3x3 conv of dout with the kernels
 * flipped and transposed; the flip permutes frequencies (G J = P G with P swapping rows 0 and
 * 3 of G), so it reuses U: U'_(4i+j)[c][k] = U_(4p(i)+p(j))[k][c], p = (3, 1, 2, 0). */
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_X86 1
#else
#define WINO_X86 0
#endif

#include "err.h"
#include "nn.h"
#include "nn_vec.h"

enum { MR = 8, NR = 32 }; /* kernel block: 8 output channels x 32 tile columns */

int conv2d_winograd_applies(conv2d_geom g)
{
    return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad_top == 1 && g.pad_left == 1 && g.pad_bottom == 1 &&
           g.pad_right == 1;
}

size_t conv2d_winograd_weight_floats(int C, int K) { return (size_t)16 * K * C; }

void conv2d_winograd_weights(float *U, const float *w, int K, int C)
{
    // w: (K, C, 3, 3)  ->  U: (16, K, C), U[(4i+j), k, c] = (G g G^T)[i][j], in double then rounded
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)k * C + c) * 9;
            double Gg[4][3]; /* G g */
            for (int i = 0; i < 4; i++)
                for (int e = 0; e < 3; e++)
                    Gg[i][e] = G[i][0] * g[0 * 3 + e] + G[i][1] * g[1 * 3 + e] + G[i][2] * g[2 * 3 + e];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const double u = Gg[i][0] * G[j][0] + Gg[i][1] * G[j][1] + Gg[i][2] * G[j][2];
                    U[((size_t)(4 * i + j) * K + k) * C + c] = (float)u;
                }
        }
}

/* ---- the chunk plan ------------------------------------------------------------------------ */

typedef struct plan {
    int th, tw;          /* tiles per sample: rows, columns                 */
    int rows_per_chunk;  /* whole tile rows per chunk                       */
    int ch_max;          /* largest chunk width, a multiple of NR           */
} plan;

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

static plan make_plan(int Cin, int Cout, int H, int W)
{
    plan p;
    p.th = (H + 1) / 2;
    p.tw = (W + 1) / 2;
    /* V and M of one chunk take 64 (Cin + Coutp) CH bytes: aim at about 1 MiB (L2) */
    int target = 16384 / (Cin + round_up(Cout, MR));
    if (target < NR) target = NR;
    p.rows_per_chunk = target / p.tw > 0 ? target / p.tw : 1;
    p.ch_max = round_up(p.rows_per_chunk * p.tw, NR);
    return p;
}

/* a tile row's deinterleaved input rows (8 of Lp floats; the output's 32 fit in them) */
static size_t eo_floats(plan p) { return 8 * ((size_t)round_up(p.tw + 1, 8) + 8); }

static size_t plan_scratch(plan p, int Cin, int Cout)
{
    const size_t LD = (size_t)p.ch_max + 8, Coutp = (size_t)round_up(Cout, MR);
    return 16 * Coutp * Cin /* packed A */ + eo_floats(p) + 16 * ((size_t)Cin * LD + 8) /* V */ +
           16 * (Coutp * LD + 8) /* M */;
}

size_t conv2d_winograd_scratch_floats(int C, int K, int H, int W)
{
    const size_t fwd = plan_scratch(make_plan(C, K, H, W), C, K), bwd = plan_scratch(make_plan(K, C, H, W), K, C);
    return fwd > bwd ? fwd : bwd;
}

/* ---- the 8x32 kernels: c[r][j] = sum over i ascending of a[i][r] * b[i][j] ------------------
 * a: packed (inner, 8); b: (inner, ldb) rows of which columns [0, 32) are read; c: (8, ldc). */

static void kernel_plain(const float *a, const float *b, long ldb, float *c, long ldc, int inner)
{
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < inner; i++)
        for (int r = 0; r < MR; r++) {
            const float ar = a[(size_t)i * MR + r];
            for (int j = 0; j < NR; j++) acc[r][j] += ar * b[(size_t)i * ldb + j];
        }
    for (int r = 0; r < MR; r++) memcpy(c + (size_t)r * ldc, acc[r], sizeof acc[r]);
}

#if WINO_X86
/* The accumulators are arrays indexed by constants only after full unrolling, so they live in
 * registers: 8 ymm (AVX2, one 4x16 quarter at a time) or 16 zmm (AVX-512, the whole block). */
__attribute__((target("avx2,fma"))) static void kernel_avx2(const float *a, const float *b, long ldb, float *c,
                                                             long ldc, int inner)
{
    for (int r0 = 0; r0 < MR; r0 += 4)
        for (int j0 = 0; j0 < NR; j0 += 16) {
            __m256 acc[4][2];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            const float *ap = a + r0, *bp = b + j0;
            for (int i = 0; i < inner; i++, ap += MR, bp += ldb) {
                const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const __m256 x = _mm256_broadcast_ss(ap + r);
                    acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                _mm256_storeu_ps(c + (size_t)(r0 + r) * ldc + j0, acc[r][0]);
                _mm256_storeu_ps(c + (size_t)(r0 + r) * ldc + j0 + 8, acc[r][1]);
            }
        }
}

__attribute__((target("avx512f"))) static void kernel_avx512(const float *a, const float *b, long ldb, float *c,
                                                              long ldc, int inner)
{
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float *ap = a, *bp = b;
    for (int i = 0; i < inner; i++, ap += MR, bp += ldb) {
        const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512 x = _mm512_set1_ps(ap[r]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(c + (size_t)r * ldc, acc[r][0]);
        _mm512_storeu_ps(c + (size_t)r * ldc + 16, acc[r][1]);
    }
}
#endif

typedef void kernel_fn(const float *a, const float *b, long ldb, float *c, long ldc, int inner);

int winograd_kernel_available(winograd_kernel kind)
{
    switch (kind) {
    case WINOGRAD_PLAIN: return 1;
#if WINO_X86
    case WINOGRAD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case WINOGRAD_AVX512: return __builtin_cpu_supports("avx512f");
#endif
    default: return 0;
    }
}

static kernel_fn *pick_kernel(winograd_kernel kind)
{
    if (kind == WINOGRAD_AUTO)
        kind = winograd_kernel_available(WINOGRAD_AVX512) ? WINOGRAD_AVX512
               : winograd_kernel_available(WINOGRAD_AVX2) ? WINOGRAD_AVX2
                                                          : WINOGRAD_PLAIN;
    SC_ASSERT(winograd_kernel_available(kind));
    switch (kind) {
#if WINO_X86
    case WINOGRAD_AVX2: return kernel_avx2;
    case WINOGRAD_AVX512: return kernel_avx512;
#endif
    default: return kernel_plain;
    }
}

/* ---- transforms -------------------------------------------------------------------------
 * Eight tile columns at a time (nn_v8f lanes = tiles t..t+7 of one tile row): a lane's adds are
 * the same whichever lane or clone runs them, so a tile's bits do not depend on its place.
 * Rows of V and M are LD = CH + 8 floats apart: a row's last vector may spill into its own
 * padding, and the 16 frequency planes do not sit a power of two apart (which made the 16
 * streams of a transform fight for the same L1 sets). */

enum { PADL = 8 };

/* The even and odd columns of input row y (zero outside the plane and past W), as tile t reads
 * them: ev[t] = x[y][2t-1], od[t] = x[y][2t], t = 0..tw (then zeros up to Lp). */
static inline __attribute__((always_inline)) void deinterleave_row(float *ev, float *od, const float *x, int H, int W,
                                                                   int y, int Lp)
{
    memset(ev, 0, sizeof(float) * Lp);
    memset(od, 0, sizeof(float) * Lp);
    if (y < 0 || y >= H) return;
    const float *row = x + (size_t)y * W;
    const nn_v8i evens = {0, 2, 4, 6, 8, 10, 12, 14}, odds = {1, 3, 5, 7, 9, 11, 13, 15};
    int t = 0;
    for (; 2 * t + 16 <= W; t += 8) { /* row[2t .. 2t+16): evens to od[t..], odds to ev[t+1..] */
        const nn_v8f a = nn_v8f_load(row + 2 * t), b = nn_v8f_load(row + 2 * t + 8);
        nn_v8f_store(od + t, __builtin_shuffle(a, b, evens));
        nn_v8f_store(ev + t + 1, __builtin_shuffle(a, b, odds));
    }
    for (; 2 * t < W; t++) {
        od[t] = row[2 * t];
        if (2 * t + 1 < W) ev[t + 1] = row[2 * t + 1];
    }
}

/* V columns [col0, col0 + tw) for tile row ty of one channel plane x (H, W): V = B^T d B with
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].  Tile t's patch covers input rows 2ty-1..2ty+2
 * and columns 2t-1..2t+2 (zero outside the plane).  eo: 8 Lp floats of scratch. */
static inline __attribute__((always_inline)) void input_tile_row(float *V, size_t fstride, size_t col0,
                                                                 const float *x, int H, int W, int ty, int tw,
                                                                 int Lp, float *eo)
{
    float *ev[4], *od[4];
    for (int q = 0; q < 4; q++) {
        ev[q] = eo + (size_t)(2 * q) * Lp;
        od[q] = eo + (size_t)(2 * q + 1) * Lp;
        deinterleave_row(ev[q], od[q], x, H, W, 2 * ty - 1 + q, Lp);
    }
    float *v = V + col0;
    for (int t = 0; t < tw; t += 8) {
        nn_v8f e[4], e1[4], o[4], o1[4];
        for (int q = 0; q < 4; q++) {
            e[q] = nn_v8f_load(ev[q] + t), e1[q] = nn_v8f_load(ev[q] + t + 1);
            o[q] = nn_v8f_load(od[q] + t), o1[q] = nn_v8f_load(od[q] + t + 1);
        }
        /* B^T over rows: s_i, at columns 2t (e), 2t+1 (o), 2t+2 (e1), 2t+3 (o1) */
        const nn_v8f se[4] = {e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3]};
        const nn_v8f so[4] = {o[0] - o[2], o[1] + o[2], o[2] - o[1], o[1] - o[3]};
        const nn_v8f se1[4] = {e1[0] - e1[2], e1[1] + e1[2], e1[2] - e1[1], e1[1] - e1[3]};
        const nn_v8f so1[4] = {o1[0] - o1[2], o1[1] + o1[2], o1[2] - o1[1], o1[1] - o1[3]};
        /* then over columns */
        for (int i = 0; i < 4; i++) {
            float *vi = v + (size_t)(4 * i) * fstride + t;
            nn_v8f_store(vi, se[i] - se1[i]);
            nn_v8f_store(vi + fstride, so[i] + se1[i]);
            nn_v8f_store(vi + 2 * fstride, se1[i] - so[i]);
            nn_v8f_store(vi + 3 * fstride, so[i] - so1[i]);
        }
    }
}

/* One tile row of one output plane y (H, W) from m_f = M + f * fstride (tw columns each):
 * Y = A^T m A + bias, A^T = [1 1 1 0; 0 1 -1 -1]; writes rows 2ty and 2ty+1 where inside.
 * yrow: 32 floats of scratch. */
static inline __attribute__((always_inline)) void output_tile_row(float *y, int H, int W, int ty, int tw,
                                                                  const float *M, size_t fstride, float bias,
                                                                  float *yrow)
{
    const nn_v8f vb = nn_v8f_splat(bias);
    float *row0 = y + (size_t)(2 * ty) * W, *row1 = 2 * ty + 1 < H ? row0 + W : NULL;
    for (int t = 0; t < tw; t += 8) {
        nn_v8f m[16];
        for (int f = 0; f < 16; f++) m[f] = nn_v8f_load(M + (size_t)f * fstride + t);
        nn_v8f a0[4], a1[4];
        for (int j = 0; j < 4; j++) {
            a0[j] = m[j] + m[4 + j] + m[8 + j];
            a1[j] = m[4 + j] - m[8 + j] - m[12 + j];
        }
        const nn_v8f y00 = (a0[0] + a0[1] + a0[2]) + vb, y01 = (a0[1] - a0[2] - a0[3]) + vb;
        const nn_v8f y10 = (a1[0] + a1[1] + a1[2]) + vb, y11 = (a1[1] - a1[2] - a1[3]) + vb;
        /* interleave: output columns 2t.. = y00[0], y01[0], y00[1], ... */
        const nn_v8i lo = {0, 8, 1, 9, 2, 10, 3, 11}, hi = {4, 12, 5, 13, 6, 14, 7, 15};
        const int whole = 2 * t + 16 <= W; /* else through yrow, then the W - 2t that fit */
        float *r0 = whole ? row0 + 2 * t : yrow, *r1 = whole ? (row1 ? row1 + 2 * t : yrow + 16) : yrow + 16;
        nn_v8f_store(r0, __builtin_shuffle(y00, y01, lo)), nn_v8f_store(r0 + 8, __builtin_shuffle(y00, y01, hi));
        nn_v8f_store(r1, __builtin_shuffle(y10, y11, lo)), nn_v8f_store(r1 + 8, __builtin_shuffle(y10, y11, hi));
        if (!whole) {
            memcpy(row0 + 2 * t, yrow, sizeof(float) * (W - 2 * t));
            if (row1) memcpy(row1 + 2 * t, yrow + 16, sizeof(float) * (W - 2 * t));
        }
    }
}

/* ---- the convolution --------------------------------------------------------------------- */

/* out (N, Cout, H, W) = the 3x3 same conv of in (N, Cin, H, W) whose frequency-f matrix is
 * A_f(r, i) = U[ff * K * C + r * rs + i * is] with ff = f (forward) or the flipped frequency. */
NN_VEC_CLONES
static void winograd_run(float *out, const float *in, const float *U, const float *bias, int N, int Cin, int H, int W,
                         int Cout, int backward, int K, int C, kernel_fn *kernel, float *scratch)
{
    static const int flip[4] = {3, 1, 2, 0};
    const plan p = make_plan(Cin, Cout, H, W);
    const int Coutp = round_up(Cout, MR), R = N * p.th, Lp = round_up(p.tw + 1, 8) + 8;
    const size_t plane = (size_t)H * W;
    /* forward: A_f = U_f (K = Cout, C = Cin), row stride C;  backward: A_f = U_f'^T, row stride 1 */
    const size_t rs = backward ? 1 : (size_t)C, is = backward ? (size_t)C : 1;
    /* the kernels' A operands, once per call: apack (16, Coutp / 8, Cin, 8), zero rows past Cout */
    float *apack = scratch, *eo = apack + (size_t)16 * Coutp * Cin, *V = eo + eo_floats(p);
    for (int f = 0; f < 16; f++) {
        const int ff = backward ? 4 * flip[f / 4] + flip[f % 4] : f;
        const float *A = U + (size_t)ff * K * C;
        for (int rb = 0; rb < Coutp; rb += MR) {
            float *a = apack + ((size_t)f * Coutp + rb) * Cin;
            for (int r = 0; r < MR; r++)
                if (rb + r < Cout)
                    for (int i = 0; i < Cin; i++) a[(size_t)i * MR + r] = A[(size_t)(rb + r) * rs + (size_t)i * is];
                else
                    for (int i = 0; i < Cin; i++) a[(size_t)i * MR + r] = 0.0f;
        }
    }
    for (int r0 = 0; r0 < R; r0 += p.rows_per_chunk) {
        const int r1 = r0 + p.rows_per_chunk < R ? r0 + p.rows_per_chunk : R;
        const int ncols = (r1 - r0) * p.tw, CH = round_up(ncols, NR), LD = CH + PADL;
        const size_t vf = (size_t)Cin * LD + PADL, mf = (size_t)Coutp * LD + PADL; /* plane strides */
        float *M = V + 16 * vf;
        /* the output transform's last vector of a chunk reads up to 8 columns past CH: keep
         * them finite (their lanes are discarded) */
        for (int f = 0; f < 16; f++)
            for (int k = 0; k < Coutp; k++) memset(M + f * mf + (size_t)k * LD + CH, 0, sizeof(float) * PADL);
        for (int c = 0; c < Cin; c++) {
            for (int r = r0; r < r1; r++) {
                const int n = r / p.th, ty = r % p.th;
                input_tile_row(V + (size_t)c * LD, vf, (size_t)(r - r0) * p.tw, in + ((size_t)n * Cin + c) * plane, H,
                               W, ty, p.tw, Lp, eo);
            }
            for (int f = 0; f < 16; f++) memset(V + f * vf + (size_t)c * LD + ncols, 0, sizeof(float) * (CH - ncols));
        }
        for (int f = 0; f < 16; f++)
            for (int rb = 0; rb < Coutp; rb += MR) {
                const float *a = apack + ((size_t)f * Coutp + rb) * Cin;
                for (int jb = 0; jb < CH; jb += NR)
                    kernel(a, V + f * vf + jb, LD, M + f * mf + (size_t)rb * LD + jb, LD, Cin);
            }
        for (int k = 0; k < Cout; k++)
            for (int r = r0; r < r1; r++) {
                const int n = r / p.th, ty = r % p.th;
                output_tile_row(out + ((size_t)n * Cout + k) * plane, H, W, ty, p.tw,
                                M + (size_t)k * LD + (size_t)(r - r0) * p.tw, mf, bias ? bias[k] : 0.0f, eo);
            }
    }
}

void conv2d_winograd_forward_with(winograd_kernel kind, float *out, const float *in, const float *U, const float *b,
                                  int N, int C, int H, int W, int K, float *scratch)
{
    SC_ASSERT(N >= 0 && C >= 1 && H >= 1 && W >= 1 && K >= 1);
    winograd_run(out, in, U, b, N, C, H, W, K, 0, K, C, pick_kernel(kind), scratch);
}

void conv2d_winograd_backward_input_with(winograd_kernel kind, float *din, const float *dout, const float *U, int N,
                                         int C, int H, int W, int K, float *scratch)
{
    SC_ASSERT(N >= 0 && C >= 1 && H >= 1 && W >= 1 && K >= 1);
    winograd_run(din, dout, U, NULL, N, K, H, W, C, 1, K, C, pick_kernel(kind), scratch);
}

void conv2d_winograd_forward(float *out, const float *in, const float *U, const float *b, int N, int C, int H, int W,
                             int K, float *scratch)
{
    conv2d_winograd_forward_with(WINOGRAD_AUTO, out, in, U, b, N, C, H, W, K, scratch);
}

void conv2d_winograd_backward_input(float *din, const float *dout, const float *U, int N, int C, int H, int W, int K,
                                    float *scratch)
{
    conv2d_winograd_backward_input_with(WINOGRAD_AUTO, din, dout, U, N, C, H, W, K, scratch);
}
