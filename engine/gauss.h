/* Analytic Gaussian score model with a full covariance: N(mu, Sigma) perturbed by an SDE is
 * N(a mu, a^2 Sigma + std^2 I), so with Sigma = U diag(lambda) U^T its score, Jacobian and
 * density are exact.  Used where correlation matters (inpainting exactness); for diagonal
 * mixtures use gmm. */
#ifndef SCORED_GAUSS_H
#define SCORED_GAUSS_H

#include <jansson.h>

#include "model.h"

#define GAUSS_MAX_D 1024

/* {"kind": "gaussian", "name", "shape", "sde", "centered", "mean": [D], "cov": [[D x D]]} */
int gauss_from_json(const json_t *root, const char *path, sc_model **out, sc_error *err);

/* Exact log density of the perturbed Gaussian at t (t = 0: the data distribution). */
double gauss_log_density(const sc_model *m, const double *x, double t);

const double *gauss_mean(const sc_model *m);        /* (D)    */
const double *gauss_cov(const sc_model *m);         /* (D, D) */

#endif
