/* Whole-network throughput (engine/net.h): one network per architecture family, built with
 * random weights, timed through net_forward and net_forward + net_backward (the VJP with
 * respect to the input) at batch 1, 8, 32 and 64 with OpenBLAS on 1 and on 2 threads, beside
 * the cblas_sgemm rate measured in the same run.  Prints figures, never fails on speed.
 *
 * FLOPs per sample are counted from the tape (the ops in n->ops), multiply-adds as 2:
 *   conv       2 * K * C * kh * kw * H' * W'      (K out channels, H'xW' the output)
 *   NIN        2 * C * O * P
 *   dense      2 * Cin * Cout
 *   attention  4 * C * P * P                      (q^T k and w v; softmax not counted)
 * Elementwise ops (GroupNorm, SiLU, adds, biases, FIR and naive resampling, concat, affine,
 * embeddings) are O(elements) and are not counted.  The fwd+VJP rate counts the VJP as 2x the
 * forward FLOPs (the usual training-step convention); the input-only VJP the engine runs does
 * less (no weight gradients; printed per network as "VJP work"), so that column overstates
 * the arithmetic actually done.  tools/bench_torch.py counts PyTorch's the same way from the
 * same configs, so the C/PyTorch ratios are like for like.
 *
 * Options: --json FILE (results for tools/bench_torch.py --c-results; default bench_net.json
 * beside the executable, i.e. build/bench/bench_net.json under `make bench`; --no-json),
 * --min-time S (default 1: each timing repeats the call for at least S seconds; the median of
 * 3 is reported), --nets a,b (subset of ddpmpp, ncsnpp, ddpm, skip), --batches 1,8 (default
 * 1,8,32,64), --threads 1,2 (OpenBLAS threads, default 1,2), --workers W (default 2; 0 off: also
 * W threads at once, each evaluating whole batches with its own workspace and OpenBLAS on 1
 * thread, as the server uses the cores; their samples/s summed), --conv im2col (the 3x3 'same'
 * convs through im2col + sgemm instead of Winograd, for comparison), --profile-batch N (default 32) /
 * --no-profile: the per-op-kind breakdown of forward and VJP time printed after each table,
 * from instrumented copies of the tape loops, at the first thread count. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include "net.h"
#include "net_build.h"
#include "nn.h"
#include "rng.h"

/* ---- the four networks ------------------------------------------------------------------------
 * Official config field names (model.* plus image_size/num_channels/centered), exactly as
 * tools/bench_torch.py's NETS holds them; bench_torch.py refuses --c-results whose configs
 * differ from its own. */
typedef struct bench_def {
    const char *key;
    const char *desc;
    const char *arch;
} bench_def;

static const bench_def NETS[] = {
    {"ddpmpp", "DDPM++ (ncsnpp biggan, positional, no FIR, skip_rescale, centered; as tools/configs/fmnist_vp.json)",
     "{\"name\":\"ncsnpp\",\"nf\":32,\"ch_mult\":[1,2,2],\"num_res_blocks\":2,\"attn_resolutions\":[7],"
     "\"resamp_with_conv\":true,\"fir\":false,\"skip_rescale\":true,\"resblock_type\":\"biggan\","
     "\"progressive\":\"none\",\"progressive_input\":\"none\",\"progressive_combine\":\"sum\","
     "\"embedding_type\":\"positional\",\"conditional\":true,\"scale_by_sigma\":false,\"dropout\":0.0,"
     "\"image_size\":28,\"num_channels\":1,\"centered\":true}"},
    {"ncsnpp", "NCSN++ (ncsnpp biggan, FIR, Fourier, progressive_input residual, scale_by_sigma)",
     "{\"name\":\"ncsnpp\",\"nf\":32,\"ch_mult\":[1,2,2],\"num_res_blocks\":2,\"attn_resolutions\":[14],"
     "\"resamp_with_conv\":true,\"fir\":true,\"skip_rescale\":true,\"resblock_type\":\"biggan\","
     "\"progressive\":\"none\",\"progressive_input\":\"residual\",\"progressive_combine\":\"sum\","
     "\"embedding_type\":\"fourier\",\"conditional\":true,\"scale_by_sigma\":true,\"dropout\":0.0,"
     "\"image_size\":28,\"num_channels\":1,\"centered\":false}"},
    {"ddpm", "DDPM (ddpm, positional, 32 groups, attention at 16)",
     "{\"name\":\"ddpm\",\"nf\":32,\"ch_mult\":[1,2,2],\"num_res_blocks\":2,\"attn_resolutions\":[16],"
     "\"resamp_with_conv\":true,\"conditional\":true,\"scale_by_sigma\":false,\"dropout\":0.0,"
     "\"image_size\":32,\"num_channels\":3,\"centered\":true}"},
    {"skip", "NCSN++ output_skip + input_skip (sum), FIR, Fourier, small",
     "{\"name\":\"ncsnpp\",\"nf\":16,\"ch_mult\":[1,2,2],\"num_res_blocks\":2,\"attn_resolutions\":[16],"
     "\"resamp_with_conv\":true,\"fir\":true,\"skip_rescale\":true,\"resblock_type\":\"biggan\","
     "\"progressive\":\"output_skip\",\"progressive_input\":\"input_skip\",\"progressive_combine\":\"sum\","
     "\"embedding_type\":\"fourier\",\"conditional\":true,\"scale_by_sigma\":true,\"dropout\":0.0,"
     "\"image_size\":32,\"num_channels\":3,\"centered\":false}"},
};
enum { N_NETS = sizeof NETS / sizeof NETS[0] };

#define MAX_LIST 8

typedef struct opts {
    char json[4096]; /* "" for none */
    double min_time;
    int net_on[N_NETS];
    int batches[MAX_LIST], n_batches;
    int threads[MAX_LIST], n_threads;
    int profile, profile_batch;
    int workers;     /* > 1: also W threads, each its own workspace, OpenBLAS on 1 thread */
    int im2col_only; /* --conv im2col: the 3x3 convs without Winograd (the sgemm path)     */
} opts;

/* ---- helpers ------------------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "bench_net: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float *normal_floats(size_t n, uint64_t stream, float mean, float std)
{
    float *x = xmalloc(sizeof(float) * n);
    rng_stream r;
    rng_init(&r, 0x5c07edb3, stream);
    rng_normal(&r, x, n);
    for (size_t i = 0; i < n; i++) x[i] = mean + std * x[i];
    return x;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Deterministic random weights, a stream per tensor name (independent of build order):
 * conv [K,C,kh,kw], Linear [O,I] and NIN W [C,O] ~ normal(0, 1/sqrt(fan_in)); 1-D tensors:
 * GroupNorm weight 1 + 0.1 normal, biases 0.1 normal, the Fourier W 16 normal
 * (fourier_scale).  Non-degenerate, so activations stay O(1) (no denormals). */
static int fetch_random(void *ctx, const char *name, int ndim, const int64_t *shape, float *out, sc_error *err)
{
    (void)ctx;
    (void)err;
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    double mean = 0.0, std;
    if (ndim == 4) std = 1.0 / sqrt((double)(shape[1] * shape[2] * shape[3]));
    else if (ndim == 2) std = 1.0 / sqrt((double)(ends_with(name, ".W") ? shape[0] : shape[1]));
    else if (ends_with(name, "weight")) mean = 1.0, std = 0.1; /* GroupNorm gamma */
    else if (ends_with(name, ".W")) std = 16.0;                /* Fourier projection */
    else std = 0.1;                                            /* biases, GroupNorm beta */
    rng_stream r;
    rng_init(&r, 20240611, fnv1a(name));
    rng_normal(&r, out, count);
    for (size_t i = 0; i < count; i++) out[i] = (float)(mean + std * out[i]);
    return 0;
}

typedef void (*bench_fn)(void *ctx);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* CPU seconds per wall second of the last seconds_per_call: about 1.0 on one thread that had
 * its core to itself; below that, the process waited for a core (the machine was busy). */
static double g_cpu_per_wall;

/* Median of 3 trials, each repeating f until at least min_time seconds have passed. */
static double seconds_per_call(bench_fn f, void *ctx, double min_time)
{
    f(ctx); /* warm-up: page faults, OpenBLAS thread start */
    double t[3];
    const double c0 = cpu_now(), w0 = now();
    for (int trial = 0; trial < 3; trial++) {
        long reps = 0;
        double t0 = now(), dt;
        do {
            f(ctx);
            reps++;
            dt = now() - t0;
        } while (dt < min_time);
        t[trial] = dt / reps;
    }
    g_cpu_per_wall = (cpu_now() - c0) / (now() - w0);
    qsort(t, 3, sizeof t[0], cmp_double);
    return t[1];
}

/* The first three fields of /proc/loadavg (other work on the machine skews the timings). */
static const char *loadavg(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        double a, b, c;
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
        fclose(f);
    }
    return buf;
}

/* Peak resident memory in MiB (ru_maxrss is in KiB on Linux). */
static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Resets the kernel's peak-RSS mark (Linux >= 4.0: "5" > clear_refs), so each network's peak
 * is its own; returns 0 when that is not possible (then the figure is the process's peak). */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok;
}

/* ---- SGEMM reference rates --------------------------------------------------------------------- */

typedef struct gemm_ctx {
    int M, Nn, K;
    const float *a, *b;
    float *c;
} gemm_ctx;

static void run_gemm(void *p)
{
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->M, g->Nn, g->K, 1.0f, g->a, g->K, g->b, g->Nn, 0.0f,
                g->c, g->Nn);
}

/* 1024^3; 256x784x288 (a 3x3 conv over 32 channels at 28x28 into 256 outputs, the shape the
 * targets are usually quoted for); 32x784x288 (the per-sample GEMM of the 32->32 3x3 convs at
 * 28x28 these networks actually issue). */
enum { N_GEMM = 3 };
static const int GEMM_SHAPES[N_GEMM][3] = {{1024, 1024, 1024}, {256, 784, 288}, {32, 784, 288}};
static const char *const GEMM_NAMES[N_GEMM] = {"1024x1024x1024", "256x784x288", "32x784x288"};

static double sgemm_gflops(int shape, double min_time, double *cpu)
{
    const int M = GEMM_SHAPES[shape][0], Nn = GEMM_SHAPES[shape][1], K = GEMM_SHAPES[shape][2];
    gemm_ctx g = {M, Nn, K, normal_floats((size_t)M * K, 1, 0, 1), normal_floats((size_t)K * Nn, 2, 0, 1),
                  normal_floats((size_t)M * Nn, 3, 0, 1)};
    double s = seconds_per_call(run_gemm, &g, min_time);
    if (cpu) *cpu = g_cpu_per_wall;
    free((void *)g.a), free((void *)g.b), free(g.c);
    return 2.0 * M * Nn * K / s / 1e9;
}

/* ---- FLOP counting from the tape --------------------------------------------------------------- */

enum { FK_CONV, FK_NIN, FK_DENSE, FK_ATTN, FK_COUNT };
static const char *const FK_NAMES[FK_COUNT] = {"conv", "NIN", "dense", "attention"};

typedef struct flops {
    double kind[FK_COUNT]; /* forward, per sample */
    double fwd;            /* sum of kind[]       */
    double vjp;            /* the input-only VJP net_backward runs, per sample */
} flops;

static int needs_backward(const net *n, const net_op *op)
{
    if (!n->bufs[op->out].grad) return 0;
    return n->bufs[op->in0].grad || (op->in1 >= 0 && n->bufs[op->in1].grad) ||
           (op->in2 >= 0 && n->bufs[op->in2].grad);
}

static flops count_flops(const net *n)
{
    flops f;
    memset(&f, 0, sizeof f);
    for (int i = 0; i < n->n_ops; i++) {
        const net_op *op = &n->ops[i];
        const net_buf *a = op->in0 >= 0 ? &n->bufs[op->in0] : NULL, *o = &n->bufs[op->out];
        double fw = 0, bw = 0;
        int kind = -1;
        switch (op->kind) {
        case OP_CONV:
            kind = FK_CONV;
            fw = 2.0 * o->C * a->C * op->geom.kh * op->geom.kw * o->H * o->W;
            bw = fw; /* dcol = w^T dout: the same product */
            break;
        case OP_NIN:
            kind = FK_NIN;
            fw = bw = 2.0 * a->C * o->C * a->H * a->W;
            break;
        case OP_DENSE:
            kind = FK_DENSE;
            fw = 2.0 * a->C * o->C;
            bw = a->grad ? fw : 0; /* time-embedding denses get no gradient */
            break;
        case OP_ATTN: {
            const double P = (double)a->H * a->W;
            kind = FK_ATTN;
            fw = 4.0 * a->C * P * P;
            bw = 2 * fw; /* dv, dw, dq, dk: four products of 2 C P^2 */
            break;
        }
        default: break;
        }
        if (kind < 0) continue;
        f.kind[kind] += fw;
        f.fwd += fw;
        if (needs_backward(n, op)) f.vjp += bw;
    }
    return f;
}

/* ---- the timed calls --------------------------------------------------------------------------- */

typedef struct run_ctx {
    const net *n;
    net_workspace *ws;
    int N, vjp;
} run_ctx;

static void run_net(void *p)
{
    run_ctx *c = p;
    net_forward(c->n, c->ws, c->N);
    if (c->vjp) {
        sc_error err;
        if (net_backward(c->n, c->ws, c->N, &err)) {
            fprintf(stderr, "bench_net: net_backward: %s\n", err.msg);
            exit(1);
        }
    }
}

/* Server-style use of the cores: W threads, each evaluating its own batches of N with its own
 * workspace, OpenBLAS on 1 thread (the server runs one chunk per core). */
typedef struct worker {
    run_ctx rc;
    double deadline;
    long calls;
    double elapsed;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    const double t0 = now();
    long k = 0;
    do {
        run_net(&w->rc);
        k++;
    } while (now() < w->deadline);
    w->calls = k;
    w->elapsed = now() - t0;
    return NULL;
}

/* Samples per second of W workers together: median of 3 trials of >= min_time, each worker's
 * rate (its calls x N / its own elapsed time) summed; the first trial is a warm-up. */
static double workers_rate(worker *w, int W, int N, double min_time, double *cpu)
{
    double rate[4];
    const double c0 = cpu_now(), w0 = now();
    for (int trial = 0; trial < 4; trial++) {
        pthread_t tid[16];
        const double deadline = now() + (trial ? min_time : 0);
        for (int i = 0; i < W; i++) {
            w[i].deadline = deadline;
            if (pthread_create(&tid[i], NULL, worker_main, &w[i])) {
                fprintf(stderr, "bench_net: cannot start a worker thread\n");
                exit(1);
            }
        }
        rate[trial] = 0;
        for (int i = 0; i < W; i++) {
            pthread_join(tid[i], NULL);
            rate[trial] += w[i].calls * (double)N / w[i].elapsed;
        }
    }
    *cpu = (cpu_now() - c0) / (now() - w0);
    qsort(rate + 1, 3, sizeof rate[0], cmp_double);
    return rate[2];
}

/* Fills the inputs of a batch of N: x, the time input (ln sigma for Fourier embeddings, a label
 * for positional ones), the sigma divided by, and the probe v in the output's gradient. */
static void fill_inputs(const net *n, const net_config *c, net_workspace *ws, int N)
{
    const size_t D = (size_t)c->channels * c->image_size * c->image_size;
    float *x = normal_floats((size_t)N * D, 11, c->centered ? 0.0f : 0.5f, 0.5f);
    float *v = normal_floats((size_t)N * D, 12, 0.0f, 1.0f);
    memcpy(net_data(n, ws, n->input, N), x, sizeof(float) * N * D);
    memcpy(net_grad(n, ws, n->output, N), v, sizeof(float) * N * D);
    float *t = net_data(n, ws, n->time_input, N);
    for (int i = 0; i < N; i++) t[i] = c->fourier ? logf(0.5f + 0.1f * (i % 4)) : 500.0f + (float)i;
    if (n->aux_input >= 0) {
        float *s = net_data(n, ws, n->aux_input, N);
        for (int i = 0; i < N; i++) s[i] = 0.5f + 0.1f * (i % 4);
    }
    free(x), free(v);
}

/* ---- per-op-kind profile: instrumented copies of net_forward / net_backward --------------------- */

enum {
    PK_IM2COL, PK_CONV_GEMM, PK_COL2IM, PK_WINO_FWD, PK_WINO_BWD, PK_NIN, PK_DENSE, PK_GROUPNORM, PK_SILU, PK_ADD, PK_BIAS, PK_ATTN,
    PK_FIR, PK_NAIVE, PK_CONCAT, PK_OTHER, PK_ZERO, PK_ACCUM, PK_COUNT
};
static const char *const PK_NAMES[PK_COUNT] = {
    "conv im2col+bias", "conv sgemm", "conv col2im", "conv 3x3 winograd", "conv 3x3 winograd^T", "NIN (sgemm)", "dense (sgemv)", "groupnorm(+silu)", "silu",
    "add (residual)", "temb bias", "attention core", "FIR up/down/blur", "nearest/avgpool", "concat/split",
    "affine/div/embed", "zero grads", "grad accumulate"};

/* The per-sample sgemms conv2d_forward / conv2d_backward_input issue, alone, on the data
 * left in scratch (the last sample's im2col / dcol): the GEMM share of a conv's time. */
static void conv_gemms(const net_op *op, const net_buf *a, const net_buf *o, int N, const float *in,
                       float *scratch, float *dst, int backward)
{
    const conv2d_geom g = op->geom;
    const int pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && !g.pad_top && !g.pad_left &&
                          !g.pad_bottom && !g.pad_right;
    const int K = o->C, Po = o->H * o->W, CKK = a->C * g.kh * g.kw;
    for (int s = 0; s < N; s++) {
        if (!backward) {
            const float *col = pointwise ? in + (size_t)s * a->C * a->H * a->W : scratch;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, Po, CKK, 1.0f, op->w, CKK, col, Po, 0.0f,
                        dst + (size_t)s * K * Po, Po);
        } else {
            const float *dy = in + (size_t)s * K * Po;
            float *dcol = pointwise ? dst + (size_t)s * a->C * a->H * a->W : scratch;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, Po, K, 1.0f, op->w, CKK, dy, Po, 0.0f, dcol,
                        Po);
        }
    }
}

#define D(id) net_data(n, ws, (id), N)
#define G(id) net_grad(n, ws, (id), N)

static int op_profile_kind(net_op_kind k)
{
    switch (k) {
    case OP_NIN: return PK_NIN;
    case OP_DENSE: return PK_DENSE;
    case OP_GROUPNORM: return PK_GROUPNORM;
    case OP_SILU: return PK_SILU;
    case OP_ADD: return PK_ADD;
    case OP_BIAS: return PK_BIAS;
    case OP_ATTN: return PK_ATTN;
    case OP_FIR_UP:
    case OP_FIR_DOWN:
    case OP_FIR_BLUR: return PK_FIR;
    case OP_NEAREST_UP:
    case OP_AVGPOOL: return PK_NAIVE;
    case OP_CONCAT: return PK_CONCAT;
    default: return PK_OTHER;
    }
}

/* One forward pass, op by op as net_forward runs it (net_forward_op), adding each op's seconds
 * to t[kind] (an im2col conv's whole time to PK_IM2COL; profile() moves its sgemm share). */
static void profile_forward(const net *n, net_workspace *ws, int N, double *t)
{
    for (int i = 0; i < n->n_ops;) {
        const net_op *op = &n->ops[i];
        const double t0 = now();
        i += net_forward_op(n, ws, N, i); /* a GroupNorm fused with its SiLU: both timed here */
        t[op->kind != OP_CONV ? op_profile_kind(op->kind) : op->wino ? PK_WINO_FWD : PK_IM2COL] += now() - t0;
    }
}

/* One backward pass as net_backward runs it (after a forward), op by op (net_backward_op: each
 * op's time includes adding its gradient where another op already gave one), timed by kind (an
 * im2col conv's whole time to PK_COL2IM). */
static void profile_backward(const net *n, net_workspace *ws, int N, double *t)
{
    double t0 = now();
    net_backward_zero(n, ws, N);
    t[PK_ZERO] += now() - t0;
    for (int i = n->n_ops - 1; i >= 0; i--) {
        const net_op *op = &n->ops[i];
        t0 = now();
        net_backward_op(n, ws, N, i);
        t[op->kind != OP_CONV ? op_profile_kind(op->kind) : op->wino ? PK_WINO_BWD : PK_COL2IM] += now() - t0;
    }
}

#undef D
#undef G

/* Seconds of the convs' sgemms alone over one pass (forward: on each conv's input, or on
 * whatever im2col matrix scratch holds -- the values do not matter, all are finite; backward:
 * on the dout left by the last backward).  Run as a separate pass so the timed copies do not
 * disturb the caches of the instrumented pass. */
static double conv_gemm_pass(const net *n, net_workspace *ws, int N, int backward)
{
    double t = 0;
    for (int i = 0; i < n->n_ops; i++) {
        const net_op *op = &n->ops[i];
        if (op->kind != OP_CONV || op->wino || (backward && !needs_backward(n, op))) continue;
        const net_buf *a = &n->bufs[op->in0], *o = &n->bufs[op->out];
        const float *src = backward ? net_grad(n, ws, op->out, N) : net_data(n, ws, op->in0, N);
        const double t0 = now();
        conv_gemms(op, a, o, N, src, ws->scratch, ws->tmp, backward);
        t += now() - t0;
    }
    return t;
}

/* Instrumented passes (at least 3 and 2 * min_time) -> per-kind seconds, forward and backward,
 * with each conv's time split into its sgemms and the rest (im2col + bias / col2im). */
static int profile(const net *n, net_workspace *ws, int N, double min_time, double *pf, double *pb)
{
    int reps = 0;
    double t0 = now();
    do {
        profile_forward(n, ws, N, pf);
        profile_backward(n, ws, N, pb);
        reps++;
    } while (reps < 3 || now() - t0 < 2 * min_time);
    double gf = 0, gb = 0;
    for (int r = 0; r < reps; r++) gf += conv_gemm_pass(n, ws, N, 0), gb += conv_gemm_pass(n, ws, N, 1);
    pf[PK_CONV_GEMM] = gf;
    pf[PK_IM2COL] = pf[PK_IM2COL] > gf ? pf[PK_IM2COL] - gf : 0;
    pb[PK_CONV_GEMM] = gb;
    pb[PK_COL2IM] = pb[PK_COL2IM] > gb ? pb[PK_COL2IM] - gb : 0;
    return reps;
}

static void print_profile(const char *what, const double *t, int reps, double untimed_s)
{
    double total = 0;
    for (int k = 0; k < PK_COUNT; k++) total += t[k];
    printf("    %s: instrumented %.2f ms per call (uninstrumented %.2f ms)\n", what, 1e3 * total / reps,
           1e3 * untimed_s);
    int order[PK_COUNT];
    for (int k = 0; k < PK_COUNT; k++) order[k] = k;
    for (int i = 1; i < PK_COUNT; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && t[order[j]] > t[order[j - 1]]; j--) {
            int s = order[j];
            order[j] = order[j - 1];
            order[j - 1] = s;
        }
    for (int i = 0; i < PK_COUNT; i++) {
        const int k = order[i];
        if (t[k] <= 0) continue;
        printf("      %-18s %8.3f ms %6.1f%%\n", PK_NAMES[k], 1e3 * t[k] / reps, 100.0 * t[k] / total);
    }
}

/* ---- results ---------------------------------------------------------------------------------- */

typedef struct result {
    int threads, batch, workers;
    double fwd_s, vjp_s; /* seconds per call of N samples: forward, forward + backward */
    double fwd_cpu, vjp_cpu; /* CPU seconds per wall second while timing */
    double sgemm[2];         /* 1024^3 and 256x784x288 GFLOP/s, measured just before */
} result;

typedef struct net_result {
    const bench_def *def;
    size_t params;
    int n_ops;
    flops fl;
    double rss_mib;
    int rss_own;
    size_t ws_bytes[MAX_LIST];
    result res[(MAX_LIST + 1) * MAX_LIST];
    int n_res;
} net_result;

static void parse_list(const char *s, int *out, int *n)
{
    *n = 0;
    while (*s && *n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096) {
            fprintf(stderr, "bench_net: bad number list near \"%s\"\n", s);
            exit(2);
        }
        out[(*n)++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
}

static void parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->min_time = 1.0;
    o->profile = 1;
    o->workers = 2;
    o->profile_batch = 32;
    /* default results file: bench_net.json beside the executable (build/bench/ under make) */
    const char *slash = strrchr(argv[0], '/');
    snprintf(o->json, sizeof o->json, "%.*sbench_net.json", slash ? (int)(slash - argv[0] + 1) : 0, argv[0]);
    for (int i = 0; i < N_NETS; i++) o->net_on[i] = 1;
    parse_list("1,8,32,64", o->batches, &o->n_batches);
    parse_list("1,2", o->threads, &o->n_threads);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-profile") == 0 || strcmp(a, "--no-json") == 0) {
            if (a[5] == 'p') o->profile = 0;
            else o->json[0] = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "usage: bench_net [--json FILE | --no-json] [--min-time S] [--nets a,b] [--batches 1,8] "
                            "[--threads 1,2] [--workers W] [--conv winograd|im2col] [--profile-batch N | --no-profile]\n");
            exit(2);
        }
        i++;
        if (strcmp(a, "--json") == 0) snprintf(o->json, sizeof o->json, "%s", v);
        else if (strcmp(a, "--min-time") == 0) o->min_time = atof(v);
        else if (strcmp(a, "--batches") == 0) parse_list(v, o->batches, &o->n_batches);
        else if (strcmp(a, "--threads") == 0) parse_list(v, o->threads, &o->n_threads);
        else if (strcmp(a, "--workers") == 0) o->workers = atoi(v) < 0 ? 0 : atoi(v) > 16 ? 16 : atoi(v);
        else if (strcmp(a, "--conv") == 0 && (strcmp(v, "im2col") == 0 || strcmp(v, "winograd") == 0))
            o->im2col_only = strcmp(v, "im2col") == 0;
        else if (strcmp(a, "--profile-batch") == 0) o->profile_batch = atoi(v) > 0 ? atoi(v) : 32;
        else if (strcmp(a, "--nets") == 0) {
            for (int k = 0; k < N_NETS; k++) o->net_on[k] = 0;
            for (const char *p = v; *p;) {
                const size_t L = strcspn(p, ",");
                int found = 0;
                for (int k = 0; k < N_NETS; k++)
                    if (strlen(NETS[k].key) == L && strncmp(p, NETS[k].key, L) == 0) o->net_on[k] = found = 1;
                if (!found && L) {
                    fprintf(stderr, "bench_net: unknown network \"%.*s\" (ddpmpp, ncsnpp, ddpm, skip)\n", (int)L, p);
                    exit(2);
                }
                p += L + (p[L] == ',');
            }
        } else {
            fprintf(stderr, "bench_net: unknown option %s\n", a);
            exit(2);
        }
    }
}

static int max_batch(const opts *o)
{
    int m = o->profile ? o->profile_batch : 1;
    for (int i = 0; i < o->n_batches; i++) m = o->batches[i] > m ? o->batches[i] : m;
    return m;
}

static void write_json(const char *path, const opts *o, const double gemm[][N_GEMM], const net_result *nr, int n_nr)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_net: cannot write %s\n", path);
        exit(1);
    }
    fprintf(f, "{\n  \"bench\": \"bench_net\",\n  \"openblas\": \"%s\",\n  \"min_time_s\": %g,\n  \"sgemm_gflops\": {",
            openblas_get_config(), o->min_time);
    for (int ti = 0; ti < o->n_threads; ti++) {
        fprintf(f, "%s\n    \"%d\": {", ti ? "," : "", o->threads[ti]);
        for (int g = 0; g < N_GEMM; g++) fprintf(f, "%s\"%s\": %.3f", g ? ", " : "", GEMM_NAMES[g], gemm[ti][g]);
        fprintf(f, "}");
    }
    fprintf(f, "\n  },\n  \"nets\": [");
    for (int k = 0; k < n_nr; k++) {
        const net_result *r = &nr[k];
        fprintf(f, "%s\n    {\"key\": \"%s\", \"arch\": %s,\n     \"params\": %zu, \"flops_fwd\": %.0f, "
                   "\"flops_vjp_actual\": %.0f, \"flops_by_kind\": {",
                k ? "," : "", r->def->key, r->def->arch, r->params, r->fl.fwd, r->fl.vjp);
        for (int q = 0; q < FK_COUNT; q++) fprintf(f, "%s\"%s\": %.0f", q ? ", " : "", FK_NAMES[q], r->fl.kind[q]);
        fprintf(f, "},\n     \"peak_rss_mib\": %.1f, \"workspace_bytes\": {", r->rss_mib);
        for (int b = 0; b < o->n_batches; b++) fprintf(f, "%s\"%d\": %zu", b ? ", " : "", o->batches[b], r->ws_bytes[b]);
        fprintf(f, "},\n     \"results\": [");
        for (int i = 0; i < r->n_res; i++) {
            const result *x = &r->res[i];
            fprintf(f, "%s\n       {\"threads\": %d, \"workers\": %d, \"batch\": %d, \"fwd_s\": %.6e, \"fwd_vjp_s\": %.6e, "
                       "\"fwd_gflops\": %.3f, \"fwd_vjp_gflops\": %.3f, \"fwd_cpu_per_wall\": %.2f, "
                       "\"fwd_vjp_cpu_per_wall\": %.2f, \"sgemm_1024\": %.3f, \"sgemm_256x784x288\": %.3f}",
                    i ? "," : "", x->threads, x->workers, x->batch, x->fwd_s, x->vjp_s, r->fl.fwd * x->batch / x->fwd_s / 1e9,
                    3 * r->fl.fwd * x->batch / x->vjp_s / 1e9, x->fwd_cpu, x->vjp_cpu, x->sgemm[0], x->sgemm[1]);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_net: error writing %s\n", path);
        exit(1);
    }
}

/* ---- main ------------------------------------------------------------------------------------- */

static int build_net(const bench_def *d, net *n, net_config *c)
{
    sc_error err;
    json_error_t jerr;
    json_t *arch = json_loads(d->arch, 0, &jerr);
    if (!arch) {
        fprintf(stderr, "bench_net: %s: bad config JSON: %s\n", d->key, jerr.text);
        return 1;
    }
    int rc = net_config_from_json(c, arch, &err);
    json_decref(arch);
    const net_weights_src src = {fetch_random, NULL};
    net_init(n);
    if (!rc) rc = net_build(n, c, &src, &err);
    if (rc) fprintf(stderr, "bench_net: %s: %s\n", d->key, err.msg);
    return rc != 0;
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bench_net: whole networks with random weights; %s (core %s)\n", openblas_get_config(),
           openblas_get_corename());
    printf("GFLOP/s from tape FLOPs (conv, NIN, dense, attention; elementwise ops not counted); fwd+VJP counts "
           "the VJP as 2x forward.\nEach figure: median of 3 timings of >= %g s each.  /sgemm = ratio to "
           "cblas_sgemm 1024^3 at the same thread count (measured again before each block of rows); /s256 = to "
           "256x784x288;\ncpu = CPU seconds per wall "
           "second while timing (below the thread count: the process waited for a core).  Load average: %s\n",
           o.min_time, loadavg());

    static double gemm[MAX_LIST][N_GEMM];
    for (int ti = 0; ti < o.n_threads; ti++) {
        openblas_set_num_threads(o.threads[ti]);
        printf("\nOpenBLAS threads %d: cblas_sgemm GFLOP/s:", o.threads[ti]);
        for (int g = 0; g < N_GEMM; g++) {
            double cpu;
            gemm[ti][g] = sgemm_gflops(g, o.min_time, &cpu);
            printf("  %s %.1f (cpu %.2f)", GEMM_NAMES[g], gemm[ti][g], cpu);
        }
        printf("\n");
    }

    static net_result nr[N_NETS];
    int n_nr = 0;
    const int B = max_batch(&o);
    for (int k = 0; k < N_NETS; k++) {
        if (!o.net_on[k]) continue;
        net_result *r = &nr[n_nr++];
        memset(r, 0, sizeof *r);
        r->def = &NETS[k];
        r->rss_own = reset_peak_rss();
        net n;
        net_config c;
        if (build_net(&NETS[k], &n, &c)) return 1;
        if (o.im2col_only) /* the im2col path, with the scratch net_finish left out for it */
            for (int i = 0; i < n.n_ops; i++) {
                net_op *op = &n.ops[i];
                if (op->kind != OP_CONV || !op->wino) continue;
                const net_buf *a = &n.bufs[op->in0];
                const size_t need = conv2d_scratch_floats(a->C, a->H, a->W, op->geom);
                if (need > n.scratch_floats) n.scratch_floats = need;
                op->wino = NULL;
            }
        r->params = net_param_count(&n);
        r->n_ops = n.n_ops;
        r->fl = count_flops(&n);
        for (int b = 0; b < o.n_batches; b++) r->ws_bytes[b] = net_workspace_bytes(&n, o.batches[b]);
        net_workspace ws;
        sc_error err;
        if (net_workspace_init(&ws, &n, B, &err)) {
            fprintf(stderr, "bench_net: %s\n", err.msg);
            return 1;
        }
        printf("\n== %s: %s, %dx%dx%d\n", NETS[k].key, NETS[k].desc, c.channels, c.image_size, c.image_size);
        printf("   %s\n", NETS[k].arch);
        printf("   %zu parameters, %d ops; forward %.1f MFLOP/sample (", r->params, n.n_ops, r->fl.fwd / 1e6);
        for (int q = 0; q < FK_COUNT; q++)
            printf("%s%s %.1f%%", q ? ", " : "", FK_NAMES[q], 100.0 * r->fl.kind[q] / r->fl.fwd);
        printf(");\n   input-only VJP work %.1f MFLOP/sample = %.2fx forward (the table counts 2x)\n", r->fl.vjp / 1e6,
               r->fl.vjp / r->fl.fwd);
        printf("   workspace (net_workspace_bytes):");
        for (int b = 0; b < o.n_batches; b++)
            printf("  batch %d %.1f MiB", o.batches[b], r->ws_bytes[b] / 1048576.0);
        printf("\n   load average at start: %s\n", loadavg());
        printf("   %3s %5s | %10s %9s %8s %6s %6s %4s | %10s %9s %8s %6s %4s\n", "thr", "batch", "fwd ms/smp",
               "samples/s", "GFLOP/s", "/sgemm", "/s256", "cpu", "VJP ms/smp", "samples/s", "GFLOP/s", "/sgemm", "cpu");
        double sg_w[2] = {0, 0}; /* sgemm on o.workers threads, for the workers' rows */
        for (int ti = 0; ti < o.n_threads; ti++) {
            openblas_set_num_threads(o.threads[ti]);
            /* the reference again, next to the rows it is compared with (the load may change) */
            double sg[2], sc[2];
            for (int g = 0; g < 2; g++) sg[g] = sgemm_gflops(g, o.min_time, &sc[g]);
            printf("   %3d  sgemm | 1024^3 %.1f GFLOP/s (cpu %.2f), 256x784x288 %.1f GFLOP/s (cpu %.2f), "
                   "measured before these rows\n",
                   o.threads[ti], sg[0], sc[0], sg[1], sc[1]);
            if (o.threads[ti] == o.workers) sg_w[0] = sg[0], sg_w[1] = sg[1];
            for (int bi = 0; bi < o.n_batches; bi++) {
                const int N = o.batches[bi];
                fill_inputs(&n, &c, &ws, N);
                run_ctx rc_f = {&n, &ws, N, 0}, rc_b = {&n, &ws, N, 1};
                result *x = &r->res[r->n_res++];
                x->threads = o.threads[ti];
                x->workers = 1;
                x->batch = N;
                x->sgemm[0] = sg[0];
                x->sgemm[1] = sg[1];
                x->fwd_s = seconds_per_call(run_net, &rc_f, o.min_time);
                x->fwd_cpu = g_cpu_per_wall;
                x->vjp_s = seconds_per_call(run_net, &rc_b, o.min_time);
                x->vjp_cpu = g_cpu_per_wall;
                const double gf = r->fl.fwd * N / x->fwd_s / 1e9, gb = 3 * r->fl.fwd * N / x->vjp_s / 1e9;
                printf("   %3d %5d | %10.3f %9.1f %8.2f %6.2f %6.2f %4.2f | %10.3f %9.1f %8.2f %6.2f %4.2f\n",
                       x->threads, N, 1e3 * x->fwd_s / N, N / x->fwd_s, gf, gf / sg[0], gf / sg[1], x->fwd_cpu,
                       1e3 * x->vjp_s / N, N / x->vjp_s, gb, gb / sg[0], x->vjp_cpu);
            }
        }
        if (o.workers > 1) {
            openblas_set_num_threads(1);
            const int W = o.workers;
            worker *w = xmalloc(sizeof *w * W);
            net_workspace *wws = xmalloc(sizeof *wws * W);
            wws[0] = ws;
            for (int i = 1; i < W; i++)
                if (net_workspace_init(&wws[i], &n, B, &err)) {
                    fprintf(stderr, "bench_net: %s\n", err.msg);
                    return 1;
                }
            for (int bi = 0; bi < o.n_batches; bi++) {
                const int N = o.batches[bi];
                result *x = &r->res[r->n_res++];
                x->threads = 1;
                x->workers = W;
                x->batch = N;
                x->sgemm[0] = sg_w[0];
                x->sgemm[1] = sg_w[1];
                for (int vjp = 0; vjp < 2; vjp++) {
                    for (int i = 0; i < W; i++) {
                        fill_inputs(&n, &c, &wws[i], N);
                        w[i].rc = (run_ctx){&n, &wws[i], N, vjp};
                    }
                    double cpu;
                    const double sps = workers_rate(w, W, N, o.min_time, &cpu);
                    *(vjp ? &x->vjp_s : &x->fwd_s) = N / sps; /* wall seconds per N samples, all workers */
                    *(vjp ? &x->vjp_cpu : &x->fwd_cpu) = cpu;
                }
                const double gf = r->fl.fwd * N / x->fwd_s / 1e9, gb = 3 * r->fl.fwd * N / x->vjp_s / 1e9;
                char r0[16] = "", r1[16] = "", r2[16] = "";
                if (sg_w[0] > 0) {
                    snprintf(r0, sizeof r0, "%.2f", gf / sg_w[0]);
                    snprintf(r1, sizeof r1, "%.2f", gf / sg_w[1]);
                    snprintf(r2, sizeof r2, "%.2f", gb / sg_w[0]);
                }
                printf("   %dx1 %5d | %10.3f %9.1f %8.2f %6s %6s %4.2f | %10.3f %9.1f %8.2f %6s %4.2f\n", W, N,
                       1e3 * x->fwd_s / N, N / x->fwd_s, gf, r0, r1, x->fwd_cpu, 1e3 * x->vjp_s / N, N / x->vjp_s, gb,
                       r2, x->vjp_cpu);
            }
            printf("   (%dx1: %d threads each running whole batches with its own workspace, OpenBLAS on 1 thread;\n"
                   "    ms/smp is wall time per sample of all of them together; /sgemm against sgemm on %d threads)\n",
                   W, W, W);
            for (int i = 1; i < W; i++) net_workspace_free(&wws[i]);
            free(wws);
            free(w);
        }
        if (o.profile) {
            const int N = o.profile_batch;
            openblas_set_num_threads(o.threads[0]);
            fill_inputs(&n, &c, &ws, N);
            double tf = 0, tfb = 0; /* uninstrumented seconds per call, from the table when there */
            for (int i = 0; i < r->n_res; i++)
                if (r->res[i].threads == o.threads[0] && r->res[i].workers == 1 && r->res[i].batch == N)
                    tf = r->res[i].fwd_s, tfb = r->res[i].vjp_s;
            if (tf == 0) {
                run_ctx rc_f = {&n, &ws, N, 0}, rc_b = {&n, &ws, N, 1};
                tf = seconds_per_call(run_net, &rc_f, o.min_time);
                tfb = seconds_per_call(run_net, &rc_b, o.min_time);
            }
            double pf[PK_COUNT] = {0}, pb[PK_COUNT] = {0};
            const int reps = profile(&n, &ws, N, o.min_time, pf, pb);
            printf("   time by op kind at batch %d, %d OpenBLAS thread(s), %d instrumented passes; per sample:\n", N,
                   o.threads[0], reps);
            print_profile("forward", pf, reps * N, tf / N);
            print_profile("VJP (backward only)", pb, reps * N, (tfb - tf) / N);
        }
        r->rss_mib = peak_rss_mib();
        printf("   peak RSS %.1f MiB%s\n", r->rss_mib, r->rss_own ? "" : " (process peak so far)");
        net_workspace_free(&ws);
        net_free(&n);
    }
    if (o.json[0]) {
        write_json(o.json, &o, (const double(*)[N_GEMM])gemm, nr, n_nr);
        printf("\nwrote %s\n", o.json);
    }
    return 0;
}
