/* The three SDEs of Song et al. (VE, VP, sub-VP): drift and diffusion, marginal moments,
 * prior, and the discretizations the predictors use (spec score-sde.md §1).
 * Every drift is linear in x, f(x,t) = sde_drift_coef(t) * x, which the samplers exploit.
 * Time runs over [0, T] with T = 1. */
#ifndef SCORED_SDE_H
#define SCORED_SDE_H

#include "err.h"
#include "rng.h"

typedef enum sde_type { SDE_VE, SDE_VP, SDE_SUBVP, SDE_TYPE_COUNT } sde_type;

typedef struct sde {
    sde_type type;
    double beta_min, beta_max;    /* VP and sub-VP */
    double sigma_min, sigma_max;  /* VE            */
    int N;                        /* number of discretization steps (num_scales) */
} sde;

#define SDE_T 1.0

const char *sde_type_name(sde_type type);               /* "ve", "vp", "subvp" */
int sde_type_from_str(const char *s, sde_type *out);     /* 0, or SC_ERR_INVALID */
int sde_validate(const sde *s, sc_error *err);           /* ranges of every field */

double sde_drift_coef(const sde *s, double t);           /* f(x,t) = coef * x       */
double sde_diffusion(const sde *s, double t);            /* g(t)                    */
void sde_marginal(const sde *s, double t, double *mean_coef, double *std); /* x_t | x_0 */
double sde_ve_sigma(const sde *s, double t);             /* sigma(t), VE only       */

double sde_prior_std(const sde *s);                      /* sigma_max (VE) or 1     */
void sde_prior_sample(const sde *s, rng_stream *r, float *x, int D);
double sde_prior_logp(const sde *s, const double *z, int D);

double sde_eps_sampling(const sde *s);                   /* 1e-5 (VE), 1e-3 (VP, sub-VP) */
double sde_eps_likelihood(const sde *s);                 /* 1e-5 */

/* Discrete grids indexed k = 0..N-1 (ascending noise), and k = floor(t (N-1) / T). */
int sde_index(const sde *s, double t);
double sde_ve_discrete_sigma(const sde *s, int k);       /* exp(linspace(ln smin, ln smax, N))[k] */
double sde_vp_discrete_beta(const sde *s, int k);        /* linspace(bmin/N, bmax/N, N)[k]        */

/* Reverse-diffusion discretization at t (§1.1-1.4): the forward step is
 * x_{i+1} = x_i + f_i + G_i z with f_i = f_coef * x_i.  VE: SMLD chain; VP: DDPM chain;
 * sub-VP: Euler-Maruyama with dt = 1/N. */
void sde_discretize(const sde *s, double t, double *f_coef, double *G);

#endif
