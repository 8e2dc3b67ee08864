/* Likelihood through the probability-flow ODE against the exact answer of the method:
 * log p_eps(x) - log p_T(z) + log prior(z), with z the returned latent (spec §5, §11 Q1), on a
 * 2-D and a 16-D mixture under each SDE; Hutchinson probes against the exact divergence;
 * encode/decode round trip. */
#include "testutil.h"

/* Writes a K-component mixture in D dimensions under the given SDE JSON; means spread on
 * [-1,1] deterministically, per-dimension stds in [0.15, 0.45]. */
static sc_model *mixture(int D, int K, const char *sde_json)
{
    size_t cap = 65536;
    char *buf = malloc(cap);
    int n = snprintf(buf, cap, "{\"kind\":\"gmm\",\"name\":\"t\",\"shape\":[%d],\"sde\":%s,"
                               "\"weights\":[", D, sde_json);
    for (int k = 0; k < K; k++) n += snprintf(buf + n, cap - n, "%s%g", k ? "," : "", (k + 1.0) / (K * (K + 1) / 2.0));
    n += snprintf(buf + n, cap - n, "],\"means\":[");
    for (int k = 0; k < K; k++) {
        n += snprintf(buf + n, cap - n, "%s[", k ? "," : "");
        for (int d = 0; d < D; d++)
            n += snprintf(buf + n, cap - n, "%s%.6f", d ? "," : "", sin(1.7 * k + 0.9 * d + 0.3));
        n += snprintf(buf + n, cap - n, "]");
    }
    n += snprintf(buf + n, cap - n, "],\"stds\":[");
    for (int k = 0; k < K; k++) {
        n += snprintf(buf + n, cap - n, "%s[", k ? "," : "");
        for (int d = 0; d < D; d++)
            n += snprintf(buf + n, cap - n, "%s%.4f", d ? "," : "", 0.3 + 0.15 * cos(2.1 * k + 1.3 * d));
        n += snprintf(buf + n, cap - n, "]");
    }
    snprintf(buf + n, cap - n, "]}");
    sc_model *m = model_from_text(buf);
    free(buf);
    return m;
}

static const char *const SDES[3] = {
    "{\"type\":\"vp\",\"beta_min\":0.1,\"beta_max\":20,\"N\":1000}",
    "{\"type\":\"subvp\",\"beta_min\":0.1,\"beta_max\":20,\"N\":1000}",
    "{\"type\":\"ve\",\"sigma_min\":0.01,\"sigma_max\":5,\"N\":1000}",
};

/* Data points: one near each of the first modes, off-centre. */
static void data_point(const sc_model *m, int i, float *x)
{
    const double *mu = gmm_mean(m, i % gmm_components(m));
    for (int d = 0; d < m->D; d++) x[d] = (float)(mu[d] + 0.2 * sin(3.0 * i + d));
}

static void run_likelihood(const sc_model *m, const likelihood_config *c, const float *x, int n,
                           uint64_t seed, likelihood_result *res, sc_task **keep)
{
    sc_task **t = calloc((size_t)n, sizeof *t);
    sc_error err = {0};
    for (int i = 0; i < n; i++)
        if (flow_likelihood_task_create(m, c, x + (size_t)i * m->D, seed, (uint64_t)i, &t[i], &err))
            fail_msg("%s", err.msg);
    run_tasks(m, t, n, 64);
    for (int i = 0; i < n; i++) {
        flow_task_likelihood(t[i], &res[i]);
        keep[i] = t[i];
    }
    free(t);
}

static double exact_answer(const sc_model *m, const float *x, const likelihood_result *r)
{
    double *xd = malloc(sizeof(double) * m->D);
    for (int d = 0; d < m->D; d++) xd[d] = x[d];
    double v = gmm_log_density(m, xd, 1e-5) - gmm_log_density(m, r->latent, 1.0) + r->prior_logp;
    free(xd);
    return v;
}

static void check_exact(int D, int K, double tol, double tol_nats)
{
    for (int s = 0; s < 3; s++) {
        sc_model *m = mixture(D, K, SDES[s]);
        likelihood_config c;
        likelihood_config_default(&c);
        c.exact_divergence = 1;
        c.rtol = c.atol = tol;
        enum { NPTS = 4 };
        float *x = malloc(sizeof(float) * NPTS * D);
        for (int i = 0; i < NPTS; i++) data_point(m, i, x + (size_t)i * D);
        likelihood_result r[NPTS];
        sc_task *t[NPTS];
        run_likelihood(m, &c, x, NPTS, 1, r, t);
        for (int i = 0; i < NPTS; i++) {
            double want = exact_answer(m, x + (size_t)i * D, &r[i]);
            double got = r[i].log_likelihood;
            print_message("D=%d %s tol=%g point %d: ode %.6f exact %.6f diff %.2e nfe %ld\n", D,
                          sde_type_name(m->sde.type), tol, i, got, want, got - want, r[i].nfe);
            if (!(fabs(got - want) <= tol_nats))
                fail_msg("D=%d %s: |%.6f - %.6f| > %g", D, sde_type_name(m->sde.type), got, want, tol_nats);
            task_free(t[i]);
        }
        free(x);
        sc_model_free(m);
    }
}

static void test_exact_2d_loose(void **state) { (void)state; check_exact(2, 8, 1e-5, 1e-2); }
static void test_exact_2d_tight(void **state) { (void)state; check_exact(2, 8, 1e-7, 1e-3); }
static void test_exact_16d_loose(void **state) { (void)state; check_exact(16, 5, 1e-5, 1e-2); }
static void test_exact_16d_tight(void **state) { (void)state; check_exact(16, 5, 1e-7, 1e-3); }

/* Hutchinson with 32 probes per item (each its own integral): the mean lies within three
 * standard errors of the exact-divergence value, for Rademacher and Gaussian probes. */
static void test_hutchinson_within_se(void **state)
{
    (void)state;
    for (int s = 0; s < 3; s++) {
        sc_model *m = mixture(16, 5, SDES[s]);
        float x[16];
        data_point(m, 1, x);
        likelihood_config c;
        likelihood_config_default(&c);
        c.exact_divergence = 1;
        likelihood_result exact, h;
        sc_task *t1, *t2;
        run_likelihood(m, &c, x, 1, 3, &exact, &t1);
        for (int p = 0; p < 2; p++) {
            c.exact_divergence = 0;
            c.probes = 32;
            c.probe = p == 0 ? PROBE_RADEMACHER : PROBE_GAUSSIAN;
            run_likelihood(m, &c, x, 1, 3, &h, &t2);
            print_message("%s %s: hutchinson %.4f +- %.4f, exact %.4f\n", sde_type_name(m->sde.type),
                          probe_kind_name(c.probe), h.log_likelihood, h.log_likelihood_se,
                          exact.log_likelihood);
            assert_true(h.log_likelihood_se > 0);
            assert_true(fabs(h.log_likelihood - exact.log_likelihood) <= 3 * h.log_likelihood_se);
            task_free(t2);
        }
        task_free(t1);
        sc_model_free(m);
    }
}

/* Bits/dim for dequantized 8-bit data: offset 7 (centered), and -logp/(D ln 2) + 7 exactly. */
static void test_bits_per_dim(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    float *x = malloc(sizeof(float) * m->D);
    const double *mu = gmm_mean(m, 3);
    for (int d = 0; d < m->D; d++) { /* an 8-bit image near class 3's mean */
        double u = floor((mu[d] + 1) / 2 * 255 + 0.5) / 255;
        x[d] = sc_model_from_unit(m, (float)u);
    }
    likelihood_config c;
    likelihood_config_default(&c);
    c.dequantize = 1;
    likelihood_result r;
    sc_task *t;
    run_likelihood(m, &c, x, 1, 0, &r, &t);
    print_message("fmnist-gmm bpd %.4f nats %.2f nfe %ld\n", r.bits_per_dim, r.log_likelihood, r.nfe);
    assert_true(isfinite(r.bits_per_dim));
    assert_true(fabs(r.bits_per_dim - (-r.log_likelihood / (m->D * log(2.0)) + 7.0)) < 1e-12);
    /* the per-pixel stds are >= 0.02 in [-1,1] units: the density is far sharper than uniform
       noise over [-1,1] (0 nats/dim), so bpd < 8 and > 0 */
    assert_true(r.bits_per_dim > 0 && r.bits_per_dim < 8);
    task_free(t);
    free(x);
    sc_model_free(m);
}

/* encode then decode (no denoising) returns the data point. */
static void test_encode_decode_round_trip(void **state)
{
    (void)state;
    for (int s = 0; s < 3; s++) {
        sc_model *m = mixture(2, 8, SDES[s]);
        float x[2];
        data_point(m, 2, x);
        likelihood_config lc;
        likelihood_config_default(&lc);
        lc.rtol = lc.atol = 1e-8;
        sc_error err = {0};
        sc_task *enc;
        if (flow_encode_task_create(m, &lc, x, &enc, &err)) fail_msg("%s", err.msg);
        run_tasks(m, &enc, 1, 8);
        float z[2];
        memcpy(z, flow_task_result(enc), sizeof z);
        sampler_config sc;
        sampler_config_default(&sc, m);
        sc.kind = SAMPLER_ODE;
        sc.rtol = sc.atol = 1e-8;
        sc.eps = 1e-5;
        sc.denoise = 0;
        sc_task *dec;
        if (flow_sample_task_create(m, &sc, NULL, z, 0, 0, &dec, &err)) fail_msg("%s", err.msg);
        run_tasks(m, &dec, 1, 8);
        const float *back = flow_task_result(dec);
        print_message("%s: x (%.5f, %.5f) z (%.4f, %.4f) back (%.5f, %.5f)\n", sde_type_name(m->sde.type),
                      x[0], x[1], z[0], z[1], back[0], back[1]);
        assert_true(fabs(back[0] - x[0]) < 1e-3 && fabs(back[1] - x[1]) < 1e-3);
        task_free(enc);
        task_free(dec);
        sc_model_free(m);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    likelihood_config c;
    likelihood_config_default(&c);
    sc_error err = {0};
    c.probes = 0;
    assert_int_equal(likelihood_config_validate(&c, m, &err), SC_ERR_INVALID);
    c.probes = 1;
    c.rtol = 0;
    assert_int_equal(likelihood_config_validate(&c, m, &err), SC_ERR_INVALID);
    sc_model_free(m);
    m = mixture(2, 2, SDES[0]);
    likelihood_config_default(&c);
    float bad[2] = {NAN, 0};
    sc_task *t = NULL;
    assert_int_equal(flow_likelihood_task_create(m, &c, bad, 0, 0, &t, &err), SC_ERR_INVALID);
    assert_null(t);
    sc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_2d_loose),      cmocka_unit_test(test_exact_2d_tight),
        cmocka_unit_test(test_exact_16d_loose),     cmocka_unit_test(test_exact_16d_tight),
        cmocka_unit_test(test_hutchinson_within_se), cmocka_unit_test(test_bits_per_dim),
        cmocka_unit_test(test_encode_decode_round_trip), cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
