/* The samplers' own cost per step and per dimension, excluding score evaluation: tasks run
 * against a score model that costs almost nothing (s = -2x, the score of N(0, I/2), whose
 * probability-flow ODE under the VP SDE is not trivial, so RK45 takes realistic steps; its VJP
 * is -2v), and the time of those score calls alone is measured separately and subtracted.  Each
 * row gives the cost per step and per score evaluation (a PC step with one Langevin corrector
 * step takes 2 evaluations, Heun 2, RK45 about 6 plus rejected steps), both per dimension.
 * The likelihood rows are the probability-flow ODE with the divergence integral: the
 * Hutchinson probe bookkeeping (drawing the probe, v . (J v), |v|^2) is included, the VJP
 * itself is not.  Later networks cost ~1e5-1e6 flops per dimension per evaluation; these
 * figures show the engine's overhead beside that.  On a busy machine each figure is the best
 * of REPEATS runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"
#include "pc.h"
#include "task.h"

#define N_ITEMS 64
#define BATCH 64
#define REPEATS 3

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
            q[i].score[d] = -2.0f * q[i].x[d];
            if (q[i].probe) q[i].vjp[d] = -2.0f * q[i].probe[d];
        }
    return 0;
}

static void null_destroy(void *p) { (void)p; }

static const sc_model_ops null_ops = {"null", null_scratch, null_eval, null_destroy};

/* Time of `queries` score queries (with a probe and VJP when with_probe) in batches of BATCH:
 * what the tasks' score calls cost, to subtract. */
static double time_evals(const sc_model *m, long queries, int with_probe)
{
    const size_t D = (size_t)m->D;
    float *x = calloc(D, sizeof(float)), *s = calloc(D, sizeof(float));
    float *v = calloc(D, sizeof(float)), *jv = calloc(D, sizeof(float));
    score_query *q = calloc(BATCH, sizeof *q);
    for (int i = 0; i < BATCH; i++)
        q[i] = (score_query){.x = x, .t = 0.5, .label = -1, .score = s,
                             .probe = with_probe ? v : NULL, .vjp = with_probe ? jv : NULL};
    double t0 = now();
    for (long done = 0; done < queries; done += BATCH) {
        int n = queries - done < BATCH ? (int)(queries - done) : BATCH;
        m->ops->eval(m, q, n, NULL, NULL);
    }
    double dt = now() - t0;
    free(x);
    free(s);
    free(v);
    free(jv);
    free(q);
    return dt;
}

typedef enum { JOB_PC, JOB_ODE, JOB_LIKELIHOOD } job_kind;

typedef struct bench_job {
    const char *name;
    job_kind kind;
    sampler_config sc;   /* JOB_PC, JOB_ODE */
    likelihood_config lc; /* JOB_LIKELIHOOD  */
} bench_job;

static sc_task *create(const sc_model *m, const bench_job *j, const float *x, int i)
{
    sc_task *t = NULL;
    sc_error err = {0};
    int rc;
    switch (j->kind) {
    case JOB_PC: rc = pc_task_create(m, &j->sc, NULL, 1, (uint64_t)i, &t, &err); break;
    case JOB_ODE: rc = flow_sample_task_create(m, &j->sc, NULL, NULL, 1, (uint64_t)i, &t, &err); break;
    default: rc = flow_likelihood_task_create(m, &j->lc, x, 1, (uint64_t)i, &t, &err); break;
    }
    if (rc) {
        fprintf(stderr, "bench: %s: %s\n", j->name, err.msg);
        exit(1);
    }
    return t;
}

static void bench(const sc_model *m, const bench_job *j)
{
    const int D = m->D;
    float *x = malloc(sizeof(float) * (size_t)D);
    for (int d = 0; d < D; d++) x[d] = (float)((d % 17) - 8) / 16.0f; /* any data point */
    sc_task *t[N_ITEMS];
    double best_total = 1e30, best_evals = 1e30;
    long nfe = 0, steps = 0, queries = 0;
    for (int rep = 0; rep < REPEATS; rep++) {
        for (int i = 0; i < N_ITEMS; i++) t[i] = create(m, j, x, i);
        sc_error err = {0};
        double t0 = now();
        if (task_run_batched(m, t, N_ITEMS, BATCH, NULL, &err)) {
            fprintf(stderr, "bench: %s: %s\n", j->name, err.msg);
            exit(1);
        }
        double total = now() - t0;
        nfe = steps = 0;
        for (int i = 0; i < N_ITEMS; i++) {
            nfe += t[i]->nfe;
            steps += t[i]->step;
            task_free(t[i]);
        }
        /* queries: one per evaluation, or one per probe for the likelihood */
        int per_eval = j->kind == JOB_LIKELIHOOD ? (j->lc.exact_divergence ? D : j->lc.probes) : 1;
        queries = nfe * per_eval;
        double evals = time_evals(m, queries, j->kind == JOB_LIKELIHOOD);
        if (total < best_total) best_total = total;
        if (evals < best_evals) best_evals = evals;
    }
    double own = best_total - best_evals;
    printf("%-36s %5d %8.2f %8ld %9ld %8.3f %8.3f %9.2f %9.2f\n", j->name, D,
           (double)nfe / (double)steps, steps, nfe, best_total, best_evals,
           own / ((double)steps * D) * 1e9, own / ((double)nfe * D) * 1e9);
    free(x);
}

int main(void)
{
    const int dims[2] = {784, 3072};
    printf("sampler overhead, excluding score evaluation (%d items, batch %d, best of %d runs)\n",
           N_ITEMS, BATCH, REPEATS);
    printf("ns/step/dim: the sampler's own time per step and dimension; ns/eval/dim: the same per\n"
           "score evaluation (evals/step of them per step; the ODE rows' last step adds the\n"
           "final denoising evaluation).  Likelihood rows exclude the VJP, not the probe work.\n\n");
    printf("%-36s %5s %8s %8s %9s %8s %8s %9s %9s\n", "sampler", "D", "evals/st", "steps", "evals",
           "total s", "score s", "ns/st/dim", "ns/ev/dim");
    for (int di = 0; di < 2; di++) {
        sc_model m = {.name = "null", .ndim = 1, .D = dims[di], .ops = &null_ops,
                      .sde = {.type = SDE_VP, .beta_min = 0.1, .beta_max = 20, .N = 1000},
                      .centered = 1, .card_json = "{}"};
        m.shape[0] = dims[di];
        bench_job j = {.kind = JOB_PC};
        sampler_config_default(&j.sc, &m);
        j.sc.steps = 200;
        j.sc.predictor = PREDICTOR_REVERSE_DIFFUSION;
        j.sc.corrector = CORRECTOR_LANGEVIN;
        j.name = "pc reverse_diffusion + langevin";
        bench(&m, &j);
        j.sc.corrector = CORRECTOR_NONE;
        j.sc.predictor = PREDICTOR_EULER_MARUYAMA;
        j.name = "pc euler_maruyama";
        bench(&m, &j);
        j.kind = JOB_ODE;
        j.sc.kind = SAMPLER_ODE;
        j.sc.solver = ODE_HEUN;
        j.sc.steps = 100;
        j.name = "ode heun";
        bench(&m, &j);
        j.sc.solver = ODE_RK45;
        j.name = "ode rk45 (1e-5)";
        bench(&m, &j);
        j.kind = JOB_LIKELIHOOD;
        likelihood_config_default(&j.lc);
        j.lc.probes = 1;
        j.name = "likelihood rk45, 1 rademacher probe";
        bench(&m, &j);
        j.lc.solver = ODE_HEUN;
        j.lc.steps = 100;
        j.name = "likelihood heun, 1 rademacher probe";
        bench(&m, &j);
    }
    return 0;
}
