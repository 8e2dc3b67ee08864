/* Full-covariance Gaussian: loading (with a Jacobi eigendecomposition of Sigma) and exact
 * score / VJP evaluation in the eigenbasis.  Not here: file reading (model.c). */
#include "gauss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_json.h"

typedef struct gauss_impl {
    int D;
    double *mean;   /* (D)                                        */
    double *cov;    /* (D, D) as given                            */
    double *U;      /* (D, D) eigenvectors in columns: U[i*D + j] */
    double *lambda; /* (D) eigenvalues, all > 0                   */
} gauss_impl;

static const gauss_impl *impl_of(const sc_model *m)
{
    SC_ASSERT(m->ops && strcmp(m->ops->kind, "gaussian") == 0);
    return m->impl;
}

static void gauss_destroy(void *p)
{
    gauss_impl *g = p;
    if (!g) return;
    free(g->mean);
    free(g->cov);
    free(g->U);
    free(g->lambda);
    free(g);
}

/* Cyclic Jacobi rotations on a symmetric (D, D) matrix A (destroyed): eigenvalues into lambda,
 * eigenvectors into the columns of V.  Converges quadratically; D is at most GAUSS_MAX_D. */
static void jacobi_eigen(double *A, int D, double *V, double *lambda)
{
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) V[i * D + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                if (i != j) off += A[i * D + j] * A[i * D + j];
                else diag += A[i * D + j] * A[i * D + j];
            }
        if (off <= 1e-30 * diag) break;
        for (int p = 0; p < D; p++)
            for (int q = p + 1; q < D; q++) {
                double apq = A[p * D + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (A[q * D + q] - A[p * D + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < D; k++) { /* A <- A J (columns p, q) */
                    double akp = A[k * D + p], akq = A[k * D + q];
                    A[k * D + p] = c * akp - s * akq;
                    A[k * D + q] = s * akp + c * akq;
                }
                for (int k = 0; k < D; k++) { /* A <- J^T A (rows p, q) */
                    double apk = A[p * D + k], aqk = A[q * D + k];
                    A[p * D + k] = c * apk - s * aqk;
                    A[q * D + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < D; k++) {
                    double vkp = V[k * D + p], vkq = V[k * D + q];
                    V[k * D + p] = c * vkp - s * vkq;
                    V[k * D + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < D; i++) lambda[i] = A[i * D + i];
}

/* Scratch per item: (D) coefficients in the eigenbasis. */
static size_t gauss_scratch_bytes(const sc_model *m, int max_batch)
{
    (void)max_batch;
    return sizeof(double) * (size_t)impl_of(m)->D;
}

/* score = -U diag(1/v) U^T (x - a mu), v_i = a^2 lambda_i + std^2; J = -U diag(1/v) U^T. */
static void apply_precision(const gauss_impl *g, const double *vin_eig_scale, const float *in,
                            const double *shift, double a, double *coef, float *out)
{
    const int D = g->D;
    for (int i = 0; i < D; i++) {
        double acc = 0;
        for (int k = 0; k < D; k++) acc += g->U[k * D + i] * (in[k] - (shift ? a * shift[k] : 0.0));
        coef[i] = acc * vin_eig_scale[i];
    }
    for (int k = 0; k < D; k++) {
        double acc = 0;
        for (int i = 0; i < D; i++) acc += g->U[k * D + i] * coef[i];
        out[k] = (float)(-acc);
    }
}

static int gauss_eval(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err)
{
    const gauss_impl *g = impl_of(m);
    double inv[GAUSS_MAX_D];
    for (int j = 0; j < n; j++) {
        if (q[j].label >= 0 && q[j].guidance != 0.0f)
            return sc_fail(err, SC_ERR_UNSUPPORTED, "a gaussian model has no classes to guide");
        double a, std;
        sde_marginal(&m->sde, q[j].t, &a, &std);
        for (int i = 0; i < g->D; i++) inv[i] = 1.0 / (a * a * g->lambda[i] + std * std);
        apply_precision(g, inv, q[j].x, g->mean, a, scratch, q[j].score);
        if (q[j].probe) apply_precision(g, inv, q[j].probe, NULL, a, scratch, q[j].vjp);
    }
    return 0;
}

static const sc_model_ops gauss_ops = {
    .kind = "gaussian",
    .scratch_bytes = gauss_scratch_bytes,
    .eval = gauss_eval,
    .destroy = gauss_destroy,
};

double gauss_log_density(const sc_model *m, const double *x, double t)
{
    const gauss_impl *g = impl_of(m);
    const int D = g->D;
    double a = 1, std = 0;
    if (t > 0) sde_marginal(&m->sde, t, &a, &std);
    double lp = 0;
    for (int i = 0; i < D; i++) {
        double c = 0;
        for (int k = 0; k < D; k++) c += g->U[k * D + i] * (x[k] - a * g->mean[k]);
        double v = a * a * g->lambda[i] + std * std;
        lp -= 0.5 * (log(2 * M_PI * v) + c * c / v);
    }
    return lp;
}

const double *gauss_mean(const sc_model *m) { return impl_of(m)->mean; }
const double *gauss_cov(const sc_model *m) { return impl_of(m)->cov; }

static int parse(const json_t *root, gauss_impl *g, sc_error *err)
{
    const int D = g->D;
    const json_t *mean = json_object_get(root, "mean"), *cov = json_object_get(root, "cov");
    if (!json_is_array(mean) || (int)json_array_size(mean) != D)
        return sc_fail(err, SC_ERR_FORMAT, "gaussian: \"mean\" must be an array of %d numbers", D);
    if (!json_is_array(cov) || (int)json_array_size(cov) != D)
        return sc_fail(err, SC_ERR_FORMAT, "gaussian: \"cov\" must be %d rows of %d numbers", D, D);
    for (int i = 0; i < D; i++) {
        const json_t *v = json_array_get(mean, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return sc_fail(err, SC_ERR_FORMAT, "gaussian: mean[%d] is not a finite number", i);
        g->mean[i] = json_number_value(v);
        const json_t *row = json_array_get(cov, i);
        if (!json_is_array(row) || (int)json_array_size(row) != D)
            return sc_fail(err, SC_ERR_FORMAT, "gaussian: cov[%d] must hold %d numbers", i, D);
        for (int j = 0; j < D; j++) {
            const json_t *c = json_array_get(row, j);
            if (!json_is_number(c) || !isfinite(json_number_value(c)))
                return sc_fail(err, SC_ERR_FORMAT, "gaussian: cov[%d][%d] is not a finite number", i, j);
            g->cov[i * D + j] = json_number_value(c);
        }
    }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) {
            double x = g->cov[i * D + j], y = g->cov[j * D + i];
            if (fabs(x - y) > 1e-9 * (fabs(x) + fabs(y) + 1e-300))
                return sc_fail(err, SC_ERR_FORMAT, "gaussian: cov is not symmetric at [%d][%d]", i, j);
        }
    double *work = malloc(sizeof(double) * (size_t)D * D);
    if (!work) return sc_fail(err, SC_ERR_NOMEM, "gaussian: out of memory");
    memcpy(work, g->cov, sizeof(double) * (size_t)D * D);
    jacobi_eigen(work, D, g->U, g->lambda);
    free(work);
    double biggest = 0;
    for (int i = 0; i < D; i++) biggest = fmax(biggest, fabs(g->lambda[i]));
    for (int i = 0; i < D; i++)
        if (!(g->lambda[i] > 1e-12 * biggest))
            return sc_fail(err, SC_ERR_FORMAT, "gaussian: cov is not positive definite (eigenvalue %g)",
                           g->lambda[i]);
    return 0;
}

int gauss_from_json(const json_t *root, const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    sc_model *m = NULL;
    int rc = model_json_common(root, path, &m, err);
    if (rc) return rc;
    if (m->D > GAUSS_MAX_D) {
        rc = sc_fail(err, SC_ERR_FORMAT, "gaussian: D = %d is over the limit %d", m->D, GAUSS_MAX_D);
        sc_model_free(m);
        return rc;
    }
    gauss_impl *g = calloc(1, sizeof *g);
    if (!g) {
        sc_model_free(m);
        return sc_fail(err, SC_ERR_NOMEM, "gaussian: out of memory");
    }
    const size_t D = (size_t)m->D;
    g->D = m->D;
    m->ops = &gauss_ops;
    m->impl = g;
    g->mean = malloc(sizeof(double) * D);
    g->cov = malloc(sizeof(double) * D * D);
    g->U = malloc(sizeof(double) * D * D);
    g->lambda = malloc(sizeof(double) * D);
    if (!g->mean || !g->cov || !g->U || !g->lambda) rc = sc_fail(err, SC_ERR_NOMEM, "gaussian: out of memory");
    else rc = parse(root, g, err);
    if (rc) {
        sc_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
