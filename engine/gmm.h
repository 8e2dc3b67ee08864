/* Analytic Gaussian-mixture score model: K components with diagonal covariances in D
 * dimensions.  Under each SDE its perturbed density is again a mixture (VE: means mu_k,
 * variances s_k^2 + sigma(t)^2; VP, sub-VP: means a mu_k, variances a^2 s_k^2 + std^2), so
 * its score, its score's Jacobian and the class posterior are exact. */
#ifndef SCORED_GMM_H
#define SCORED_GMM_H

#include <jansson.h>

#include "model.h"

/* Builds a model from a parsed "kind": "gmm" document (format in models/README.md). */
int gmm_from_json(const json_t *root, const char *path, sc_model **out, sc_error *err);

/* Exact log density of the perturbed mixture at time t (t = 0: the data mixture).
 * x: (D).  Thread-safe.  Used by tests and by exactness checks. */
double gmm_log_density(const sc_model *m, const double *x, double t);

/* Exact component posterior p(k | x, t) into post (K); returns K. */
int gmm_posterior(const sc_model *m, const double *x, double t, double *post);

int gmm_components(const sc_model *m);
const double *gmm_mean(const sc_model *m, int k);   /* (D) */
const double *gmm_std(const sc_model *m, int k);    /* (D) */
double gmm_weight(const sc_model *m, int k);

#endif
