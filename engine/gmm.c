/* The analytic mixture: JSON loading and exact score / VJP / guidance evaluation.
 * Not here: file reading and kind dispatch (model.c). */
#include "gmm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_json.h"

#define GMM_MAX_COMPONENTS 4096

typedef struct gmm_impl {
    int K, D;
    double *log_weight;  /* (K)              */
    double *mean;        /* (K, D)           */
    double *var;         /* (K, D) s_k^2     */
    double *std;         /* (K, D) s_k       */
} gmm_impl;

static const gmm_impl *impl_of(const sc_model *m)
{
    SC_ASSERT(m->ops && strcmp(m->ops->kind, "gmm") == 0);
    return m->impl;
}

static void gmm_destroy(void *p)
{
    gmm_impl *g = p;
    if (!g) return;
    free(g->log_weight);
    free(g->mean);
    free(g->var);
    free(g->std);
    free(g);
}

/* Per-item scratch: (K) responsibilities, (D) doubles for the score and (D) for the VJP. */
static size_t gmm_scratch_bytes(const sc_model *m, int max_batch)
{
    (void)max_batch; /* items are evaluated one after another in the same space */
    const gmm_impl *g = impl_of(m);
    return sizeof(double) * ((size_t)g->K + 2 * (size_t)g->D);
}

/* Perturbed component variance v_kd(t) = a^2 s_kd^2 + std^2 and mean a mu_kd. */
static inline double pert_var(const gmm_impl *g, int k, int d, double a2, double s2)
{
    return a2 * g->var[(size_t)k * g->D + d] + s2;
}

/* r (K): first log w_k + log N(x; a mu_k, v_k(t)), then in place the posterior p(k | x, t)
 * itself (one exp per component).  Returns the log density log p_t(x). */
static double responsibilities(const gmm_impl *g, const double *xd, const float *xf, double a,
                               double s2, double *r)
{
    const double a2 = a * a;
    double best = -INFINITY;
    /* sum_d log v_kd as the log of a running product of the variances, taken (and the product
     * restarted) only when it leaves [1e-150, 1e150]: a handful of log() calls per component
     * instead of one per dimension.  Any finite positive variance above 1e-158 keeps the
     * product a normal double. */
    for (int k = 0; k < g->K; k++) {
        const double *mu = g->mean + (size_t)k * g->D;
        double quad = 0, logdet = 0, prod = 1.0;
        for (int d = 0; d < g->D; d++) {
            double v = pert_var(g, k, d, a2, s2);
            double x = xd ? xd[d] : (double)xf[d];
            double diff = x - a * mu[d];
            quad += diff * diff / v;
            prod *= v;
            if (prod < 1e-150 || prod > 1e150) {
                logdet += log(prod);
                prod = 1.0;
            }
        }
        logdet += log(prod);
        double acc = g->log_weight[k] - 0.5 * (g->D * log(2.0 * M_PI) + logdet + quad);
        r[k] = acc;
        if (acc > best) best = acc;
    }
    double sum = 0;
    for (int k = 0; k < g->K; k++) sum += r[k] = exp(r[k] - best);
    for (int k = 0; k < g->K; k++) r[k] /= sum;
    return best + log(sum);
}

/* One query.  With r_k the posterior and a_k = -(x - a mu_k)/v_k each component's score:
 *   score  s = sum_k r_k a_k, guided s + w (a_y - s);
 *   J      = sum_k r_k diag(-1/v_k) + sum_k r_k a_k a_k^T - s s^T   (symmetric),
 *   guided J_w = (1 - w) J + w diag(-1/v_y),  vjp = J_w v. */
static void eval_one(const sc_model *m, const gmm_impl *g, score_query *q, double *scratch)
{
    const int D = g->D, K = g->K;
    double *resp = scratch, *s = scratch + K, *u = scratch + K + D;
    double a, std;
    sde_marginal(&m->sde, q->t, &a, &std);
    const double a2 = a * a, s2 = std * std;
    responsibilities(g, NULL, q->x, a, s2, resp);

    memset(s, 0, sizeof(double) * D);
    if (q->probe) memset(u, 0, sizeof(double) * D);
    for (int k = 0; k < K; k++) {
        double r = resp[k];
        if (r == 0.0) continue;
        const double *mu = g->mean + (size_t)k * D;
        double dot = 0; /* a_k . v */
        if (q->probe)
            for (int d = 0; d < D; d++)
                dot += -(q->x[d] - a * mu[d]) / pert_var(g, k, d, a2, s2) * q->probe[d];
        for (int d = 0; d < D; d++) {
            double v = pert_var(g, k, d, a2, s2);
            double ak = -(q->x[d] - a * mu[d]) / v;
            s[d] += r * ak;
            if (q->probe) u[d] += r * (-q->probe[d] / v + dot * ak);
        }
    }
    double sv = 0; /* s . v */
    if (q->probe)
        for (int d = 0; d < D; d++) sv += s[d] * q->probe[d];

    const int guided = q->label >= 0 && q->label < K && q->guidance != 0.0f;
    const double w = guided ? q->guidance : 0.0;
    const double *muy = guided ? g->mean + (size_t)q->label * D : NULL;
    for (int d = 0; d < D; d++) {
        double score = s[d];
        double jv = q->probe ? u[d] - sv * s[d] : 0.0;
        if (guided) {
            double vy = pert_var(g, q->label, d, a2, s2);
            double ay = -(q->x[d] - a * muy[d]) / vy;
            score += w * (ay - s[d]);
            if (q->probe) jv = (1.0 - w) * jv + w * (-q->probe[d] / vy);
        }
        q->score[d] = (float)score;
        if (q->probe) q->vjp[d] = (float)jv;
    }
}

static int gmm_eval(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err)
{
    (void)err;
    const gmm_impl *g = impl_of(m);
    for (int i = 0; i < n; i++) eval_one(m, g, &q[i], scratch);
    return 0;
}

static const sc_model_ops gmm_ops = {
    .kind = "gmm",
    .scratch_bytes = gmm_scratch_bytes,
    .eval = gmm_eval,
    .destroy = gmm_destroy,
};

double gmm_log_density(const sc_model *m, const double *x, double t)
{
    const gmm_impl *g = impl_of(m);
    double a = 1.0, std = 0.0;
    if (t > 0) sde_marginal(&m->sde, t, &a, &std);
    double *resp = malloc(sizeof(double) * g->K);
    SC_ASSERT(resp);
    double lp = responsibilities(g, x, NULL, a, std * std, resp);
    free(resp);
    return lp;
}

int gmm_posterior(const sc_model *m, const double *x, double t, double *post)
{
    const gmm_impl *g = impl_of(m);
    double a = 1.0, std = 0.0;
    if (t > 0) sde_marginal(&m->sde, t, &a, &std);
    responsibilities(g, x, NULL, a, std * std, post);
    return g->K;
}

int gmm_components(const sc_model *m) { return impl_of(m)->K; }
const double *gmm_mean(const sc_model *m, int k) { return impl_of(m)->mean + (size_t)k * m->D; }
const double *gmm_std(const sc_model *m, int k) { return impl_of(m)->std + (size_t)k * m->D; }
double gmm_weight(const sc_model *m, int k) { return exp(impl_of(m)->log_weight[k]); }

/* ---- loading ---------------------------------------------------------------------------- */

/* Reads a JSON array of exactly n finite numbers into out. */
static int read_vector(const json_t *arr, int n, double *out, const char *what, int k,
                       sc_error *err)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: %s[%d] must be an array of %d numbers", what,
                       k, n);
    for (int d = 0; d < n; d++) {
        const json_t *v = json_array_get(arr, d);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return sc_fail(err, SC_ERR_FORMAT, "gmm: %s[%d][%d] is not a finite number", what,
                           k, d);
        out[d] = json_number_value(v);
    }
    return 0;
}

static int parse_components(const json_t *root, gmm_impl *g, sc_error *err)
{
    const json_t *weights = json_object_get(root, "weights");
    const json_t *means = json_object_get(root, "means");
    const json_t *stds = json_object_get(root, "stds");
    if (!json_is_array(weights) || json_array_size(weights) == 0)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: \"weights\" must be a non-empty array");
    size_t K = json_array_size(weights);
    if (K > GMM_MAX_COMPONENTS)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: %zu components, at most %d are supported", K,
                       GMM_MAX_COMPONENTS);
    if (!json_is_array(means) || json_array_size(means) != K)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: \"means\" must hold %zu arrays (one per weight)",
                       K);
    if (!json_is_array(stds) || json_array_size(stds) != K)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: \"stds\" must hold %zu entries (one per weight)",
                       K);
    g->K = (int)K;
    size_t KD = K * (size_t)g->D;
    g->log_weight = malloc(sizeof(double) * K);
    g->mean = malloc(sizeof(double) * KD);
    g->var = malloc(sizeof(double) * KD);
    g->std = malloc(sizeof(double) * KD);
    if (!g->log_weight || !g->mean || !g->var || !g->std)
        return sc_fail(err, SC_ERR_NOMEM, "gmm: out of memory for %zu components", K);

    double total = 0;
    for (size_t k = 0; k < K; k++) {
        const json_t *w = json_array_get(weights, k);
        double wv = json_is_number(w) ? json_number_value(w) : -1;
        if (!(wv > 0) || !isfinite(wv))
            return sc_fail(err, SC_ERR_FORMAT, "gmm: weights[%zu] must be a positive number", k);
        g->log_weight[k] = wv;
        total += wv;
    }
    if (fabs(total - 1.0) > 1e-3)
        return sc_fail(err, SC_ERR_FORMAT, "gmm: weights sum to %g, not 1", total);
    for (size_t k = 0; k < K; k++) g->log_weight[k] = log(g->log_weight[k] / total);

    for (size_t k = 0; k < K; k++) {
        int rc = read_vector(json_array_get(means, k), g->D, g->mean + k * g->D, "means",
                             (int)k, err);
        if (rc) return rc;
        const json_t *sk = json_array_get(stds, k);
        double *sd = g->std + k * g->D;
        if (json_is_number(sk)) {
            for (int d = 0; d < g->D; d++) sd[d] = json_number_value(sk);
        } else {
            rc = read_vector(sk, g->D, sd, "stds", (int)k, err);
            if (rc) return rc;
        }
        for (int d = 0; d < g->D; d++) {
            if (!(sd[d] > 0) || !isfinite(sd[d]))
                return sc_fail(err, SC_ERR_FORMAT, "gmm: stds[%zu] must be positive", k);
            g->var[k * g->D + d] = sd[d] * sd[d];
        }
    }
    return 0;
}

int gmm_from_json(const json_t *root, const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    sc_model *m = NULL;
    int rc = model_json_common(root, path, &m, err);
    if (rc) return rc;
    gmm_impl *g = calloc(1, sizeof *g);
    if (!g) {
        sc_model_free(m);
        return sc_fail(err, SC_ERR_NOMEM, "gmm: out of memory");
    }
    g->D = m->D;
    m->ops = &gmm_ops;
    m->impl = g;
    rc = parse_components(root, g, err);
    if (rc) goto fail;
    if (m->n_labels && m->n_labels != g->K) {
        rc = sc_fail(err, SC_ERR_FORMAT, "gmm: %d labels for %d components", m->n_labels, g->K);
        goto fail;
    }
    m->guidable = 1; /* labels are component indices: log p(k | x, t) is exact */
    m->n_classes = g->K;
    *out = m;
    return 0;
fail:
    sc_model_free(m);
    return rc;
}
