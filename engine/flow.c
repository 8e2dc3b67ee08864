/* Probability-flow ODE tasks: dx/dt = f(x,t) - g(t)^2 s(x,t) / 2, integrated per item in
 * double precision (the score is evaluated in float, as a network would).  The likelihood
 * augments the state with one divergence integral per probe (or one for the exact trace). */
#include "flow.h"

#include <math.h>
#include <string.h>

#include "ode.h"

static const char *const probe_names[] = {"rademacher", "gaussian"};
_Static_assert(sizeof probe_names / sizeof *probe_names == PROBE_KIND_COUNT, "probe names");

const char *probe_kind_name(probe_kind k)
{
    return (unsigned)k < PROBE_KIND_COUNT ? probe_names[k] : "?";
}

int probe_kind_from_str(const char *s, probe_kind *out)
{
    for (int i = 0; i < PROBE_KIND_COUNT; i++)
        if (strcmp(s, probe_names[i]) == 0) {
            *out = (probe_kind)i;
            return 0;
        }
    return SC_ERR_INVALID;
}

void likelihood_config_default(likelihood_config *c)
{
    memset(c, 0, sizeof *c);
    c->solver = ODE_RK45;
    c->rtol = c->atol = 1e-5;
    c->steps = 100;
    c->probe = PROBE_RADEMACHER;
    c->probes = 1;
}

void likelihood_config_model_default(likelihood_config *c, const sc_model *m)
{
    likelihood_config_default(c);
    /* The exact trace costs D vector-Jacobian products per evaluation where one Hutchinson
     * probe costs one.  Up to D = 16 that is a small constant factor on tiny models (the 2-D
     * and 16-D analytic mixtures cost microseconds per evaluation) and it removes the
     * estimator's noise (one probe on gmm-2d: 1-3 nats off at the modes, tens of nats
     * between them).  Above that (images: D = 784 or more) D VJPs per evaluation would dominate the cost, so one
     * rademacher probe stays the default there. */
    c->exact_divergence = m->D <= FLOW_AUTO_EXACT_D;
}

int likelihood_config_validate(const likelihood_config *c, const sc_model *m, sc_error *err)
{
    if ((unsigned)c->solver >= ODE_SOLVER_COUNT)
        return sc_fail(err, SC_ERR_INVALID, "unknown ODE solver");
    if (c->solver == ODE_RK45 &&
        (!(c->rtol >= 1e-12 && c->rtol <= 1) || !(c->atol >= 1e-12 && c->atol <= 1)))
        return sc_fail(err, SC_ERR_INVALID, "rtol and atol must be in [1e-12, 1], got %g and %g",
                       c->rtol, c->atol);
    if (c->solver != ODE_RK45 && (c->steps < 1 || c->steps > SAMPLER_MAX_STEPS))
        return sc_fail(err, SC_ERR_INVALID, "steps must be in [1, %d]", SAMPLER_MAX_STEPS);
    if (!(c->eps == 0 || (c->eps > 0 && c->eps < 0.5)))
        return sc_fail(err, SC_ERR_INVALID, "eps must be in (0, 0.5), got %g", c->eps);
    if (c->exact_divergence && m->D > FLOW_MAX_EXACT_D)
        return sc_fail(err, SC_ERR_INVALID,
                       "the exact divergence needs D <= %d (this model has D = %d); use Hutchinson probes",
                       FLOW_MAX_EXACT_D, m->D);
    if (!c->exact_divergence && (c->probes < 1 || c->probes > FLOW_MAX_PROBES))
        return sc_fail(err, SC_ERR_INVALID, "probes must be in [1, %d], got %d", FLOW_MAX_PROBES,
                       c->probes);
    if ((unsigned)c->probe >= PROBE_KIND_COUNT)
        return sc_fail(err, SC_ERR_INVALID, "unknown probe kind");
    return 0;
}

typedef enum { FLOW_SAMPLE, FLOW_ENCODE, FLOW_LIKELIHOOD } flow_mode;

typedef struct flow_task {
    sc_task base;
    const sc_model *model;     /* borrowed */
    flow_mode mode;
    int D;
    int n_div;                 /* divergence integrals appended to the state (0, 1, K) */
    int exact;                 /* exact trace: D queries with unit probes               */
    int dequantized;
    int denoise, denoising;
    double eps;
    ode_integrator ode;
    int started;
    int nq;                    /* queries per evaluation                                */
    /* one allocation: */
    float *xq;                 /* (D) the state as float, where the scores are needed   */
    float *scores;             /* (nq, D)                                               */
    float *vjps;               /* (nq, D) or NULL                                       */
    float *probes;             /* (nq, D) or NULL                                       */
    double *probe_sq;          /* (nq) |v_k|^2                                          */
    float *result;             /* (D) sample / latent                                   */
    double *latent;            /* (D)                                                   */
    score_query *qbuf;         /* (nq)                                                  */
    void *mem;
    likelihood_result lik;
} flow_task;

static void set_queries(flow_task *f, double t)
{
    for (int d = 0; d < f->D; d++) f->xq[d] = (float)f->ode.req_y[d];
    f->base.n_queries = f->nq;
    for (int j = 0; j < f->nq; j++) f->qbuf[j].t = t;
}

/* req_f <- f~(t, y) and the divergence rates, from the answered queries. */
static int compute_drift(flow_task *f, sc_error *err)
{
    const sde *s = &f->model->sde;
    const double t = f->ode.req_t;
    const double fc = sde_drift_coef(s, t), g = sde_diffusion(s, t), half_g2 = 0.5 * g * g;
    const double *y = f->ode.req_y;
    double *out = f->ode.req_f;
    const int D = f->D;
    for (int d = 0; d < D; d++) {
        if (!isfinite(f->scores[d]))
            return sc_fail(err, SC_ERR_NUMERIC, "score is not finite at t=%g", t);
        out[d] = fc * y[d] - half_g2 * f->scores[d];
    }
    if (f->exact) {
        double trace = 0;
        for (int j = 0; j < D; j++) trace += f->vjps[(size_t)j * D + j];
        out[D] = D * fc - half_g2 * trace;
    } else {
        for (int k = 0; k < f->n_div; k++) {
            const float *v = f->probes + (size_t)k * D, *jv = f->vjps + (size_t)k * D;
            double dot = 0;
            for (int d = 0; d < D; d++) dot += (double)v[d] * jv[d];
            out[D + k] = fc * f->probe_sq[k] - half_g2 * dot;
        }
    }
    return 0;
}

static void finish_likelihood(flow_task *f)
{
    const int D = f->D;
    memcpy(f->latent, f->ode.y, sizeof(double) * D);
    for (int d = 0; d < D; d++) f->result[d] = (float)f->latent[d];
    f->lik.latent = f->latent;
    f->lik.nfe = f->base.nfe;
    f->lik.prior_logp = sde_prior_logp(&f->model->sde, f->latent, D);
    f->lik.log_likelihood = f->lik.log_likelihood_se = f->lik.bits_per_dim = NAN;
    if (f->mode != FLOW_LIKELIHOOD) return;
    double mean = 0;
    for (int k = 0; k < f->n_div; k++) mean += f->ode.y[D + k];
    mean /= f->n_div;
    double var = 0;
    for (int k = 0; k < f->n_div; k++) var += (f->ode.y[D + k] - mean) * (f->ode.y[D + k] - mean);
    f->lik.log_likelihood = f->lik.prior_logp + mean;
    f->lik.log_likelihood_se = f->n_div > 1 ? sqrt(var / (f->n_div - 1) / f->n_div) : 0.0;
    if (f->dequantized) {
        double offset = f->model->centered ? 7.0 : 8.0; /* §5: 8-bit volume, scaler Jacobian */
        f->lik.bits_per_dim = -f->lik.log_likelihood / (log(2.0) * D) + offset;
    }
}

static int flow_advance(sc_task *base, sc_error *err)
{
    flow_task *f = (flow_task *)base;
    int rc;
    if (!f->started) {
        f->started = 1;
        rc = ode_next(&f->ode, err);
    } else if (f->denoising) {
        /* One reverse-diffusion step at eps without noise, from the model's own SDE (§4.2). */
        double fcoef, G;
        sde_discretize(&f->model->sde, f->eps, &fcoef, &G);
        for (int d = 0; d < f->D; d++)
            f->result[d] = (float)((1.0 - fcoef) * f->xq[d] + G * G * f->scores[d]);
        f->base.n_queries = 0;
        return TASK_DONE;
    } else {
        rc = compute_drift(f, err);
        if (rc) return rc;
        rc = ode_next(&f->ode, err);
    }
    if (rc < 0) return rc;
    f->base.t = f->ode.t;
    f->base.step = f->ode.n_steps;
    if (rc == ODE_NEED_F) {
        set_queries(f, f->ode.req_t);
        f->base.nfe++;
        return TASK_NEED_SCORE;
    }
    /* finished */
    if (f->mode == FLOW_SAMPLE) {
        for (int d = 0; d < f->D; d++) f->result[d] = f->xq[d] = (float)f->ode.y[d];
        if (f->denoise) {
            f->denoising = 1;
            f->base.n_queries = 1;
            f->qbuf[0].t = f->eps;
            f->base.nfe++;
            return TASK_NEED_SCORE;
        }
    } else {
        finish_likelihood(f);
    }
    f->base.n_queries = 0;
    return TASK_DONE;
}

static void flow_destroy(sc_task *base)
{
    flow_task *f = (flow_task *)base;
    ode_free(&f->ode);
    free(f->mem);
    free(f);
}

/* Sampling: the ODE state now; encoding and likelihood: the data-space part of the state. */
static void flow_preview(const sc_task *base, float *out)
{
    const flow_task *f = (const flow_task *)base;
    for (int d = 0; d < f->D; d++) out[d] = (float)f->ode.y[d];
}

static const sc_task_ops flow_ops = {.advance = flow_advance, .destroy = flow_destroy, .preview = flow_preview};

/* Allocates the task and its arrays for nq queries per evaluation. */
static flow_task *flow_alloc(const sc_model *m, int nq, int with_vjp)
{
    flow_task *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    const size_t D = (size_t)m->D, Q = (size_t)nq;
    size_t floats = D + Q * D + (with_vjp ? 2 * Q * D : 0) + D;
    size_t bytes = floats * sizeof(float) + (Q + D) * sizeof(double) + Q * sizeof(score_query) + 64;
    f->mem = calloc(1, bytes);
    if (!f->mem) {
        free(f);
        return NULL;
    }
    double *dp = f->mem;
    f->latent = dp;
    f->probe_sq = dp + D;
    f->qbuf = (score_query *)(dp + D + Q);
    float *fp = (float *)(f->qbuf + Q);
    f->xq = fp;
    f->scores = fp + D;
    f->result = f->scores + Q * D;
    if (with_vjp) {
        f->vjps = f->result + D;
        f->probes = f->vjps + Q * D;
    }
    f->base.ops = &flow_ops;
    f->base.queries = f->qbuf;
    f->nq = nq;
    f->model = m;
    f->D = m->D;
    for (int j = 0; j < nq; j++)
        f->qbuf[j] = (score_query){.x = f->xq, .label = -1, .score = f->scores + j * D,
                                   .probe = with_vjp ? f->probes + j * D : NULL,
                                   .vjp = with_vjp ? f->vjps + j * D : NULL};
    return f;
}

int flow_sample_task_create(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                            const float *latent, uint64_t seed, uint64_t index, sc_task **out,
                            sc_error *err)
{
    *out = NULL;
    SC_ASSERT(cfg->kind == SAMPLER_ODE);
    int rc = sampler_config_validate(cfg, m, err);
    if (rc) return rc;
    if (cond) {
        if (cond->kind != COND_NONE)
            return sc_fail(err, SC_ERR_UNSUPPORTED,
                           "inpainting and colorization need the pc sampler, not ode");
        if ((rc = condition_validate(cond, m, err))) return rc;
    }
    flow_task *f = flow_alloc(m, 1, 0);
    if (!f) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    f->mode = FLOW_SAMPLE;
    f->eps = sampler_eps(cfg, m);
    f->denoise = cfg->denoise;
    if (cond && cond->label >= 0) {
        f->qbuf[0].label = cond->label;
        f->qbuf[0].guidance = cond->guidance;
    }
    const int D = m->D;
    if (latent) {
        for (int d = 0; d < D; d++) f->latent[d] = latent[d];
    } else {
        rng_stream r;
        rng_init(&r, seed, index);
        sde_prior_sample(&m->sde, &r, f->xq, D);
        for (int d = 0; d < D; d++) f->latent[d] = f->xq[d];
    }
    rc = ode_init(&f->ode, cfg->solver, D, SDE_T, f->eps, f->latent, cfg->rtol, cfg->atol,
                  cfg->steps, err);
    if (rc) {
        flow_destroy(&f->base);
        return rc;
    }
    f->base.steps = cfg->solver == ODE_RK45 ? 0 : cfg->steps;
    f->base.t = SDE_T;
    *out = &f->base;
    return 0;
}

static int data_create(const sc_model *m, const likelihood_config *cfg, const float *x,
                       flow_mode mode, uint64_t seed, uint64_t index, sc_task **out, sc_error *err)
{
    *out = NULL;
    int rc = likelihood_config_validate(cfg, m, err);
    if (rc) return rc;
    const int D = m->D;
    for (int d = 0; d < D; d++)
        if (!isfinite(x[d])) return sc_fail(err, SC_ERR_INVALID, "input value %d is not finite", d);
    const int lik = mode == FLOW_LIKELIHOOD;
    const int exact = lik && cfg->exact_divergence;
    const int nq = !lik ? 1 : exact ? D : cfg->probes;
    const int n_div = !lik ? 0 : exact ? 1 : cfg->probes;
    flow_task *f = flow_alloc(m, nq, lik);
    if (!f) return sc_fail(err, SC_ERR_NOMEM, "out of memory for %d queries of dimension %d", nq, D);
    f->mode = mode;
    f->exact = exact;
    f->n_div = n_div;
    f->eps = cfg->eps > 0 ? cfg->eps : sde_eps_likelihood(&m->sde);
    rng_stream r;
    rng_init(&r, seed, index);

    double *y0 = malloc(sizeof(double) * (size_t)(D + n_div));
    if (!y0) {
        flow_destroy(&f->base);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    }
    if (lik && cfg->dequantize) {
        /* x holds 8-bit values in data units: recover the level, add U[0,1), rescale (§2.3) */
        double *u = malloc(sizeof(double) * D);
        if (!u) {
            free(y0);
            flow_destroy(&f->base);
            return sc_fail(err, SC_ERR_NOMEM, "out of memory");
        }
        rng_uniform(&r, u, (size_t)D);
        for (int d = 0; d < D; d++) {
            double level = floor(sc_model_to_unit(m, x[d]) * 255.0 + 0.5);
            level = level < 0 ? 0 : level > 255 ? 255 : level;
            double unit = (level + u[d]) / 256.0;
            y0[d] = m->centered ? 2.0 * unit - 1.0 : unit;
        }
        free(u);
        f->dequantized = 1;
    } else {
        for (int d = 0; d < D; d++) y0[d] = x[d];
    }
    for (int k = 0; k < n_div; k++) y0[D + k] = 0.0;
    if (exact) {
        for (int j = 0; j < D; j++) f->probes[(size_t)j * D + j] = 1.0f; /* rows of I */
    } else if (lik) {
        for (int k = 0; k < nq; k++) {
            float *v = f->probes + (size_t)k * D;
            if (cfg->probe == PROBE_RADEMACHER) rng_rademacher(&r, v, (size_t)D);
            else rng_normal(&r, v, (size_t)D);
            double sq = 0;
            for (int d = 0; d < D; d++) sq += (double)v[d] * v[d];
            f->probe_sq[k] = sq;
        }
    }
    rc = ode_init(&f->ode, cfg->solver, D + n_div, f->eps, SDE_T, y0, cfg->rtol, cfg->atol,
                  cfg->steps, err);
    free(y0);
    if (rc) {
        flow_destroy(&f->base);
        return rc;
    }
    f->base.steps = cfg->solver == ODE_RK45 ? 0 : cfg->steps;
    f->base.t = f->eps;
    *out = &f->base;
    return 0;
}

int flow_encode_task_create(const sc_model *m, const likelihood_config *cfg, const float *x,
                            sc_task **out, sc_error *err)
{
    return data_create(m, cfg, x, FLOW_ENCODE, 0, 0, out, err);
}

int flow_likelihood_task_create(const sc_model *m, const likelihood_config *cfg, const float *x,
                                uint64_t seed, uint64_t index, sc_task **out, sc_error *err)
{
    return data_create(m, cfg, x, FLOW_LIKELIHOOD, seed, index, out, err);
}

const float *flow_task_result(const sc_task *t)
{
    SC_ASSERT(t->ops == &flow_ops);
    return ((const flow_task *)t)->result;
}

void flow_task_likelihood(const sc_task *t, likelihood_result *out)
{
    SC_ASSERT(t->ops == &flow_ops);
    *out = ((const flow_task *)t)->lik;
}
