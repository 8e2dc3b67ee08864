/* Controllable generation on exact models: inpainting on a correlated Gaussian (the engine's
 * output moments against the exact moments of the replacement sampler, propagated in closed
 * form), the full-covariance Gaussian model itself, inpainting and colorization on mixtures
 * (kept pixels exact, generated part in the consistent mode). */
#include "testutil.h"

#include "gauss.h"

#define Z_BOUND 4.5

/* 4-D zero-mean Gaussian with unit variances and correlations 0.8 (x0,x2), 0.6 (x1,x3),
 * 0.3 (x0,x1), 0.2 (x2,x3), 0.24 (x0,x3), 0.24 (x1,x2): x0, x1 known; x2, x3 generated. */
static const double COV4[16] = {
    1.0, 0.3, 0.8, 0.24,
    0.3, 1.0, 0.24, 0.6,
    0.8, 0.24, 1.0, 0.2,
    0.24, 0.6, 0.2, 1.0,
};

static sc_model *gaussian4(void)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "{\"kind\":\"gaussian\",\"name\":\"g4\",\"shape\":[4],"
                                      "\"sde\":{\"type\":\"vp\"},\"mean\":[0,0,0,0],\"cov\":[");
    for (int i = 0; i < 4; i++)
        n += snprintf(buf + n, sizeof buf - n, "%s[%g,%g,%g,%g]", i ? "," : "", COV4[4 * i],
                      COV4[4 * i + 1], COV4[4 * i + 2], COV4[4 * i + 3]);
    snprintf(buf + n, sizeof buf - n, "]}");
    json_error_t jerr;
    json_t *root = json_loads(buf, 0, &jerr);
    sc_model *m = NULL;
    sc_error err = {0};
    if (gauss_from_json(root, "(test)", &m, &err)) fail_msg("%s", err.msg);
    json_decref(root);
    return m;
}

/* Solves the 4x4 system P X = I by Gauss-Jordan (P symmetric positive definite). */
static void inverse4(const double *P, double *inv)
{
    double a[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) a[i][j] = j < 4 ? P[4 * i + j] : (j - 4 == i);
    for (int c = 0; c < 4; c++) {
        double piv = a[c][c];
        for (int j = 0; j < 8; j++) a[c][j] /= piv;
        for (int r = 0; r < 4; r++)
            if (r != c) {
                double f = a[r][c];
                for (int j = 0; j < 8; j++) a[r][j] -= f * a[c][j];
            }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) inv[4 * i + j] = a[i][j + 4];
}

/* Exact mean and covariance of the replacement PC sampler's output for the zero-mean
 * Gaussian: every update is linear, x <- M x + C z with M = A I - B Prec_t, then the known
 * part is replaced by a(t) y + std(t) z'.  Mirrors pc.c's order: corrector (ALD, linear)
 * then reverse-diffusion predictor at each grid time; output = the last predictor's mean. */
static void replacement_moments(const sc_model *m, const sampler_config *c, const double *y,
                                const int *known, double *mean, double *cov)
{
    const int D = 4, N = c->steps;
    sde s = m->sde;
    s.N = N;
    double mu[4], P[16];
    for (int i = 0; i < D; i++) {
        mu[i] = known[i] ? y[i] : 0.0;
        for (int j = 0; j < D; j++) P[4 * i + j] = (i == j && !known[i]) ? 1.0 : 0.0;
    }
    double out_mu[4] = {0}, out_P[16] = {0};
    for (int i = 0; i < N; i++) {
        double t = i == N - 1 ? c->eps : 1.0 + i * (c->eps - 1.0) / (N - 1);
        double a, std;
        sde_marginal(&m->sde, t, &a, &std);
        double Sig[16], Prec[16];
        for (int k = 0; k < 16; k++) Sig[k] = a * a * COV4[k] + (k % 5 == 0 ? std * std : 0);
        inverse4(Sig, Prec);
        for (int phase = 0; phase < 2; phase++) {
            double A, B, C;
            if (phase == 0) {
                if (c->corrector != CORRECTOR_ALD) continue;
                double alpha = 1.0 - sde_vp_discrete_beta(&s, sde_index(&s, t));
                double eps = 2 * alpha * (c->snr * std) * (c->snr * std);
                A = 1;
                B = eps;
                C = sqrt(2 * eps);
            } else {
                double fc, G;
                sde_discretize(&s, t, &fc, &G);
                A = 1 - fc;
                B = G * G;
                C = G;
            }
            double M[16], nm[4], MP[16], nP[16];
            for (int k = 0; k < 16; k++) M[k] = (k % 5 == 0 ? A : 0) - B * Prec[k];
            for (int r = 0; r < D; r++) {
                nm[r] = 0;
                for (int k = 0; k < D; k++) nm[r] += M[4 * r + k] * mu[k];
            }
            for (int r = 0; r < D; r++)
                for (int q = 0; q < D; q++) {
                    MP[4 * r + q] = 0;
                    for (int k = 0; k < D; k++) MP[4 * r + q] += M[4 * r + k] * P[4 * k + q];
                }
            for (int r = 0; r < D; r++)
                for (int q = 0; q < D; q++) {
                    nP[4 * r + q] = 0;
                    for (int k = 0; k < D; k++) nP[4 * r + q] += MP[4 * r + k] * M[4 * q + k];
                }
            if (phase == 1 && i == N - 1) { /* the output: the predictor's mean */
                memcpy(out_mu, nm, sizeof nm);
                memcpy(out_P, nP, sizeof nP);
            }
            for (int r = 0; r < D; r++) {
                mu[r] = known[r] ? a * y[r] : nm[r];
                for (int q = 0; q < D; q++) {
                    if (known[r] || known[q]) P[4 * r + q] = (r == q) ? std * std : 0.0;
                    else P[4 * r + q] = nP[4 * r + q] + (r == q ? C * C : 0.0);
                }
            }
        }
    }
    memcpy(mean, out_mu, sizeof out_mu);
    memcpy(cov, out_P, sizeof out_P);
}

static void test_inpaint_matches_replacement_recursion(void **state)
{
    (void)state;
    sc_model *m = gaussian4();
    const double y[4] = {1.0, -0.5, 0, 0};
    const int known[4] = {1, 1, 0, 0};
    float data[4] = {1.0f, -0.5f, 0, 0}, mask[4] = {1, 1, 0, 0};
    sc_condition cond = {.kind = COND_INPAINT, .data = data, .mask = mask, .label = -1};
    /* exact conditional of (x2, x3) given (x0, x1) = y, for reference in the log */
    const int n = 4096;
    for (int variant = 0; variant < 2; variant++) {
        sampler_config c;
        sampler_config_default(&c, m);
        c.steps = 200;
        c.corrector = variant ? CORRECTOR_ALD : CORRECTOR_NONE;
        c.snr = 0.16;
        c.eps = 1e-3;
        double want_mu[4], want_P[16];
        replacement_moments(m, &c, y, known, want_mu, want_P);
        float *x = draw_samples(m, &c, &cond, n, 17, NULL);
        double mu[2] = {0}, P[3] = {0};
        for (int i = 0; i < n; i++) {
            assert_true(x[4 * i] == data[0] && x[4 * i + 1] == data[1]); /* kept exactly */
            mu[0] += x[4 * i + 2];
            mu[1] += x[4 * i + 3];
        }
        mu[0] /= n;
        mu[1] /= n;
        for (int i = 0; i < n; i++) {
            double a = x[4 * i + 2] - mu[0], b = x[4 * i + 3] - mu[1];
            P[0] += a * a;
            P[1] += b * b;
            P[2] += a * b;
        }
        for (int k = 0; k < 3; k++) P[k] /= n - 1;
        double v2 = want_P[10], v3 = want_P[15], c23 = want_P[11];
        double z[5] = {
            (mu[0] - want_mu[2]) / sqrt(v2 / n), (mu[1] - want_mu[3]) / sqrt(v3 / n),
            (P[0] - v2) / (v2 * sqrt(2.0 / (n - 1))), (P[1] - v3) / (v3 * sqrt(2.0 / (n - 1))),
            (P[2] - c23) / sqrt((v2 * v3 + c23 * c23) / (n - 1)),
        };
        print_message("inpaint %s: mean (%.4f %.4f) want (%.4f %.4f); cov (%.4f %.4f %.4f) want (%.4f %.4f %.4f)\n",
                      variant ? "rd+ald" : "rd", mu[0], mu[1], want_mu[2], want_mu[3], P[0], P[1],
                      P[2], v2, v3, c23);
        for (int k = 0; k < 5; k++)
            if (fabs(z[k]) > Z_BOUND) fail_msg("statistic %d off by %.1f standard errors", k, z[k]);
        free(x);
    }
    sc_model_free(m);
}

/* Exact conditional of (x2, x3) given (x0, x1) = y for COV4: Schur complement. */
static void exact_conditional(const double *y, double *mean, double *cov)
{
    double kk[4] = {COV4[0], COV4[1], COV4[4], COV4[5]};
    double det = kk[0] * kk[3] - kk[1] * kk[2];
    double inv[4] = {kk[3] / det, -kk[1] / det, -kk[2] / det, kk[0] / det};
    double uk[4] = {COV4[8], COV4[9], COV4[12], COV4[13]}; /* rows x2, x3; cols x0, x1 */
    double g[4]; /* uk * inv */
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) g[2 * r + c] = uk[2 * r] * inv[c] + uk[2 * r + 1] * inv[2 + c];
    for (int r = 0; r < 2; r++) mean[r] = g[2 * r] * y[0] + g[2 * r + 1] * y[1];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++)
            cov[2 * r + c] = COV4[4 * (2 + r) + 2 + c] - (g[2 * r] * uk[2 * c] + g[2 * r + 1] * uk[2 * c + 1]);
}

/* With enough annealed-Langevin correction near t = 0 (the ALD step depends on t only, so it
 * leaves the target invariant in the small-step limit), PC inpainting reaches the exact
 * conditional: mean and covariance within 4.5 standard errors of 4096 samples.  Predictor-only
 * replacement does not (logged for comparison; the previous test pins its exact output). */
static void test_inpaint_matches_exact_conditional(void **state)
{
    (void)state;
    sc_model *m = gaussian4();
    const double y[2] = {1.0, -0.5};
    double cm[2], cc[4];
    exact_conditional(y, cm, cc);
    float data[4] = {1.0f, -0.5f, 0, 0}, mask[4] = {1, 1, 0, 0};
    sc_condition cond = {.kind = COND_INPAINT, .data = data, .mask = mask, .label = -1};
    sampler_config c;
    sampler_config_default(&c, m);
    c.steps = 500;
    c.corrector = CORRECTOR_ALD;
    c.snr = 0.5;
    c.corrector_steps = 10;
    const int n = 4096;
    double nfe;
    float *x = draw_samples(m, &c, &cond, n, 23, &nfe);
    double mu[2] = {0}, P[3] = {0};
    for (int i = 0; i < n; i++) {
        mu[0] += x[4 * i + 2];
        mu[1] += x[4 * i + 3];
    }
    mu[0] /= n;
    mu[1] /= n;
    for (int i = 0; i < n; i++) {
        double a = x[4 * i + 2] - mu[0], b = x[4 * i + 3] - mu[1];
        P[0] += a * a;
        P[1] += b * b;
        P[2] += a * b;
    }
    for (int k = 0; k < 3; k++) P[k] /= n - 1;
    double z[5] = {
        (mu[0] - cm[0]) / sqrt(cc[0] / n), (mu[1] - cm[1]) / sqrt(cc[3] / n),
        (P[0] - cc[0]) / (cc[0] * sqrt(2.0 / (n - 1))), (P[1] - cc[3]) / (cc[3] * sqrt(2.0 / (n - 1))),
        (P[2] - cc[1]) / sqrt((cc[0] * cc[3] + cc[1] * cc[1]) / (n - 1)),
    };
    print_message("inpaint rd+ald(snr 0.5, 10 steps, nfe %.0f): mean (%.4f %.4f) exact (%.4f %.4f); "
                  "cov (%.4f %.4f %.4f) exact (%.4f %.4f %.4f); z = %.1f %.1f %.1f %.1f %.1f\n",
                  nfe, mu[0], mu[1], cm[0], cm[1], P[0], P[1], P[2], cc[0], cc[3], cc[1], z[0], z[1],
                  z[2], z[3], z[4]);
    for (int k = 0; k < 5; k++)
        if (fabs(z[k]) > Z_BOUND) fail_msg("statistic %d off by %.1f standard errors", k, z[k]);
    free(x);
    /* the predictor-only replacement sampler, for the log: its mean is visibly shrunk */
    sampler_config_default(&c, m);
    c.steps = 500;
    c.corrector = CORRECTOR_NONE;
    x = draw_samples(m, &c, &cond, n, 23, NULL);
    double m0 = 0;
    for (int i = 0; i < n; i++) m0 += x[4 * i + 2];
    print_message("inpaint rd only: mean x2 %.4f, exact %.4f\n", m0 / n, cm[0]);
    free(x);
    sc_model_free(m);
}

/* The full-covariance model's score and VJP against differences of its exact density. */
static void test_gaussian_model_exact(void **state)
{
    (void)state;
    sc_model *m = gaussian4();
    float x[4] = {0.3f, -0.7f, 1.1f, 0.2f}, v[4] = {1, -0.5f, 0.25f, 2}, s[4], jv[4];
    score_query q = {.x = x, .t = 0.37, .label = -1, .probe = v, .score = s, .vjp = jv};
    void *scratch = sc_model_scratch_alloc(m, 1);
    sc_error err = {0};
    assert_int_equal(m->ops->eval(m, &q, 1, scratch, &err), 0);
    double xd[4] = {x[0], x[1], x[2], x[3]}, h = 1e-5;
    for (int d = 0; d < 4; d++) {
        double xp[4], xm[4];
        memcpy(xp, xd, sizeof xp);
        memcpy(xm, xd, sizeof xm);
        xp[d] += h;
        xm[d] -= h;
        double num = (gauss_log_density(m, xp, 0.37) - gauss_log_density(m, xm, 0.37)) / (2 * h);
        assert_true(fabs(s[d] - num) < 1e-5 * (1 + fabs(num)));
    }
    /* J is constant: J v = score(x + v) - score(x) */
    float xv[4], s2[4];
    for (int d = 0; d < 4; d++) xv[d] = x[d] + v[d];
    score_query q2 = {.x = xv, .t = 0.37, .label = -1, .score = s2};
    assert_int_equal(m->ops->eval(m, &q2, 1, scratch, &err), 0);
    for (int d = 0; d < 4; d++) assert_true(fabs(jv[d] - (s2[d] - s[d])) < 1e-5);
    /* guidance is refused: it has no classes */
    q.label = 0;
    q.guidance = 1;
    assert_int_equal(m->ops->eval(m, &q, 1, scratch, &err), SC_ERR_UNSUPPORTED);
    free(scratch);
    /* likelihood through the ODE equals the method's exact answer */
    likelihood_config lc;
    likelihood_config_default(&lc);
    lc.exact_divergence = 1;
    lc.rtol = lc.atol = 1e-7;
    sc_task *t;
    if (flow_likelihood_task_create(m, &lc, x, 0, 0, &t, &err)) fail_msg("%s", err.msg);
    run_tasks(m, &t, 1, 8);
    likelihood_result r;
    flow_task_likelihood(t, &r);
    double want = gauss_log_density(m, xd, 1e-5) - gauss_log_density(m, r.latent, 1) + r.prior_logp;
    print_message("gaussian likelihood %.7f exact %.7f\n", r.log_likelihood, want);
    assert_true(fabs(r.log_likelihood - want) < 1e-3);
    task_free(t);
    sc_model_free(m);
}

static void test_gaussian_refusals(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"kind\":\"gaussian\",\"shape\":[2],\"sde\":{\"type\":\"vp\"},\"mean\":[0,0],\"cov\":[[1,0.5],[0.4,1]]}",
        "{\"kind\":\"gaussian\",\"shape\":[2],\"sde\":{\"type\":\"vp\"},\"mean\":[0,0],\"cov\":[[1,2],[2,1]]}",
        "{\"kind\":\"gaussian\",\"shape\":[2],\"sde\":{\"type\":\"vp\"},\"mean\":[0],\"cov\":[[1,0],[0,1]]}",
        "{\"kind\":\"gaussian\",\"shape\":[2],\"sde\":{\"type\":\"vp\"},\"mean\":[0,0],\"cov\":[[1,0]]}",
    };
    const char *needle[] = {"symmetric", "positive definite", "mean", "cov"};
    for (int i = 0; i < 4; i++) {
        json_t *root = json_loads(bad[i], 0, NULL);
        sc_model *m = NULL;
        sc_error err = {0};
        assert_int_equal(gauss_from_json(root, "(t)", &m, &err), SC_ERR_FORMAT);
        assert_non_null(strstr(err.msg, needle[i]));
        assert_null(m);
        json_decref(root);
    }
}

/* Inpainting a Fashion-MNIST class-mean image with its right half masked: the kept half is the
 * input exactly, and the generated half belongs to the same class. */
static void test_inpaint_fmnist_mode(void **state)
{
    (void)state;
    sc_model *m = model_from_file(MODELS_DIR "/fmnist-gmm.json");
    const int D = m->D;
    float *data = malloc(sizeof(float) * D), *mask = malloc(sizeof(float) * D);
    sampler_config c;
    sampler_config_default(&c, m);
    c.steps = 200;
    for (int cls = 0; cls < 10; cls += 4) {
        for (int d = 0; d < D; d++) {
            data[d] = (float)gmm_mean(m, cls)[d];
            mask[d] = (d % 28) < 14 ? 1.0f : 0.0f;
        }
        sc_condition cond = {.kind = COND_INPAINT, .data = data, .mask = mask, .label = -1};
        const int n = 16;
        float *x = draw_samples(m, &c, &cond, n, 3, NULL);
        int hits = 0;
        for (int i = 0; i < n; i++) {
            double xd[784], post[16];
            for (int d = 0; d < D; d++) {
                if (mask[d] == 1.0f) assert_true(x[(size_t)i * D + d] == data[d]);
                xd[d] = x[(size_t)i * D + d];
            }
            gmm_posterior(m, xd, 0, post);
            hits += post[cls] > 0.99;
        }
        print_message("inpaint class %d: %d/%d samples in the class\n", cls, hits, n);
        assert_int_equal(hits, n);
        free(x);
    }
    free(data);
    free(mask);
    sc_model_free(m);
}

/* Colorization on a 3x2x2 mixture of a red and a blue image with the same gray level: the
 * gray channel of the output is the input's, and each output is one of the two colourings. */
static void test_colorize(void **state)
{
    (void)state;
    const double g = 0.1; /* per-channel value offsets keep R+G+B equal for both */
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"kind\":\"gmm\",\"name\":\"rb\",\"shape\":[3,2,2],\"sde\":{\"type\":\"vp\"},"
             "\"weights\":[0.6,0.4],\"means\":[[%g,%g,%g,%g,%g,%g,%g,%g,%g,%g,%g,%g],"
             "[%g,%g,%g,%g,%g,%g,%g,%g,%g,%g,%g,%g]],\"stds\":[0.03,0.03],\"labels\":[\"red\",\"blue\"]}",
             0.8, 0.8, 0.8, 0.8, -0.4 + g, -0.4 + g, -0.4 + g, -0.4 + g, -0.4 - g, -0.4 - g, -0.4 - g, -0.4 - g,
             -0.4 - g, -0.4 - g, -0.4 - g, -0.4 - g, -0.4 + g, -0.4 + g, -0.4 + g, -0.4 + g, 0.8, 0.8, 0.8, 0.8);
    sc_model *m = model_from_text(buf);
    float gray[12];
    for (int d = 0; d < 12; d++) gray[d] = 0.0f; /* (0.8 - 0.4 - 0.4) / 3 = 0 on every channel */
    sc_condition cond = {.kind = COND_COLORIZE, .data = gray, .label = -1};
    sampler_config c;
    sampler_config_default(&c, m);
    c.steps = 300;
    const int n = 200;
    float *x = draw_samples(m, &c, &cond, n, 8, NULL);
    int red = 0, blue = 0;
    for (int i = 0; i < n; i++) {
        const float *p = x + 12 * i;
        for (int px = 0; px < 4; px++) {
            double lum = (p[px] + p[4 + px] + p[8 + px]) / sqrt(3.0);
            assert_true(fabs(lum) < 1e-5); /* the known (gray) channel is the input's */
        }
        double xd[12], post[2];
        for (int d = 0; d < 12; d++) xd[d] = p[d];
        gmm_posterior(m, xd, 0, post);
        red += post[0] > 0.99;
        blue += post[1] > 0.99;
        /* and close to that colouring's mean */
        const double *mu = gmm_mean(m, post[0] > 0.5 ? 0 : 1);
        for (int d = 0; d < 12; d++) assert_true(fabs(p[d] - mu[d]) < 0.2);
    }
    print_message("colorize: %d red, %d blue of %d\n", red, blue, n);
    assert_int_equal(red + blue, n);
    assert_true(red > 40 && blue > 40);
    free(x);
    sc_model_free(m);
}

/* The colorization matrix (spec 6.2, 12): M (rows = input RGB channel, columns = decoupled
 * channel) is orthogonal, M^T M = I and M M^T = I to 1e-6 (the spec's float32 values reach
 * about 2e-7), and its first column is the gray direction (1, 1, 1)/sqrt(3) to 1e-6, so
 * decoupled channel 0 = (R + G + B)/sqrt(3); the entries are the spec's to 1e-8. */
static void test_color_matrix(void **state)
{
    (void)state;
    const double *M = pc_color_matrix;
    const double spec[9] = {0.57735014, -0.81649649, 0.000000047008697, 0.57735026, 0.40824834, 0.70710671,
                            0.57735026, 0.40824822, -0.70710683};
    for (int i = 0; i < 9; i++) assert_true(fabs(M[i] - spec[i]) < 1e-8);
    double worst_tm = 0, worst_mt = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double tm = 0, mt = 0; /* (M^T M)_ij = sum_r M[r][i] M[r][j]; (M M^T)_ij = sum_c M[i][c] M[j][c] */
            for (int r = 0; r < 3; r++) {
                tm += M[3 * r + i] * M[3 * r + j];
                mt += M[3 * i + r] * M[3 * j + r];
            }
            worst_tm = fmax(worst_tm, fabs(tm - (i == j)));
            worst_mt = fmax(worst_mt, fabs(mt - (i == j)));
        }
    double worst_gray = 0;
    for (int r = 0; r < 3; r++) worst_gray = fmax(worst_gray, fabs(M[3 * r] - 1 / sqrt(3.0)));
    print_message("color matrix: max |M^T M - I| %.2e, max |M M^T - I| %.2e, max |column 0 - 1/sqrt(3)| %.2e\n",
                  worst_tm, worst_mt, worst_gray);
    assert_true(worst_tm < 1e-6);
    assert_true(worst_mt < 1e-6);
    assert_true(worst_gray < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inpaint_matches_replacement_recursion),
        cmocka_unit_test(test_inpaint_matches_exact_conditional),
        cmocka_unit_test(test_gaussian_model_exact),
        cmocka_unit_test(test_gaussian_refusals),
        cmocka_unit_test(test_inpaint_fmnist_mode),
        cmocka_unit_test(test_colorize),
        cmocka_unit_test(test_color_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
