/* The samplers' own cost per step and per dimension, excluding score evaluation: tasks run
 * against a score model that costs almost nothing (s = -x, the standard normal), and the time
 * of those score calls alone is measured separately and subtracted.  Later networks cost
 * ~1e5-1e6 flops per dimension per evaluation; these figures show the engine's overhead
 * beside that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"
#include "pc.h"
#include "task.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static size_t null_scratch(const sc_model *m, int b)
{
    (void)m;
    (void)b;
    return 0;
}

static int null_eval(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err)
{
    (void)scratch;
    (void)err;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < m->D; d++) {
            q[i].score[d] = -q[i].x[d];
            if (q[i].probe) q[i].vjp[d] = -q[i].probe[d];
        }
    return 0;
}

static void null_destroy(void *p) { (void)p; }

static const sc_model_ops null_ops = {"null", null_scratch, null_eval, null_destroy};

static double time_evals(const sc_model *m, int n_items, long rounds)
{
    float *x = calloc((size_t)m->D, sizeof(float)), *s = calloc((size_t)m->D, sizeof(float));
    score_query *q = calloc((size_t)n_items, sizeof *q);
    for (int i = 0; i < n_items; i++) q[i] = (score_query){.x = x, .t = 0.5, .label = -1, .score = s};
    double t0 = now();
    for (long r = 0; r < rounds; r++) m->ops->eval(m, q, n_items, NULL, NULL);
    double dt = now() - t0;
    free(x);
    free(s);
    free(q);
    return dt;
}

static void bench(const char *name, sc_model *m, sampler_config *c, int n)
{
    sc_task **t = calloc((size_t)n, sizeof *t);
    sc_error err = {0};
    for (int i = 0; i < n; i++) {
        int rc = c->kind == SAMPLER_PC ? pc_task_create(m, c, NULL, 1, i, &t[i], &err)
                                       : flow_sample_task_create(m, c, NULL, NULL, 1, i, &t[i], &err);
        if (rc) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
    }
    double t0 = now();
    if (task_run_batched(m, t, n, 64, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    double total = now() - t0;
    long nfe = 0;
    for (int i = 0; i < n; i++) nfe += t[i]->nfe;
    double evals = time_evals(m, 64, nfe / 64);
    double per = (total - evals) / ((double)nfe * m->D) * 1e9;
    printf("%-34s D=%5d  evals %7ld  total %.3f s  score calls %.3f s  sampler %.2f ns per eval per dim\n",
           name, m->D, nfe, total, evals, per);
    for (int i = 0; i < n; i++) task_free(t[i]);
    free(t);
}

int main(void)
{
    const int dims[2] = {784, 3072};
    printf("sampler overhead, excluding score evaluation (64 samples, batch 64)\n");
    for (int di = 0; di < 2; di++) {
        sc_model m = {.name = "null", .ndim = 1, .D = dims[di], .ops = &null_ops,
                      .sde = {.type = SDE_VP, .beta_min = 0.1, .beta_max = 20, .N = 1000},
                      .centered = 1, .card_json = "{}"};
        m.shape[0] = dims[di];
        sampler_config c;
        sampler_config_default(&c, &m);
        c.steps = 200;
        bench("pc reverse_diffusion + langevin", &m, &c, 64);
        c.corrector = CORRECTOR_NONE;
        c.predictor = PREDICTOR_EULER_MARUYAMA;
        bench("pc euler_maruyama", &m, &c, 64);
        c.kind = SAMPLER_ODE;
        c.solver = ODE_HEUN;
        c.steps = 100;
        bench("ode heun", &m, &c, 64);
        c.solver = ODE_RK45;
        bench("ode rk45 (1e-5)", &m, &c, 64);
    }
    return 0;
}
