/* PC sampler task.  One task = one sample; every adaptive quantity (the Langevin step size)
 * uses this sample's own norms, and its noise comes from its own (seed, index) stream, so the
 * result never depends on batch-mates (deviation from the reference's batch means, §11 Q14).
 * Other deliberate deviations, documented in README: the denoised output of inpainting and
 * colorization takes the unknown part from the predictor's mean (not from the re-noised x,
 * §11 Q9), the known part is the input exactly, and the colorizer's prior is drawn in the
 * decoupled space (§11 Q10; the same distribution, since the matrix is orthonormal). */
#include "pc.h"

#include <math.h>
#include <string.h>

const double pc_color_matrix[9] = {
    0.57735014, -0.81649649, 0.000000047008697,
    0.57735026, 0.40824834,  0.70710671,
    0.57735026, 0.40824822,  -0.70710683,
};

typedef struct pc_task {
    sc_task base;
    const sc_model *model;   /* borrowed */
    sampler_config cfg;
    sde sde;                 /* the model's SDE with N = cfg.steps */
    double eps;
    sc_condition cond;       /* kind COND_NONE when unconditional; arrays borrowed */
    rng_stream rng;
    int D;
    float *x, *x_mean, *score, *noise; /* (D) each, one allocation                  */
    float *known;            /* (D) known data in the conditioning space, or NULL    */
    float *kmask;            /* (D) 1 known / 0 generated, conditioning space         */
    float *space;            /* (D) scratch for decoupled values (colorization)      */
    double inv_color[9];
    int i;                   /* grid index 0..N-1                                    */
    int phase;               /* 0..corrector_steps-1: corrector; corrector_steps: predictor */
    int started, pending;
    score_query query;
} pc_task;

/* ---- colorization space: decouple(x)[c] = sum_i x[i] M[i][c] per pixel -------------- */

static void color_transform(float *out, const float *in, const double *mat, int hw)
{
    for (int p = 0; p < hw; p++) {
        double r = in[p], g = in[hw + p], b = in[2 * hw + p];
        for (int c = 0; c < 3; c++)
            out[c * hw + p] = (float)(r * mat[c] + g * mat[3 + c] + b * mat[6 + c]);
    }
}

static void invert3(const double *m, double *inv)
{
    double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                 m[2] * (m[3] * m[7] - m[4] * m[6]);
    inv[0] = (m[4] * m[8] - m[5] * m[7]) / det;
    inv[1] = (m[2] * m[7] - m[1] * m[8]) / det;
    inv[2] = (m[1] * m[5] - m[2] * m[4]) / det;
    inv[3] = (m[5] * m[6] - m[3] * m[8]) / det;
    inv[4] = (m[0] * m[8] - m[2] * m[6]) / det;
    inv[5] = (m[2] * m[3] - m[0] * m[5]) / det;
    inv[6] = (m[3] * m[7] - m[4] * m[6]) / det;
    inv[7] = (m[1] * m[6] - m[0] * m[7]) / det;
    inv[8] = (m[0] * m[4] - m[1] * m[3]) / det;
}

/* Replaces the known part of v (data units) by `with` (conditioning space):
 * v = from_space(to_space(v) * (1 - mask) + with * mask). */
static void replace_known(pc_task *p, float *v, const float *with)
{
    const int D = p->D;
    if (p->cond.kind == COND_INPAINT) {
        for (int d = 0; d < D; d++) v[d] = v[d] * (1.0f - p->kmask[d]) + with[d] * p->kmask[d];
        return;
    }
    const int hw = D / 3;
    color_transform(p->space, v, pc_color_matrix, hw);
    for (int d = 0; d < D; d++)
        p->space[d] = p->space[d] * (1.0f - p->kmask[d]) + with[d] * p->kmask[d];
    color_transform(v, p->space, p->inv_color, hw);
}

/* After an update at time t: known part of x <- a(t) data + std(t) z (fresh z); known part of
 * x_mean <- a(t) data. */
static void condition_update(pc_task *p, double t)
{
    if (p->cond.kind == COND_NONE) return;
    double a, std;
    sde_marginal(&p->model->sde, t, &a, &std);
    rng_normal(&p->rng, p->noise, (size_t)p->D);
    for (int d = 0; d < p->D; d++) p->space[d] = (float)(a * p->known[d] + std * p->noise[d]);
    /* x_mean first: it must not see x's fresh noise in the known part */
    float *tmp = p->noise; /* noise is consumed; reuse it for a*data */
    for (int d = 0; d < p->D; d++) tmp[d] = (float)(a * p->known[d]);
    float *noisy = p->space;
    /* replace_known uses p->space as scratch for colorization, so copy the noisy target */
    if (p->cond.kind == COND_COLORIZE) {
        /* colorization: noisy target must survive replace_known's use of space; store it in
           score (consumed by now) */
        memcpy(p->score, p->space, sizeof(float) * p->D);
        noisy = p->score;
    }
    replace_known(p, p->x_mean, tmp);
    replace_known(p, p->x, noisy);
}

static double grid_time(const pc_task *p, int i)
{
    const int N = p->cfg.steps;
    if (i == N - 1) return p->eps;
    return SDE_T + i * (p->eps - SDE_T) / (N - 1);
}

static double norm2(const float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Langevin / ALD step at t with the score in p->score (§3.2), per-sample norms. */
static void corrector_update(pc_task *p, double t)
{
    const int D = p->D;
    const sde *s = &p->sde;
    double alpha = 1.0;
    if (s->type == SDE_VP) alpha = 1.0 - sde_vp_discrete_beta(s, sde_index(s, t));
    rng_normal(&p->rng, p->noise, (size_t)D);
    double step;
    if (p->cfg.corrector == CORRECTOR_LANGEVIN) {
        double gnorm = norm2(p->score, D), znorm = norm2(p->noise, D);
        double ratio = gnorm > 0 ? p->cfg.snr * znorm / gnorm : 0.0;
        step = 2.0 * alpha * ratio * ratio;
    } else {
        double a, std;
        sde_marginal(s, t, &a, &std);
        step = 2.0 * alpha * (p->cfg.snr * std) * (p->cfg.snr * std);
    }
    const double noise_scale = sqrt(2.0 * step);
    for (int d = 0; d < D; d++) {
        double mean = p->x[d] + step * p->score[d];
        p->x_mean[d] = (float)mean;
        p->x[d] = (float)(mean + noise_scale * p->noise[d]);
    }
}

/* One predictor step from t (§3.1): x_mean = A x + B score, x = x_mean + C z. */
static void predictor_update(pc_task *p, double t)
{
    const sde *s = &p->sde;
    const int N = s->N;
    double A = 1, B = 0, C = 0;
    switch (p->cfg.predictor) {
    case PREDICTOR_EULER_MARUYAMA: {
        double fc = sde_drift_coef(s, t), g = sde_diffusion(s, t);
        A = 1.0 - fc / N;
        B = g * g / N;
        C = g * sqrt(1.0 / N);
        break;
    }
    case PREDICTOR_REVERSE_DIFFUSION: {
        double fcoef, G;
        sde_discretize(s, t, &fcoef, &G);
        A = 1.0 - fcoef;
        B = G * G;
        C = G;
        break;
    }
    case PREDICTOR_ANCESTRAL: {
        int k = sde_index(s, t);
        if (s->type == SDE_VE) {
            double sk = sde_ve_discrete_sigma(s, k);
            double sp = k > 0 ? sde_ve_discrete_sigma(s, k - 1) : 0.0;
            double diff = sk * sk - sp * sp;
            A = 1.0;
            B = diff;
            C = sqrt(sp * sp * diff / (sk * sk));
        } else { /* VP; sub-VP refused by validation */
            double beta = sde_vp_discrete_beta(s, k);
            A = 1.0 / sqrt(1.0 - beta);
            B = beta / sqrt(1.0 - beta);
            C = sqrt(beta);
        }
        break;
    }
    default:
        SC_ASSERT(0);
    }
    rng_normal(&p->rng, p->noise, (size_t)p->D);
    for (int d = 0; d < p->D; d++) {
        double mean = A * p->x[d] + B * p->score[d];
        p->x_mean[d] = (float)mean;
        p->x[d] = (float)(mean + C * p->noise[d]);
    }
}

static void init_state(pc_task *p)
{
    const int D = p->D;
    sde_prior_sample(&p->model->sde, &p->rng, p->x, D);
    if (p->cond.kind == COND_INPAINT) {
        for (int d = 0; d < D; d++) p->x[d] = p->x[d] * (1.0f - p->kmask[d]) + p->known[d] * p->kmask[d];
    } else if (p->cond.kind == COND_COLORIZE) {
        replace_known(p, p->x, p->known); /* prior in decoupled space, gray channel clean */
    }
    memcpy(p->x_mean, p->x, sizeof(float) * D);
}

/* The final sample: x_mean of the last predictor (denoise) or x; known part = the input. */
static void finish(pc_task *p)
{
    float *out = (p->cfg.denoise && p->cfg.predictor != PREDICTOR_NONE) ? p->x_mean : p->x;
    if (out != p->x) memcpy(p->x, out, sizeof(float) * p->D);
    if (p->cond.kind != COND_NONE) replace_known(p, p->x, p->known);
}

static int pc_advance(sc_task *base, sc_error *err)
{
    pc_task *p = (pc_task *)base;
    const int N = p->cfg.steps, cs = p->cfg.corrector == CORRECTOR_NONE ? 0 : p->cfg.corrector_steps;
    if (!p->started) {
        init_state(p);
        p->started = 1;
    } else if (p->pending) {
        double t = grid_time(p, p->i);
        for (int d = 0; d < p->D; d++)
            if (!isfinite(p->score[d]))
                return sc_fail(err, SC_ERR_NUMERIC, "score is not finite at t=%g (step %d)", t, p->i);
        if (p->phase < cs)
            corrector_update(p, t);
        else
            predictor_update(p, t);
        condition_update(p, t);
        p->pending = 0;
        p->base.nfe++;
        p->phase++;
    }
    for (;;) {
        if (p->phase == cs && p->cfg.predictor == PREDICTOR_NONE) p->phase++;
        if (p->phase > cs) {
            p->phase = 0;
            p->i++;
            p->base.step = p->i;
        }
        if (p->i >= N) break;
        p->query.t = p->base.t = grid_time(p, p->i);
        p->pending = 1;
        p->base.n_queries = 1;
        return TASK_NEED_SCORE;
    }
    finish(p);
    p->base.n_queries = 0;
    return TASK_DONE;
}

static void pc_destroy(sc_task *base)
{
    pc_task *p = (pc_task *)base;
    free(p->x);
    free(p);
}

/* The last predictor's (or corrector's) mean: what the sampler would return if it stopped now. */
static void pc_preview(const sc_task *base, float *out)
{
    const pc_task *p = (const pc_task *)base;
    memcpy(out, p->x_mean, sizeof(float) * p->D);
}

static const sc_task_ops pc_ops = {.advance = pc_advance, .destroy = pc_destroy, .preview = pc_preview};

int pc_task_create(const sc_model *m, const sampler_config *cfg, const sc_condition *cond,
                   uint64_t seed, uint64_t index, sc_task **out, sc_error *err)
{
    *out = NULL;
    SC_ASSERT(cfg->kind == SAMPLER_PC);
    int rc = sampler_config_validate(cfg, m, err);
    if (rc) return rc;
    if (cond && (rc = condition_validate(cond, m, err))) return rc;
    pc_task *p = calloc(1, sizeof *p);
    if (!p) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    const int D = m->D;
    p->base.ops = &pc_ops;
    p->model = m;
    p->cfg = *cfg;
    p->sde = m->sde;
    p->sde.N = cfg->steps;
    p->eps = sampler_eps(cfg, m);
    p->D = D;
    if (cond) p->cond = *cond;
    else p->cond.label = -1;
    rng_init(&p->rng, seed, index);
    p->x = calloc((size_t)D * 7, sizeof(float));
    if (!p->x) {
        free(p);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory for a %d-dimensional sample", D);
    }
    p->x_mean = p->x + D;
    p->score = p->x + 2 * (size_t)D;
    p->noise = p->x + 3 * (size_t)D;
    p->known = p->x + 4 * (size_t)D;
    p->kmask = p->x + 5 * (size_t)D;
    p->space = p->x + 6 * (size_t)D;
    if (p->cond.kind == COND_INPAINT) {
        for (int d = 0; d < D; d++) {
            float mk = p->cond.mask[d];
            p->kmask[d] = mk < 0 ? 0.0f : mk > 1 ? 1.0f : mk;
            p->known[d] = p->cond.data[d];
        }
    } else if (p->cond.kind == COND_COLORIZE) {
        invert3(pc_color_matrix, p->inv_color);
        const int hw = D / 3;
        color_transform(p->known, p->cond.data, pc_color_matrix, hw);
        for (int d = 0; d < D; d++) p->kmask[d] = d < hw ? 1.0f : 0.0f;
    }
    p->query = (score_query){.x = p->x, .t = SDE_T, .label = p->cond.label,
                             .guidance = p->cond.label >= 0 ? p->cond.guidance : 0.0f,
                             .probe = NULL, .score = p->score, .vjp = NULL};
    p->base.queries = &p->query;
    p->base.steps = cfg->steps;
    p->base.t = SDE_T;
    *out = &p->base;
    return 0;
}

const float *pc_task_result(const sc_task *t)
{
    SC_ASSERT(t->ops == &pc_ops);
    return ((const pc_task *)t)->x;
}
