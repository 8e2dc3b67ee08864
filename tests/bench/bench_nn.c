/* Convolution throughput of the network layers (engine/nn.h): GFLOP/s of conv2d_forward (and of
 * conv2d_backward_input) for the 3x3 convs that dominate NCSN++/DDPM++ at CIFAR-10 scale,
 * beside what cblas_sgemm itself reaches on a 1024^3 product in the same run, with OpenBLAS on
 * 1 and on 2 threads.  The ratio is the share of raw GEMM speed the im2col path keeps. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "nn.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *filled(size_t n, unsigned seed)
{
    float *x = malloc(sizeof(float) * n);
    if (!x) {
        fprintf(stderr, "bench_nn: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
    return x;
}

/* Best of 3 timings, each repeating the call until at least 0.2 s have passed. */
typedef void (*bench_fn)(void *ctx);

static double seconds_per_call(bench_fn f, void *ctx)
{
    f(ctx);   /* warm-up: page faults, OpenBLAS thread start */
    double best = 1e30;
    for (int trial = 0; trial < 3; trial++) {
        long reps = 0;
        double t0 = now(), dt;
        do {
            f(ctx);
            reps++;
            dt = now() - t0;
        } while (dt < 0.2);
        if (dt / reps < best) best = dt / reps;
    }
    return best;
}

typedef struct gemm_ctx {
    int n;
    const float *a, *b;
    float *c;
} gemm_ctx;

static void run_gemm(void *p)
{
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b,
                g->n, 0.0f, g->c, g->n);
}

typedef struct conv_ctx {
    int N, C, H, W, K;
    const float *x, *w, *b, *dy;
    float *y, *dx, *scratch;
} conv_ctx;

static void run_fwd(void *p)
{
    conv_ctx *c = p;
    conv2d_forward(c->y, c->x, c->w, c->b, c->N, c->C, c->H, c->W, c->K, CONV2D_3X3, c->scratch);
}

static void run_bwd(void *p)
{
    conv_ctx *c = p;
    conv2d_backward_input(c->dx, c->dy, c->w, c->N, c->C, c->H, c->W, c->K, CONV2D_3X3, c->scratch);
}

int main(void)
{
    enum { GN = 1024 };
    float *ga = filled((size_t)GN * GN, 1), *gb = filled((size_t)GN * GN, 2);
    float *gc = filled((size_t)GN * GN, 3);
    gemm_ctx gctx = {GN, ga, gb, gc};
    const struct { int C, H; } shapes[] = {{64, 32}, {128, 16}};
    const int batches[] = {1, 8, 32};

    printf(
        "conv2d 3x3 stride 1 pad 1, C -> C, im2col + one sgemm per sample; GFLOP/s = 2*N*C*C*9*H*W "
        "/ time\n");
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        double gemm_gf = 2.0 * GN * GN * GN / seconds_per_call(run_gemm, &gctx) / 1e9;
        printf("\nOpenBLAS threads %d: cblas_sgemm 1024x1024x1024: %.1f GFLOP/s\n", threads,
               gemm_gf);
        printf("  %-22s %5s  %12s %7s  %12s %7s\n", "layer", "batch", "fwd GFLOP/s", "/sgemm",
               "bwd GFLOP/s", "/sgemm");
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int C = shapes[s].C, H = shapes[s].H;
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                const int N = batches[bi];
                const size_t n = (size_t)N * C * H * H;
                conv_ctx c = {N, C, H, H, C, filled(n, 4), filled((size_t)C * C * 9, 5),
                              filled(C, 6), filled(n, 7), filled(n, 8), filled(n, 9),
                              filled(conv2d_scratch_floats(C, H, H, CONV2D_3X3), 10)};
                const double flops = 2.0 * N * C * C * 9 * H * H;
                double fwd = flops / seconds_per_call(run_fwd, &c) / 1e9;
                double bwd = flops / seconds_per_call(run_bwd, &c) / 1e9;
                char name[64];
                snprintf(name, sizeof name, "%d->%d at %dx%d", C, C, H, H);
                printf("  %-22s %5d  %12.1f %7.2f  %12.1f %7.2f\n", name, N, fwd, fwd / gemm_gf,
                       bwd, bwd / gemm_gf);
                free((void *)c.x), free((void *)c.w), free((void *)c.b), free((void *)c.dy);
                free(c.y), free(c.dx), free(c.scratch);
            }
        }
    }
    free(ga), free(gb), free(gc);
    return 0;
}
