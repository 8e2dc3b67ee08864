/* The analytic mixture: score = grad log p_t (central differences of the exact density), VJP =
 * v^T d score/dx (central differences of the score), guidance = score + w grad log p(y|x,t),
 * and the loader's refusals of malformed files. */
#include "testutil.h"

#include <unistd.h>

static const char *const SDES[3] = {
    "{\"type\":\"vp\",\"beta_min\":0.1,\"beta_max\":20,\"N\":1000}",
    "{\"type\":\"subvp\",\"beta_min\":0.1,\"beta_max\":20,\"N\":1000}",
    "{\"type\":\"ve\",\"sigma_min\":0.01,\"sigma_max\":5,\"N\":1000}",
};

static sc_model *small_mixture(int s)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"kind\":\"gmm\",\"name\":\"s\",\"shape\":[5],\"sde\":%s,\"weights\":[0.5,0.3,0.2],"
             "\"means\":[[0.1,-0.4,0.8,0.2,-0.9],[-0.6,0.5,0.1,-0.3,0.4],[0.9,0.7,-0.5,0.6,0.0]],"
             "\"stds\":[[0.3,0.2,0.25,0.4,0.35],0.3,[0.5,0.15,0.2,0.3,0.25]],"
             "\"labels\":[\"a\",\"b\",\"c\"]}", SDES[s]);
    return model_from_text(buf);
}

static void eval(const sc_model *m, const float *x, double t, int label, float w, const float *v,
                 float *score, float *vjp)
{
    score_query q = {.x = x, .t = t, .label = label, .guidance = w, .probe = v, .score = score, .vjp = vjp};
    void *scratch = sc_model_scratch_alloc(m, 1);
    sc_error err = {0};
    assert_int_equal(m->ops->eval(m, &q, 1, scratch, &err), 0);
    free(scratch);
}

static double log_post(const sc_model *m, const double *x, double t, int y)
{
    double post[8];
    gmm_posterior(m, x, t, post);
    return log(post[y]);
}

static void test_score_and_vjp_match_differences(void **state)
{
    (void)state;
    const double times[3] = {0.02, 0.3, 0.9};
    for (int s = 0; s < 3; s++) {
        sc_model *m = small_mixture(s);
        for (int ti = 0; ti < 3; ti++) {
            double t = times[ti];
            float x[5] = {0.05f, -0.2f, 0.5f, 0.1f, -0.3f}, v[5] = {0.3f, -1.0f, 0.5f, 0.8f, -0.2f};
            for (int label = -1; label < 3; label += 2) {
                float w = label >= 0 ? 1.5f : 0.0f;
                float score[5], vjp[5];
                eval(m, x, t, label, w, v, score, vjp);
                const double h = 1e-5;
                double xd[5];
                for (int d = 0; d < 5; d++) xd[d] = x[d];
                for (int d = 0; d < 5; d++) {
                    double xp[5], xm[5];
                    memcpy(xp, xd, sizeof xp);
                    memcpy(xm, xd, sizeof xm);
                    xp[d] += h;
                    xm[d] -= h;
                    double num = (gmm_log_density(m, xp, t) - gmm_log_density(m, xm, t)) / (2 * h);
                    if (label >= 0) num += w * (log_post(m, xp, t, label) - log_post(m, xm, t, label)) / (2 * h);
                    double tol = 1e-4 * (1 + fabs(num));
                    if (fabs(score[d] - num) > tol)
                        fail_msg("%s t=%g label %d: score[%d] %.7g vs difference %.7g",
                                 sde_type_name(m->sde.type), t, label, d, score[d], num);
                }
                /* VJP: the symmetric Jacobian times v, against differences of the score along v */
                const float hv = 1e-3f;
                float xp[5], xm[5], sp[5], sm[5], dummy[5];
                for (int d = 0; d < 5; d++) {
                    xp[d] = x[d] + hv * v[d];
                    xm[d] = x[d] - hv * v[d];
                }
                eval(m, xp, t, label, w, NULL, sp, dummy);
                eval(m, xm, t, label, w, NULL, sm, dummy);
                for (int d = 0; d < 5; d++) {
                    double num = ((double)sp[d] - sm[d]) / (2 * hv);
                    double tol = 2e-3 * (1 + fabs(num));
                    if (fabs(vjp[d] - num) > tol)
                        fail_msg("%s t=%g label %d: vjp[%d] %.6g vs difference %.6g",
                                 sde_type_name(m->sde.type), t, label, d, vjp[d], num);
                }
            }
        }
        sc_model_free(m);
    }
}

/* At t -> 0 the perturbed density is the data mixture itself. */
static void test_density_at_zero(void **state)
{
    (void)state;
    sc_model *m = model_from_text("{\"kind\":\"gmm\",\"shape\":[1],\"sde\":{\"type\":\"vp\"},"
                                  "\"weights\":[1],\"means\":[[0.5]],\"stds\":[2]}");
    double x = 1.5;
    assert_true(fabs(gmm_log_density(m, &x, 0) - (-0.5 * log(2 * M_PI * 4) - 0.125)) < 1e-14);
    /* VP at t: N(a 0.5, a^2 4 + std^2) */
    double a, std;
    sde_marginal(&m->sde, 0.4, &a, &std);
    double var = a * a * 4 + std * std;
    assert_true(fabs(gmm_log_density(m, &x, 0.4) - (-0.5 * log(2 * M_PI * var) - (x - a * 0.5) * (x - a * 0.5) / (2 * var))) < 1e-13);
    sc_model_free(m);
}

static void expect_load_error(const char *text, const char *needle)
{
    char path[] = "/tmp/scored_test_gmm_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    sc_model *m = NULL;
    sc_error err = {0};
    int rc = sc_model_load(path, &m, &err);
    unlink(path);
    if (rc != SC_ERR_FORMAT) fail_msg("expected a format error for %s, got %d", text, rc);
    assert_null(m);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_loader_refusals(void **state)
{
    (void)state;
    const char *ok_sde = "\"sde\":{\"type\":\"vp\"}";
    char buf[1024];
    expect_load_error("{not json", "not valid JSON");
    expect_load_error("[1,2]", "JSON object");
    expect_load_error("{\"kind\":\"unet\"}", "unknown \"kind\"");
    expect_load_error("{\"kind\":\"gmm\",\"shape\":[2,2],\"sde\":{\"type\":\"vp\"}}", "shape");
    expect_load_error("{\"kind\":\"gmm\",\"shape\":[2],\"sde\":{\"type\":\"xx\"}}", "sde");
    expect_load_error("{\"kind\":\"gmm\",\"shape\":[2],\"sde\":{\"type\":\"ve\",\"sigma_min\":5,\"sigma_max\":1}}", "sde");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[0.5,0.5],\"means\":[[0,0]],\"stds\":[1,1]}", ok_sde);
    expect_load_error(buf, "means");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[1],\"means\":[[0,0,0]],\"stds\":[1]}", ok_sde);
    expect_load_error(buf, "means[0]");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[1],\"means\":[[0,0]],\"stds\":[-1]}", ok_sde);
    expect_load_error(buf, "stds");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[0.2,0.2],\"means\":[[0,0],[1,1]],\"stds\":[1,1]}", ok_sde);
    expect_load_error(buf, "sum");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[1],\"means\":[[0,\"a\"]],\"stds\":[1]}", ok_sde);
    expect_load_error(buf, "finite");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2],%s,\"weights\":[1],\"means\":[[0,0]],\"stds\":[1],\"labels\":[\"a\",\"b\"]}", ok_sde);
    expect_load_error(buf, "labels");
    snprintf(buf, sizeof buf, "{\"kind\":\"gmm\",\"shape\":[2,28,28],%s,\"weights\":[1],\"means\":[[0]],\"stds\":[1]}", ok_sde);
    expect_load_error(buf, "channels");
    sc_model *m = NULL;
    sc_error err = {0};
    assert_int_equal(sc_model_load("/nonexistent/model.json", &m, &err), SC_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/model.json"));
}

static void test_shipped_models_load(void **state)
{
    (void)state;
    const char *files[3] = {MODELS_DIR "/gmm-2d.json", MODELS_DIR "/gmm-2d-ve.json", MODELS_DIR "/fmnist-gmm.json"};
    const int dims[3] = {2, 2, 784};
    for (int i = 0; i < 3; i++) {
        sc_model *m = model_from_file(files[i]);
        assert_int_equal(m->D, dims[i]);
        assert_true(m->guidable);
        double wsum = 0;
        for (int k = 0; k < gmm_components(m); k++) wsum += gmm_weight(m, k);
        assert_true(fabs(wsum - 1) < 1e-12);
        sc_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_and_vjp_match_differences), cmocka_unit_test(test_density_at_zero),
        cmocka_unit_test(test_loader_refusals), cmocka_unit_test(test_shipped_models_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
