/* The task pool (engine/task_pool.c): mixed tasks of different lengths give the same bits and
 * NFE on any number of lanes and lane batch as on the plain driver, and failures (in a task's
 * advance or in an evaluation) stop the run with the right code and message. */
#include "testutil.h"

#include "task_pool.h"

enum { N_TASKS = 11 };

/* Task i of a fixed mixed set: PC samples, adaptive probability-flow samples (their step
 * counts differ by seed) and likelihoods with probes (several queries per task). */
static void make_tasks(const sc_model *m, const float *img, sc_task **t)
{
    sampler_config pc, ode;
    sampler_config_default(&pc, m);
    pc.steps = 30;
    sampler_config_default(&ode, m);
    ode.kind = SAMPLER_ODE;
    likelihood_config lc;
    likelihood_config_default(&lc);
    lc.probes = 3;
    sc_error err = {0};
    for (int i = 0; i < N_TASKS; i++) {
        int rc = i % 3 == 0   ? pc_task_create(m, &pc, NULL, 5, (uint64_t)i, &t[i], &err)
                 : i % 3 == 1 ? flow_sample_task_create(m, &ode, NULL, NULL, 6, (uint64_t)i, &t[i], &err)
                              : flow_likelihood_task_create(m, &lc, img, 7, (uint64_t)i, &t[i], &err);
        if (rc) fail_msg("create %d: %s", i, err.msg);
    }
}

/* Result bits of task i (D floats for samples; log-likelihood and latent for likelihoods). */
static void assert_same_result(const sc_model *m, int i, const sc_task *a, const sc_task *b)
{
    assert_int_equal(a->nfe, b->nfe);
    if (i % 3 == 2) {
        likelihood_result ra, rb;
        flow_task_likelihood(a, &ra);
        flow_task_likelihood(b, &rb);
        assert_memory_equal(&ra.log_likelihood, &rb.log_likelihood, sizeof(double));
        assert_memory_equal(ra.latent, rb.latent, sizeof(double) * (size_t)m->D);
    } else {
        const float *xa = i % 3 == 0 ? pc_task_result(a) : flow_task_result(a);
        const float *xb = i % 3 == 0 ? pc_task_result(b) : flow_task_result(b);
        assert_memory_equal(xa, xb, sizeof(float) * (size_t)m->D);
    }
}

static void test_pool_matches_the_plain_driver(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    float *img = malloc(sizeof(float) * (size_t)m->D);
    for (int d = 0; d < m->D; d++) img[d] = (float)gmm_mean(m, 4)[d];
    sc_task *ref[N_TASKS];
    make_tasks(m, img, ref);
    run_tasks(m, ref, N_TASKS, 4);
    /* the ODE tasks really differ in length, so the lanes' shares change from round to round */
    assert_true(ref[1]->nfe != ref[4]->nfe || ref[4]->nfe != ref[7]->nfe);

    const int lanes[] = {1, 2, 3, 5, 16}, batches[] = {1, 2, 7};
    for (size_t a = 0; a < sizeof lanes / sizeof *lanes; a++)
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
            sc_error err = {0};
            task_pool *p = task_pool_create(m, lanes[a], batches[b], &err);
            assert_non_null(p);
            assert_int_equal(task_pool_threads(p), lanes[a]);
            sc_task *t[N_TASKS];
            make_tasks(m, img, t);
            assert_int_equal(task_pool_run(p, t, N_TASKS, &err), 0);
            for (int i = 0; i < N_TASKS; i++) {
                assert_same_result(m, i, ref[i], t[i]);
                task_free(t[i]);
            }
            /* a pool is reusable, and an empty run is a no-op */
            assert_int_equal(task_pool_run(p, t, 0, &err), 0);
            task_pool_free(p);
        }
    for (int i = 0; i < N_TASKS; i++) task_free(ref[i]);
    free(img);
    sc_model_free(m);
}

static void test_pool_reports_a_failing_task(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    float *img = malloc(sizeof(float) * (size_t)m->D);
    for (int d = 0; d < m->D; d++) img[d] = (float)gmm_mean(m, 2)[d];
    for (int threads = 1; threads <= 3; threads++) {
        sc_error err = {0};
        task_pool *p = task_pool_create(m, threads, 2, &err);
        assert_non_null(p);
        sc_task *t[N_TASKS];
        make_tasks(m, img, t);
        t[8]->cancel_requested = 1; /* its first advance fails */
        assert_int_equal(task_pool_run(p, t, N_TASKS, &err), SC_ERR_CANCELLED);
        assert_string_equal(err.msg, "item 8: cancelled");
        for (int i = 0; i < N_TASKS; i++) task_free(t[i]);
        task_pool_free(p);
    }
    free(img);
    sc_model_free(m);
}

/* A model that answers like the wrapped mixture but fails every query at t < 0.5: the run stops
 * (all lanes together) with the evaluator's error.  Its impl is a failing_model naming the
 * wrapped model (borrowed, not freed here). */
typedef struct {
    const sc_model *inner;
} failing_model;

static size_t failing_scratch_bytes(const sc_model *m, int max_batch)
{
    const sc_model *inner = ((const failing_model *)m->impl)->inner;
    return inner->ops->scratch_bytes(inner, max_batch);
}

static int failing_eval(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err)
{
    const sc_model *inner = ((const failing_model *)m->impl)->inner;
    for (int i = 0; i < n; i++)
        if (q[i].t < 0.5) return sc_fail(err, SC_ERR_NUMERIC, "evaluator failed at t %.3f", q[i].t);
    return inner->ops->eval(inner, q, n, scratch, err);
}

static void test_pool_reports_a_failing_evaluation(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    sc_model_ops ops = *m->ops;
    ops.scratch_bytes = failing_scratch_bytes;
    ops.eval = failing_eval;
    failing_model impl = {m};
    sc_model wrapped = *m; /* shares m's fields; not freed itself */
    wrapped.ops = &ops;
    wrapped.impl = &impl;
    float *img = malloc(sizeof(float) * (size_t)m->D);
    for (int d = 0; d < m->D; d++) img[d] = (float)gmm_mean(m, 2)[d];
    for (int threads = 1; threads <= 4; threads++) {
        sc_error err = {0};
        task_pool *p = task_pool_create(&wrapped, threads, 3, &err);
        assert_non_null(p);
        sc_task *t[N_TASKS];
        make_tasks(&wrapped, img, t);
        assert_int_equal(task_pool_run(p, t, N_TASKS, &err), SC_ERR_NUMERIC);
        assert_non_null(strstr(err.msg, "evaluator failed at t 0."));
        for (int i = 0; i < N_TASKS; i++) task_free(t[i]);
        task_pool_free(p);
    }
    free(img);
    sc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_matches_the_plain_driver),
        cmocka_unit_test(test_pool_reports_a_failing_task),
        cmocka_unit_test(test_pool_reports_a_failing_evaluation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
