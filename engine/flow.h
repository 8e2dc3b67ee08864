/* Probability-flow ODE tasks (spec §4.2, §5): sampling from the prior, decoding a latent,
 * encoding data to its latent, and the likelihood with the Hutchinson-Skilling or the exact
 * divergence.  Each task solves one item's ODE with its own step-size controller. */
#ifndef SCORED_FLOW_H
#define SCORED_FLOW_H

#include "sampler.h"
#include "task.h"

typedef enum { PROBE_RADEMACHER, PROBE_GAUSSIAN, PROBE_KIND_COUNT } probe_kind;
const char *probe_kind_name(probe_kind k);
int probe_kind_from_str(const char *s, probe_kind *out);

#define FLOW_MAX_PROBES 64
#define FLOW_MAX_EXACT_D 1024

typedef struct likelihood_config {
    ode_solver solver;         /* rk45 (reference), euler, heun                      */
    double rtol, atol;         /* default 1e-5                                       */
    int steps;                 /* fixed-step solvers                                 */
    double eps;                /* <= 0: the SDE's likelihood default (1e-5)          */
    int exact_divergence;      /* 1: trace of the Jacobian through D VJPs            */
    probe_kind probe;          /* Hutchinson probes                                  */
    int probes;                /* number of probes, each with its own integral       */
    int dequantize;            /* 1: x holds 8-bit values; add uniform noise, report bpd */
} likelihood_config;

/* Largest data dimension D whose likelihood uses the exact divergence when the caller does
 * not choose (see likelihood_config_model_default). */
#define FLOW_AUTO_EXACT_D 16

/* Defaults without a model: rk45 at rtol = atol = 1e-5, Hutchinson with one rademacher probe. */
void likelihood_config_default(likelihood_config *c);
/* The defaults for model m, used when the caller chooses no divergence: the exact divergence
 * for D <= FLOW_AUTO_EXACT_D, otherwise Hutchinson with one rademacher probe. */
void likelihood_config_model_default(likelihood_config *c, const sc_model *m);
int likelihood_config_validate(const likelihood_config *c, const sc_model *m, sc_error *err);

typedef struct likelihood_result {
    double log_likelihood;     /* nats, mean over probes: log prior(z) + integral    */
    double log_likelihood_se;  /* standard error over probes (0 for one probe/exact) */
    double bits_per_dim;       /* dequantized images; NAN otherwise                  */
    double prior_logp;         /* log prior(z)                                       */
    long nfe;
    const double *latent;      /* (D) z = x(T), owned by the task                    */
} likelihood_result;

/* Sampling (x from the prior, or from `latent` when decoding) from T down to eps, then the
 * optional denoising step.  cfg: a validated ODE config.  latent may be NULL; it is copied. */
int flow_sample_task_create(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                            const float *latent, uint64_t seed, uint64_t index, sc_task **out,
                            sc_error *err);
/* Encoding: x (data units, copied) from eps up to T, no divergence. */
int flow_encode_task_create(const sc_model *m, const likelihood_config *cfg, const float *x,
                            sc_task **out, sc_error *err);
/* Likelihood of x (data units, copied); probes and dequantization noise come from the
 * (seed, index) stream. */
int flow_likelihood_task_create(const sc_model *m, const likelihood_config *cfg, const float *x,
                                uint64_t seed, uint64_t index, sc_task **out, sc_error *err);

/* After TASK_DONE: sampling/decoding: the sample (D) in data units; encoding: the latent. */
const float *flow_task_result(const sc_task *t);
/* After TASK_DONE of a likelihood (or encoding: log-likelihood fields NAN). */
void flow_task_likelihood(const sc_task *t, likelihood_result *out);

#endif
