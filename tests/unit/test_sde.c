/* SDE closed forms against the float64 reference values of spec §12, and a simulation of
 * the forward SDE (fine Euler-Maruyama) that must reproduce the closed-form marginals. */
#include "testutil.h"

#include "rng.h"
#include "sde.h"

static sde ve_cifar(void)
{
    return (sde){.type = SDE_VE, .sigma_min = 0.01, .sigma_max = 50, .N = 1000};
}
static sde vp_default(sde_type type)
{
    return (sde){.type = type, .beta_min = 0.1, .beta_max = 20, .N = 1000};
}

#define assert_rel(a, b, tol) \
    do { double a_ = (a), b_ = (b); \
         if (!(fabs(a_ - b_) <= (tol) * fabs(b_))) fail_msg("%s = %.12g, want %.12g", #a, a_, b_); \
    } while (0)

static void test_ve_reference_values(void **state)
{
    (void)state;
    sde s = ve_cifar();
    assert_rel(sde_ve_discrete_sigma(&s, 0), 0.01, 1e-12);
    assert_rel(sde_ve_discrete_sigma(&s, 1), 0.0100856217, 1e-8);
    assert_rel(sde_ve_discrete_sigma(&s, 998), 49.5755261, 1e-8);
    assert_rel(sde_ve_discrete_sigma(&s, 999), 50, 1e-12);
    double f, G;
    sde_discretize(&s, 1.0, &f, &G);
    assert_rel(G, 6.50132387, 1e-8);
    assert_true(f == 0.0);
    sde_discretize(&s, 1e-5, &f, &G);
    assert_rel(G, 0.01, 1e-9);
    assert_rel(sde_diffusion(&s, 0.0) / 0.01, 4.12727348, 1e-8);
    assert_rel(sde_ve_sigma(&s, 1e-5), 0.0100008518, 1e-8);
    double a, std;
    sde_marginal(&s, 0.3, &a, &std);
    assert_true(a == 1.0);
    assert_rel(std, sde_ve_sigma(&s, 0.3), 1e-15);
    assert_rel(sde_prior_std(&s), 50, 0);
}

static void test_vp_subvp_reference_values(void **state)
{
    (void)state;
    sde vp = vp_default(SDE_VP), sub = vp_default(SDE_SUBVP);
    const struct { double t, mean, std, sub_std; } ref[] = {
        {1e-5, 0.9999995, 0.00100049713, 1.0009945e-6},
        {1e-3, 0.999945027, 0.0104854163, 0.000109943956},
        {0.5, 0.281182881, 0.959654202, 0.920936188},
        {1.0, 0.00657158649, 0.999978407, 0.999956814},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double a, std;
        sde_marginal(&vp, ref[i].t, &a, &std);
        assert_rel(a, ref[i].mean, 1e-8);
        assert_rel(std, ref[i].std, 1e-8);
        sde_marginal(&sub, ref[i].t, &a, &std);
        assert_rel(a, ref[i].mean, 1e-8);
        assert_rel(std, ref[i].sub_std, 1e-7);
    }
    assert_rel(sde_vp_discrete_beta(&vp, 0), 1e-4, 1e-12);
    assert_rel(sde_vp_discrete_beta(&vp, 999), 0.02, 1e-12);
    /* sqrt(1 - alphas_cumprod)[0] = 0.01 and [999] = 0.99997982 */
    double cum = 1.0;
    for (int k = 0; k < 1000; k++) {
        cum *= 1.0 - sde_vp_discrete_beta(&vp, k);
        if (k == 0) assert_rel(sqrt(1 - cum), 0.01, 1e-9);
    }
    assert_rel(sqrt(1 - cum), 0.99997982, 1e-8);
    /* VP reverse-diffusion: f = (sqrt(1 - beta) - 1) x, G = sqrt(beta) at k = floor(t (N-1)) */
    double f, G;
    sde_discretize(&vp, 1.0, &f, &G);
    assert_rel(G, sqrt(0.02), 1e-12);
    assert_rel(f, sqrt(1 - 0.02) - 1, 1e-12);
    /* sub-VP: Euler-Maruyama discretization with dt = 1/N */
    sde_discretize(&sub, 0.5, &f, &G);
    assert_rel(f, sde_drift_coef(&sub, 0.5) / 1000, 1e-12);
    assert_rel(G, sde_diffusion(&sub, 0.5) * sqrt(1e-3), 1e-12);
    assert_rel(sde_drift_coef(&vp, 0.5), -0.5 * (0.1 + 0.5 * 19.9), 1e-12);
    assert_rel(sde_diffusion(&vp, 0.5), sqrt(0.1 + 0.5 * 19.9), 1e-12);
}

static void test_grid_indices(void **state)
{
    (void)state;
    /* linspace(1, 1e-5, 1000): t_1 = 0.998999009, t_998 = 0.00101099099; k at step i = 999 - i */
    sde s = ve_cifar();
    for (int i = 0; i < 1000; i++) {
        double t = i == 999 ? 1e-5 : 1.0 + i * (1e-5 - 1.0) / 999;
        if (i == 1) assert_rel(t, 0.998999009, 1e-9);
        if (i == 998) assert_rel(t, 0.00101099099, 1e-8);
        assert_int_equal(sde_index(&s, t), 999 - i);
        double t3 = i == 999 ? 1e-3 : 1.0 + i * (1e-3 - 1.0) / 999; /* VP eps = 1e-3 */
        assert_int_equal(sde_index(&s, t3), 999 - i);
    }
}

static void test_prior_logp(void **state)
{
    (void)state;
    sde ve = ve_cifar(), vp = vp_default(SDE_VP);
    double z[3] = {1, -2, 0.5};
    double sq = 1 + 4 + 0.25;
    assert_rel(sde_prior_logp(&vp, z, 3), -1.5 * log(2 * M_PI) - sq / 2, 1e-14);
    assert_rel(sde_prior_logp(&ve, z, 3), -1.5 * log(2 * M_PI * 2500) - sq / 5000, 1e-14);
}

/* Exact moments of x(t) | x(0) = x0 for the forward SDE started at t = 0.  VP, sub-VP: the
 * marginal formulas (exact from t = 0).  VE: dx = g dW accumulates int_0^t g^2 = sigma(t)^2 -
 * sigma(0)^2 = sigma(t)^2 - sigma_min^2, not the kernel's sigma(t)^2 (which uses the convention
 * sigma(0) = 0, spec 1.1); at sigma 0.01..3, t = 0.3 that is 3.3% less. */
static void forward_exact(const sde *s, double t, double x0, double *mean, double *var)
{
    double a, std;
    sde_marginal(s, t, &a, &std);
    *mean = a * x0;
    *var = std * std;
    if (s->type == SDE_VE) *var -= s->sigma_min * s->sigma_min;
}

/* The moment equations dm/dt = f m, dv/dt = 2 f v + g^2 of sde_drift_coef / sde_diffusion,
 * integrated from 0 to t with 100000 midpoint steps (error ~1e-10), against forward_exact to
 * 1e-7 relative: the drift and diffusion are consistent with the closed-form marginals. */
static void test_moment_equations(void **state)
{
    (void)state;
    const sde sdes[3] = {vp_default(SDE_VP), vp_default(SDE_SUBVP),
                         {.type = SDE_VE, .sigma_min = 0.01, .sigma_max = 3, .N = 1000}};
    const double x0 = 1.5;
    for (int i = 0; i < 3; i++) {
        for (double t = 0.1; t < 1.05; t += 0.3) {
            const int steps = 100000;
            const double h = t / steps;
            double m = x0, v = 0;
            for (int k = 0; k < steps; k++) {
                double tm = (k + 0.5) * h, fc = sde_drift_coef(&sdes[i], tm), g = sde_diffusion(&sdes[i], tm);
                double e = exp(fc * h);
                m *= e;
                v = v * e * e + g * g * h * e; /* midpoint: the g^2 h added mid-step decays half a step */
            }
            double em, ev;
            forward_exact(&sdes[i], t, x0, &em, &ev);
            if (!(fabs(m - em) <= 1e-7 * fabs(em) && fabs(v - ev) <= 1e-7 * ev))
                fail_msg("%s t=%g: moment equations give mean %.10g var %.10g, closed form %.10g %.10g",
                         sde_type_name(sdes[i].type), t, m, v, em, ev);
        }
    }
}

/* Forward SDE simulated with 100000 paths and 400 steps from x0 = 1.5 (coefficients at each
 * step's midpoint, x <- e x + g sqrt(h e) z with e = exp(f h)): the empirical mean and variance
 * at t = 0.3 and t = 1 match the exact moments (forward_exact) within 4.5 standard errors
 * (variance: sqrt(2 / (n - 1)) = 0.45%, so 2.0% relative) plus the chain's own discretization
 * bias, computed exactly by running the same recursion on the moments and required to stay under
 * 0.1%.  A variance a few percent off (e.g. VE's sigma(t)^2 instead of sigma(t)^2 - sigma_min^2,
 * 3.3% at t = 0.3, 6 standard errors) fails. */
static void check_forward_moments(sde s)
{
    const int paths = 100000, steps = 400;
    const double x0 = 1.5;
    double *x = malloc(sizeof(double) * paths), *z = malloc(sizeof(double) * paths);
    for (int p = 0; p < paths; p++) x[p] = x0;
    rng_stream r;
    rng_init(&r, 7, 0);
    const double checks[2] = {0.3, 1.0};
    int next = 0;
    const double dt = 1.0 / steps;
    double cm = x0, cv = 0; /* the chain's exact moments */
    for (int k = 0; k < steps; k++) {
        double tm = (k + 0.5) * dt;
        /* the noise enters mid-step, so it decays for half a step: scale sqrt(e) */
        double e = exp(sde_drift_coef(&s, tm) * dt), gs = sde_diffusion(&s, tm) * sqrt(dt * e);
        rng_normal_f64(&r, z, (size_t)paths);
        for (int p = 0; p < paths; p++) x[p] = e * x[p] + gs * z[p];
        cm *= e;
        cv = e * e * cv + gs * gs;
        double tn = (k + 1) * dt;
        if (next < 2 && fabs(tn - checks[next]) < 1e-12) {
            double em, ev;
            forward_exact(&s, tn, x0, &em, &ev);
            double m = 0, v = 0;
            for (int p = 0; p < paths; p++) m += x[p];
            m /= paths;
            for (int p = 0; p < paths; p++) v += (x[p] - m) * (x[p] - m);
            v /= paths - 1;
            double se_m = sqrt(ev / paths), se_v = ev * sqrt(2.0 / (paths - 1));
            double bias_m = cm - em, bias_v = cv - ev;
            print_message("%s t=%.1f: mean %.5f (exact %.5f, z %.2f) var %.6g (exact %.6g, z %.2f; chain bias %.1e)\n",
                          sde_type_name(s.type), tn, m, em, (m - em) / se_m, v, ev, (v - ev) / se_v, bias_v / ev);
            if (s.type == SDE_VE) {
                double kernel_v = sde_ve_sigma(&s, tn) * sde_ve_sigma(&s, tn);
                print_message("    against the kernel's sigma(t)^2 = %.6g instead: z %.2f\n", kernel_v,
                              (v - kernel_v) / se_v);
            }
            assert_true(fabs(bias_v) <= 1e-3 * ev);
            assert_true(fabs(bias_m) <= 1e-3 * fabs(em) + 1e-3 * se_m);
            if (fabs(m - em) > 4.5 * se_m + fabs(bias_m) || fabs(v - ev) > 4.5 * se_v + fabs(bias_v))
                fail_msg("%s t=%g: mean %g (want %g) var %g (want %g)", sde_type_name(s.type), tn, m, em, v, ev);
            next++;
        }
    }
    assert_int_equal(next, 2);
    free(x);
    free(z);
}

static void test_forward_simulation(void **state)
{
    (void)state;
    check_forward_moments(vp_default(SDE_VP));
    check_forward_moments(vp_default(SDE_SUBVP));
    check_forward_moments((sde){.type = SDE_VE, .sigma_min = 0.01, .sigma_max = 3, .N = 1000});
}

/* Spec 1.6: sampling eps 1e-5 (VE), 1e-3 (VP, sub-VP); likelihood eps 1e-5 for all three; and
 * what the sampler and likelihood configs use when eps is left at 0 (a VP PC sampler with
 * N < 1000 grid points: 1/N). */
static void test_eps_defaults(void **state)
{
    (void)state;
    const sde sdes[3] = {ve_cifar(), vp_default(SDE_VP), vp_default(SDE_SUBVP)};
    const double want_sampling[3] = {1e-5, 1e-3, 1e-3};
    for (int i = 0; i < 3; i++) {
        assert_true(sde_eps_sampling(&sdes[i]) == want_sampling[i]);
        assert_true(sde_eps_likelihood(&sdes[i]) == 1e-5);
    }
    sc_model *ve = model_from_file(MODELS_DIR "/gmm-2d-ve.json"), *vp = model_from_file(MODELS_DIR "/gmm-2d.json");
    sampler_config c;
    sampler_config_default(&c, ve);
    assert_true(c.eps == 0 && sampler_eps(&c, ve) == 1e-5);
    c.steps = 100; /* VE keeps 1e-5 at any grid size */
    assert_true(sampler_eps(&c, ve) == 1e-5);
    sampler_config_default(&c, vp);
    assert_true(c.eps == 0 && c.steps == 1000 && sampler_eps(&c, vp) == 1e-3);
    /* VP PC: max(1e-3, 1/N) */
    c.steps = 100;
    assert_true(sampler_eps(&c, vp) == 0.01);
    c.steps = 400;
    assert_true(sampler_eps(&c, vp) == 1.0 / 400);
    c.steps = 2000;
    assert_true(sampler_eps(&c, vp) == 1e-3);
    c.kind = SAMPLER_ODE; /* the ODE samplers keep the reference's 1e-3 */
    c.steps = 20;
    assert_true(sampler_eps(&c, vp) == 1e-3);
    c.kind = SAMPLER_PC;
    c.steps = 100;
    c.eps = 0.002; /* an explicit eps wins */
    assert_true(sampler_eps(&c, vp) == 0.002);
    likelihood_config lc;
    likelihood_config_default(&lc);
    assert_true(lc.eps == 0);
    /* a likelihood task starts its ODE at the likelihood eps: its start time is base.t */
    float x[2] = {0.3f, -0.2f};
    sc_task *t;
    sc_error err = {0};
    if (flow_likelihood_task_create(vp, &lc, x, 0, 0, &t, &err)) fail_msg("%s", err.msg);
    assert_true(t->t == 1e-5);
    task_free(t);
    sc_model_free(ve);
    sc_model_free(vp);
}

static void test_validation(void **state)
{
    (void)state;
    sc_error err = {0};
    sde bad = {.type = SDE_VE, .sigma_min = 1, .sigma_max = 0.5, .N = 1000};
    assert_int_equal(sde_validate(&bad, &err), SC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "sigma_min"));
    bad = vp_default(SDE_VP);
    bad.N = 1;
    assert_int_equal(sde_validate(&bad, &err), SC_ERR_INVALID);
    sde_type t;
    assert_int_equal(sde_type_from_str("subvp", &t), 0);
    assert_int_equal(t, SDE_SUBVP);
    assert_int_equal(sde_type_from_str("sub-vp", &t), SC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ve_reference_values), cmocka_unit_test(test_vp_subvp_reference_values),
        cmocka_unit_test(test_grid_indices),        cmocka_unit_test(test_prior_logp),
        cmocka_unit_test(test_forward_simulation),  cmocka_unit_test(test_validation),
        cmocka_unit_test(test_moment_equations),   cmocka_unit_test(test_eps_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
