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

/* Forward SDE by Euler-Maruyama with 2000 steps from x0 = 1.5: the empirical mean and
 * variance at t = 0.3 and t = 1 match mean_coef * x0 and std^2 within 5 standard errors. */
static void check_forward_moments(sde s)
{
    const int paths = 20000, steps = 2000;
    const double x0 = 1.5;
    double *x = malloc(sizeof(double) * paths), *z = malloc(sizeof(double) * paths);
    for (int p = 0; p < paths; p++) x[p] = x0;
    rng_stream r;
    rng_init(&r, 7, 0);
    const double checks[2] = {0.3, 1.0};
    int next = 0;
    double dt = 1.0 / steps;
    for (int k = 0; k < steps; k++) {
        double t = k * dt;
        double fc = sde_drift_coef(&s, t), g = sde_diffusion(&s, t);
        rng_normal_f64(&r, z, (size_t)paths);
        for (int p = 0; p < paths; p++) x[p] += fc * x[p] * dt + g * sqrt(dt) * z[p];
        double tn = (k + 1) * dt;
        if (next < 2 && fabs(tn - checks[next]) < 1e-12) {
            double a, std;
            sde_marginal(&s, tn, &a, &std);
            double m = 0, v = 0;
            for (int p = 0; p < paths; p++) m += x[p];
            m /= paths;
            for (int p = 0; p < paths; p++) v += (x[p] - m) * (x[p] - m);
            v /= paths - 1;
            double se_m = std / sqrt(paths), se_v = std * std * sqrt(2.0 / (paths - 1));
            if (fabs(m - a * x0) > 5 * se_m + 1e-3 * fabs(a * x0) ||
                fabs(v - std * std) > 5 * se_v + 2e-3 * std * std)
                fail_msg("%s t=%g: mean %g (want %g) var %g (want %g)", sde_type_name(s.type), tn,
                         m, a * x0, v, std * std);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
