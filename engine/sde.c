/* SDE closed forms.  Everything in double; callers cast where they store float. */
#include "sde.h"

#include <math.h>
#include <string.h>


static const char *const type_names[] = {"ve", "vp", "subvp"};
_Static_assert(sizeof type_names / sizeof type_names[0] == SDE_TYPE_COUNT, "sde names");

const char *sde_type_name(sde_type type)
{
    return (unsigned)type < SDE_TYPE_COUNT ? type_names[type] : "?";
}

int sde_type_from_str(const char *str, sde_type *out)
{
    for (int i = 0; i < SDE_TYPE_COUNT; i++)
        if (strcmp(str, type_names[i]) == 0) {
            *out = (sde_type)i;
            return 0;
        }
    return SC_ERR_INVALID;
}

int sde_validate(const sde *s, sc_error *err)
{
    if (s->N < 2 || s->N > 1000000)
        return sc_fail(err, SC_ERR_INVALID, "sde N must be in [2, 1000000], got %d", s->N);
    if (s->type == SDE_VE) {
        if (!(s->sigma_min > 0) || !(s->sigma_max > s->sigma_min) || !isfinite(s->sigma_max))
            return sc_fail(err, SC_ERR_INVALID,
                           "ve sde needs 0 < sigma_min < sigma_max, got %g and %g",
                           s->sigma_min, s->sigma_max);
    } else if (s->type == SDE_VP || s->type == SDE_SUBVP) {
        if (!(s->beta_min > 0) || !(s->beta_max > s->beta_min) || !(s->beta_max < 1e4))
            return sc_fail(err, SC_ERR_INVALID,
                           "%s sde needs 0 < beta_min < beta_max < 1e4, got %g and %g",
                           sde_type_name(s->type), s->beta_min, s->beta_max);
    } else {
        return sc_fail(err, SC_ERR_INVALID, "unknown sde type %d", (int)s->type);
    }
    return 0;
}

/* log of the VP / sub-VP mean coefficient: -t^2 (bmax - bmin)/4 - t bmin/2 */
static double log_mean_coef(const sde *s, double t)
{
    return -0.25 * t * t * (s->beta_max - s->beta_min) - 0.5 * t * s->beta_min;
}

static double beta_of(const sde *s, double t)
{
    return s->beta_min + t * (s->beta_max - s->beta_min);
}

double sde_ve_sigma(const sde *s, double t)
{
    return s->sigma_min * pow(s->sigma_max / s->sigma_min, t);
}

double sde_drift_coef(const sde *s, double t)
{
    return s->type == SDE_VE ? 0.0 : -0.5 * beta_of(s, t);
}

double sde_diffusion(const sde *s, double t)
{
    switch (s->type) {
    case SDE_VE:
        return sde_ve_sigma(s, t) * sqrt(2.0 * (log(s->sigma_max) - log(s->sigma_min)));
    case SDE_VP:
        return sqrt(beta_of(s, t));
    case SDE_SUBVP:
        /* beta(t) (1 - exp(-2 bmin t - (bmax - bmin) t^2)) = beta(t) * -expm1(4 L(t)) */
        return sqrt(beta_of(s, t) * -expm1(4.0 * log_mean_coef(s, t)));
    default:
        SC_ASSERT(0);
    }
    return 0;
}

void sde_marginal(const sde *s, double t, double *mean_coef, double *std)
{
    if (s->type == SDE_VE) {
        *mean_coef = 1.0;
        *std = sde_ve_sigma(s, t);
        return;
    }
    double L = log_mean_coef(s, t);
    *mean_coef = exp(L);
    double one_minus = -expm1(2.0 * L);
    *std = s->type == SDE_VP ? sqrt(one_minus) : one_minus; /* sub-VP: no square root (§1.3) */
}

double sde_prior_std(const sde *s)
{
    return s->type == SDE_VE ? s->sigma_max : 1.0;
}

void sde_prior_sample(const sde *s, rng_stream *r, float *x, int D)
{
    rng_normal(r, x, (size_t)D);
    float scale = (float)sde_prior_std(s);
    for (int i = 0; i < D; i++) x[i] *= scale;
}

double sde_prior_logp(const sde *s, const double *z, int D)
{
    double var = sde_prior_std(s) * sde_prior_std(s);
    double sq = 0;
    for (int i = 0; i < D; i++) sq += z[i] * z[i];
    return -0.5 * D * log(2.0 * M_PI * var) - 0.5 * sq / var;
}

double sde_eps_sampling(const sde *s)
{
    return s->type == SDE_VE ? 1e-5 : 1e-3;
}

double sde_eps_likelihood(const sde *s)
{
    (void)s;
    return 1e-5;
}

int sde_index(const sde *s, double t)
{
    /* floor(t (N-1) / T), as the reference; the 1e-9 guard absorbs the rounding of a grid
     * point that should sit exactly on an integer. */
    double v = t * (s->N - 1) / SDE_T;
    int k = (int)floor(v + 1e-9 * (s->N - 1));
    if (k < 0) k = 0;
    if (k > s->N - 1) k = s->N - 1;
    return k;
}

double sde_ve_discrete_sigma(const sde *s, int k)
{
    double lo = log(s->sigma_min), hi = log(s->sigma_max);
    if (k == s->N - 1) return s->sigma_max;
    return exp(lo + k * (hi - lo) / (s->N - 1));
}

double sde_vp_discrete_beta(const sde *s, int k)
{
    double lo = s->beta_min / s->N, hi = s->beta_max / s->N;
    if (k == s->N - 1) return hi;
    return lo + k * (hi - lo) / (s->N - 1);
}

void sde_discretize(const sde *s, double t, double *f_coef, double *G)
{
    int k = sde_index(s, t);
    switch (s->type) {
    case SDE_VE: {
        double sk = sde_ve_discrete_sigma(s, k);
        double sprev = k > 0 ? sde_ve_discrete_sigma(s, k - 1) : 0.0;
        *f_coef = 0.0;
        *G = sqrt(sk * sk - sprev * sprev);
        return;
    }
    case SDE_VP: {
        double beta = sde_vp_discrete_beta(s, k);
        *f_coef = sqrt(1.0 - beta) - 1.0;
        *G = sqrt(beta);
        return;
    }
    case SDE_SUBVP: {
        double dt = SDE_T / s->N;
        *f_coef = sde_drift_coef(s, t) * dt;
        *G = sde_diffusion(s, t) * sqrt(dt);
        return;
    }
    default:
        SC_ASSERT(0);
    }
}
