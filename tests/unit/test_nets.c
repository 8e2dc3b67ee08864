/* Networks against PyTorch: the golden files of tests/data/golden (tools/make_golden.py)
 * hold small random-weight NCSN++ / DDPM++ / DDPM models with inputs, raw outputs, scores
 * and vector-Jacobian products computed by tools/nets.py.  The C networks must match them to
 * 1e-4 relative error, forward and VJP; the whole-network VJP also passes a
 * central-difference check, and a sample's output does not depend on its batch-mates. */
#include "testutil.h"

#include "net_model.h"
#include "safetensors.h"

#define GOLDEN TEST_DATA_DIR "/golden/"

static const char *const CASES[] = {
    "ncsnpp_ve_fourier_fir_res", "ncsnpp_ve_skip_28x1", "ddpmpp_vp_positional", "ddpm_ve_discrete",
    "ncsnpp_ddpmblock_residual_cat",
};

/* A tensor of the io file as floats (malloc'd). */
static float *io_tensor(const st_file *f, const char *name, int64_t *count)
{
    const st_tensor *t = st_find(f, name);
    if (!t) fail_msg("golden io file lacks %s", name);
    float *out = malloc(sizeof(float) * (size_t)t->count);
    sc_error err = {0};
    if (st_to_f32(t, out, &err)) fail_msg("%s", err.msg);
    if (count) *count = t->count;
    return out;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den > 0 ? den : 1);
}

typedef struct golden {
    sc_model *m;
    st_file *io;
    float *x, *t, *out, *v, *vjp, *score;
    int N, D;
} golden;

static void golden_load(golden *g, const char *name)
{
    char path[256];
    sc_error err = {0};
    snprintf(path, sizeof path, GOLDEN "%s.safetensors", name);
    if (sc_model_load(path, &g->m, &err)) fail_msg("%s", err.msg);
    snprintf(path, sizeof path, GOLDEN "%s.io.safetensors", name);
    if (st_open(path, &g->io, &err)) fail_msg("%s", err.msg);
    int64_t count;
    g->x = io_tensor(g->io, "x", &count);
    g->D = g->m->D;
    g->N = (int)(count / g->D);
    g->t = io_tensor(g->io, "t", NULL);
    g->out = io_tensor(g->io, "out", NULL);
    g->v = io_tensor(g->io, "v", NULL);
    g->vjp = io_tensor(g->io, "vjp", NULL);
    g->score = io_tensor(g->io, "score", NULL);
}

static void golden_free(golden *g)
{
    free(g->x);
    free(g->t);
    free(g->out);
    free(g->v);
    free(g->vjp);
    free(g->score);
    st_close(g->io);
    sc_model_free(g->m);
}

/* Score and VJP of the score through the model's eval, batch of all golden items. */
static void eval_all(const golden *g, float *score, float *vjp)
{
    score_query *q = calloc((size_t)g->N, sizeof *q);
    for (int i = 0; i < g->N; i++)
        q[i] = (score_query){.x = g->x + (size_t)i * g->D, .t = g->t[i], .label = -1,
                             .probe = vjp ? g->v + (size_t)i * g->D : NULL, .score = score + (size_t)i * g->D,
                             .vjp = vjp ? vjp + (size_t)i * g->D : NULL};
    void *scratch = sc_model_scratch_alloc(g->m, g->N);
    sc_error err = {0};
    if (g->m->ops->eval(g->m, q, g->N, scratch, &err)) fail_msg("%s", err.msg);
    free(scratch);
    free(q);
}

static void test_golden_forward_and_vjp(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        golden g = {0};
        golden_load(&g, CASES[c]);
        const size_t n = (size_t)g.N * g.D;
        float *score = malloc(sizeof(float) * n), *vjp = malloc(sizeof(float) * n);
        eval_all(&g, score, vjp);
        double e_score = rel_err(score, g.score, n);
        /* the golden vjp is of the raw output; the score is coef * output with coef = score/out */
        float *vjp_out = malloc(sizeof(float) * n);
        for (int i = 0; i < g.N; i++) {
            double coef = 0, den = 0; /* least-squares coef per sample from the golden pair */
            for (int d = 0; d < g.D; d++) {
                coef += (double)g.score[(size_t)i * g.D + d] * g.out[(size_t)i * g.D + d];
                den += (double)g.out[(size_t)i * g.D + d] * g.out[(size_t)i * g.D + d];
            }
            coef /= den;
            for (int d = 0; d < g.D; d++) vjp_out[(size_t)i * g.D + d] = (float)(vjp[(size_t)i * g.D + d] / coef);
        }
        double e_vjp = rel_err(vjp_out, g.vjp, n);
        print_message("%-32s score rel err %.2e  vjp rel err %.2e\n", CASES[c], e_score, e_vjp);
        if (!(e_score < 1e-4)) fail_msg("%s: score differs from PyTorch by %.2e", CASES[c], e_score);
        if (!(e_vjp < 1e-4)) fail_msg("%s: VJP differs from PyTorch by %.2e", CASES[c], e_vjp);
        free(score);
        free(vjp);
        free(vjp_out);
        golden_free(&g);
    }
}

/* v^T d score/dx against central differences of the C network itself (double-checked sums). */
static void test_vjp_central_difference(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        golden g = {0};
        golden_load(&g, CASES[c]);
        const int D = g.D;
        float *s = malloc(sizeof(float) * D), *jv = malloc(sizeof(float) * D);
        float *xp = malloc(sizeof(float) * D), *sp = malloc(sizeof(float) * D), *sm = malloc(sizeof(float) * D);
        void *scratch = sc_model_scratch_alloc(g.m, 1);
        sc_error err = {0};
        /* probe u: the golden v; direction w: a fixed pseudo-random vector */
        float *w = malloc(sizeof(float) * D);
        for (int d = 0; d < D; d++) w[d] = (float)sin(1.3 * d + 0.7);
        score_query q = {.x = g.x, .t = g.t[0], .label = -1, .probe = g.v, .score = s, .vjp = jv};
        assert_int_equal(g.m->ops->eval(g.m, &q, 1, scratch, &err), 0);
        /* d/dh [u . score(x + h w)] at h = 0 equals (u^T J) . w = vjp . w */
        double pred = 0;
        for (int d = 0; d < D; d++) pred += (double)jv[d] * w[d];
        const float h = 1e-2f;
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (int d = 0; d < D; d++) xp[d] = g.x[d] + (sgn ? -h : h) * w[d];
            score_query qq = {.x = xp, .t = g.t[0], .label = -1, .score = sgn ? sm : sp};
            assert_int_equal(g.m->ops->eval(g.m, &qq, 1, scratch, &err), 0);
            double acc = 0;
            for (int d = 0; d < D; d++) acc += (double)g.v[d] * (sgn ? sm : sp)[d];
            f[sgn] = acc;
        }
        double num = (f[0] - f[1]) / (2 * h);
        print_message("%-32s vjp.w %.6g  central difference %.6g\n", CASES[c], pred, num);
        assert_true(fabs(pred - num) <= 2e-2 * fmax(1.0, fabs(num)));
        free(scratch);
        free(s);
        free(jv);
        free(xp);
        free(sp);
        free(sm);
        free(w);
        golden_free(&g);
    }
}

/* Sample 1 alone and in the golden batch: the same bits. */
static void test_batch_invariance(void **state)
{
    (void)state;
    golden g = {0};
    golden_load(&g, "ddpmpp_vp_positional");
    const size_t n = (size_t)g.N * g.D;
    float *batch = malloc(sizeof(float) * n), *alone = malloc(sizeof(float) * g.D);
    eval_all(&g, batch, NULL);
    score_query q = {.x = g.x + g.D, .t = g.t[1], .label = -1, .score = alone};
    void *scratch = sc_model_scratch_alloc(g.m, 1);
    sc_error err = {0};
    assert_int_equal(g.m->ops->eval(g.m, &q, 1, scratch, &err), 0);
    assert_memory_equal(alone, batch + g.D, sizeof(float) * g.D);
    free(scratch);
    free(batch);
    free(alone);
    golden_free(&g);
}

/* The guidance classifier: log p(y | x, sigma) and its input gradient against PyTorch. */
static void test_golden_classifier(void **state)
{
    (void)state;
    net_classifier *c = NULL;
    sc_error err = {0};
    if (net_classifier_load(GOLDEN "classifier_28x1.safetensors", &c, &err)) fail_msg("%s", err.msg);
    st_file *io;
    if (st_open(GOLDEN "classifier_28x1.io.safetensors", &io, &err)) fail_msg("%s", err.msg);
    int64_t count;
    float *x = io_tensor(io, "x", &count), *sg = io_tensor(io, "sigma", NULL), *yf = io_tensor(io, "y", NULL);
    float *logp_ref = io_tensor(io, "logp", NULL), *grad_ref = io_tensor(io, "grad", NULL);
    const int N = (int)(count / c->D);
    double sigma[8];
    int y[8];
    for (int i = 0; i < N; i++) {
        sigma[i] = sg[i];
        y[i] = (int)yf[i];
    }
    float logp[8], *grad = malloc(sizeof(float) * (size_t)count);
    void *scratch = malloc(net_classifier_scratch_bytes(c, N));
    net_classifier_log_prob_grad(c, x, sigma, y, N, logp, grad, scratch);
    double e_logp = rel_err(logp, logp_ref, (size_t)N), e_grad = rel_err(grad, grad_ref, (size_t)count);
    print_message("classifier_28x1                  logp rel err %.2e  grad rel err %.2e\n", e_logp, e_grad);
    assert_true(e_logp < 1e-4);
    assert_true(e_grad < 1e-4);
    free(scratch);
    free(grad);
    free(x);
    free(sg);
    free(yf);
    free(logp_ref);
    free(grad_ref);
    st_close(io);
    net_classifier_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_forward_and_vjp),
        cmocka_unit_test(test_vjp_central_difference),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_golden_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
