/* Neural score models: a .safetensors file whose "scored" metadata holds the config (kind
 * "network"), its weights loaded onto a network tape, and the network output turned into a
 * score exactly as the reference does (spec §2): labels and noise levels per SDE and per
 * continuous/discrete training.  Not here: the layers (nn_*.c), the tape (net.c). */
#include "net_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_json.h"
#include "net_build.h"
#include "safetensors.h"

typedef struct net_impl {
    net net;
    net_config cfg;
    int continuous;
    int n_sigmas;
    double *sigmas;          /* (n_sigmas) model.sigmas, descending (§2.2)           */
    double *sqrt_1m_acp;     /* (sde.N) DDPM table for discrete VP                    */
    net_classifier *clf;     /* owned, or NULL: guides labelled queries                */
} net_impl;

static const net_impl *impl_of(const sc_model *m)
{
    SC_ASSERT(m->ops && strcmp(m->ops->kind, "network") == 0);
    return m->impl;
}

static void net_impl_destroy(void *p)
{
    net_impl *ni = p;
    if (!ni) return;
    net_free(&ni->net);
    net_classifier_free(ni->clf);
    free(ni->sigmas);
    free(ni->sqrt_1m_acp);
    free(ni);
}

/* Per-call scratch: the network workspace for max_batch, then (max_batch) per-sample
 * coefficients. */
static size_t net_scratch_bytes(const sc_model *m, int max_batch)
{
    const net_impl *ni = impl_of(m);
    size_t clf = 0;
    if (ni->clf) /* x, grad (N, D) floats; sigma (N) doubles; labels (N); logp (N); workspace */
        clf = sizeof(float) * 2 * (size_t)max_batch * m->D + sizeof(double) * (size_t)max_batch +
              2 * sizeof(int) * (size_t)max_batch + sizeof(float) * (size_t)max_batch +
              net_classifier_scratch_bytes(ni->clf, max_batch) + 64;
    return net_workspace_bytes(&ni->net, max_batch) + sizeof(double) * (size_t)max_batch + 64 + clf;
}

/* Adds w * grad_x log p(y | x, sigma(t)) to the scores of the labelled queries (§6.3). */
static void add_guidance(const sc_model *m, const net_impl *ni, score_query *q, int n, char *mem)
{
    const int D = m->D;
    float *x = (float *)mem, *grad = x + (size_t)n * D;
    double *sigma = (double *)(grad + (size_t)n * D);
    int *y = (int *)(sigma + n), *which = y + n;
    float *logp = (float *)(which + n);
    void *ws = logp + n;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (q[i].label < 0 || q[i].guidance == 0.0f) continue;
        double a, std;
        sde_marginal(&m->sde, q[i].t, &a, &std);
        memcpy(x + (size_t)k * D, q[i].x, sizeof(float) * D);
        sigma[k] = std;
        y[k] = q[i].label;
        which[k++] = i;
    }
    if (!k) return;
    net_classifier_log_prob_grad(ni->clf, x, sigma, y, k, logp, grad, ws);
    for (int j = 0; j < k; j++) {
        score_query *qq = &q[which[j]];
        for (int d = 0; d < D; d++) qq->score[d] += qq->guidance * grad[(size_t)j * D + d];
    }
}

/* §2: the network's time input, the sigma it divides by (scale_by_sigma), and the factor
 * that turns its output into the score. */
static void labels_for(const sc_model *m, const net_impl *ni, double t, float *time_in, float *used_sigma,
                       double *coef)
{
    const sde *s = &m->sde;
    double label, sigma_used;
    if (s->type == SDE_VE) {
        if (ni->continuous) {
            label = sde_ve_sigma(s, t);
        } else {
            label = floor((SDE_T - t) * (s->N - 1) + 0.5); /* round((1 - t)(N - 1)) */
        }
        *coef = 1.0;
    } else {
        double a, std;
        sde_marginal(s, t, &a, &std);
        if (ni->continuous || s->type == SDE_SUBVP) {
            label = t * 999.0;
        } else {
            label = t * (s->N - 1);
            int k = (int)floor(label);
            if (k < 0) k = 0;
            if (k > s->N - 1) k = s->N - 1;
            std = ni->sqrt_1m_acp[k];
        }
        *coef = -1.0 / std;
    }
    if (ni->cfg.fourier) {
        *time_in = (float)log(label);
        sigma_used = label;
    } else {
        *time_in = (float)label;
        int k = (int)floor(label);
        if (k < 0) k = 0;
        if (k > ni->n_sigmas - 1) k = ni->n_sigmas - 1;
        sigma_used = ni->n_sigmas ? ni->sigmas[k] : 1.0;
    }
    *used_sigma = (float)sigma_used;
}

static int net_eval(const sc_model *m, score_query *q, int n, void *scratch, sc_error *err)
{
    const net_impl *ni = impl_of(m);
    const net *nt = &ni->net;
    net_workspace ws;
    net_workspace_bind(&ws, nt, n, scratch);
    double *coef = (double *)((char *)scratch + net_workspace_bytes(nt, n));
    const int D = m->D;
    float *x = net_data(nt, &ws, nt->input, n);
    float *tin = net_data(nt, &ws, nt->time_input, n);
    float *sig = nt->aux_input >= 0 ? net_data(nt, &ws, nt->aux_input, n) : NULL;
    int any_probe = 0;
    int any_guided = 0;
    for (int i = 0; i < n; i++) {
        if (q[i].label >= 0 && q[i].guidance != 0.0f) {
            if (!ni->clf) return sc_fail(err, SC_ERR_UNSUPPORTED, "model %s has no classifier for guidance", m->name);
            if (q[i].probe)
                return sc_fail(err, SC_ERR_UNSUPPORTED,
                               "a guided score has no vector-Jacobian product here (it needs the classifier's Hessian)");
            any_guided = 1;
        }
        memcpy(x + (size_t)i * D, q[i].x, sizeof(float) * D);
        float s;
        labels_for(m, ni, q[i].t, &tin[i], &s, &coef[i]);
        if (sig) sig[i] = s;
        any_probe |= q[i].probe != NULL;
    }
    net_forward(nt, &ws, n);
    const float *out = net_data(nt, &ws, nt->output, n);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) q[i].score[d] = (float)(coef[i] * out[(size_t)i * D + d]);
    if (any_guided) add_guidance(m, ni, q, n, (char *)(coef + n));
    if (!any_probe) return 0;
    /* v^T d score/dx = coef * v^T d out/dx: backpropagate dout = coef * v */
    float *dout = net_grad(nt, &ws, nt->output, n);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            dout[(size_t)i * D + d] = q[i].probe ? (float)(coef[i] * q[i].probe[d]) : 0.0f;
    int rc = net_backward(nt, &ws, n, err);
    if (rc) return rc;
    const float *g = net_grad(nt, &ws, nt->input, n);
    for (int i = 0; i < n; i++)
        if (q[i].probe) memcpy(q[i].vjp, g + (size_t)i * D, sizeof(float) * D);
    return 0;
}

static const sc_model_ops net_ops = {
    .kind = "network",
    .scratch_bytes = net_scratch_bytes,
    .eval = net_eval,
    .destroy = net_impl_destroy,
};

/* ---- loading -------------------------------------------------------------------------------- */

typedef struct fetch_ctx {
    const st_file *f;
    const char *path;
} fetch_ctx;

static int fetch(void *vctx, const char *name, int ndim, const int64_t *shape, float *out, sc_error *err)
{
    const fetch_ctx *ctx = vctx;
    const st_tensor *t;
    int rc = st_expect(ctx->f, name, ndim, shape, &t, err);
    if (rc) return rc;
    return st_to_f32(t, out, err);
}

/* The reference's model.sigmas (descending geometric grid) from the file, else from the SDE. */
static int load_sigmas(net_impl *ni, const st_file *f, const sc_model *m, sc_error *err)
{
    const st_tensor *t = st_find(f, "sigmas");
    int n = t ? (int)t->count : (m->sde.type == SDE_VE ? ni->cfg.num_scales : 0);
    ni->n_sigmas = n;
    if (n == 0) return 0;
    ni->sigmas = malloc(sizeof(double) * (size_t)n);
    float *tmp = malloc(sizeof(float) * (size_t)n);
    if (!ni->sigmas || !tmp) {
        free(tmp);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    if (t && t->dtype == ST_F64) {
        memcpy(ni->sigmas, t->data, sizeof(double) * (size_t)n);
    } else if (t) {
        rc = st_to_f32(t, tmp, err);
        for (int i = 0; !rc && i < n; i++) ni->sigmas[i] = tmp[i];
    } else {
        const double lo = log(m->sde.sigma_min), hi = log(m->sde.sigma_max);
        for (int i = 0; i < n; i++) ni->sigmas[i] = exp(hi + (lo - hi) * i / (n > 1 ? n - 1 : 1));
    }
    free(tmp);
    return rc;
}

/* Opens a model file and returns its "scored" metadata (kind checked). */
static int open_model_file(const char *path, const char *want_kind, st_file **f, json_t **root, sc_error *err)
{
    *f = NULL;
    *root = NULL;
    int rc = st_open(path, f, err);
    if (rc) return rc;
    const char *meta = st_metadata(*f, "scored");
    if (!meta) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s has no \"scored\" metadata: convert it with tools/convert_checkpoint.py", path);
        goto fail;
    }
    json_error_t jerr;
    *root = json_loads(meta, 0, &jerr);
    if (!*root || !json_is_object(*root)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: the \"scored\" metadata is not a JSON object", path);
        goto fail;
    }
    const char *kind = json_string_value(json_object_get(*root, "kind"));
    if (!kind || strcmp(kind, want_kind) != 0) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: metadata kind is %s%s%s, expected \"%s\"%s", path, kind ? "\"" : "",
                     kind ? kind : "missing", kind ? "\"" : "", want_kind,
                     kind && strcmp(kind, "classifier") == 0 ? " (a classifier guides a score model; name it in that model's "
                                                               "metadata \"classifier\" field)" : "");
        goto fail;
    }
    return 0;
fail:
    json_decref(*root);
    *root = NULL;
    st_close(*f);
    *f = NULL;
    return rc;
}

/* The architecture of root, completed from shape/centered/sde, then built with f's weights. */
static int build_from_file(const char *path, const json_t *root, st_file *f, int C, int H, int centered, int N,
                           net *n, net_config *cfg, sc_error *err)
{
    json_t *arch = json_deep_copy(json_object_get(root, "architecture"));
    if (!arch) return sc_fail(err, SC_ERR_FORMAT, "%s: metadata has no \"architecture\" object", path);
    if (!json_object_get(arch, "image_size")) json_object_set_new(arch, "image_size", json_integer(H));
    if (!json_object_get(arch, "num_channels")) json_object_set_new(arch, "num_channels", json_integer(C));
    if (!json_object_get(arch, "centered")) json_object_set_new(arch, "centered", json_boolean(centered));
    if (!json_object_get(arch, "num_scales")) json_object_set_new(arch, "num_scales", json_integer(N));
    int rc = net_config_from_json(cfg, arch, err);
    json_decref(arch);
    if (rc) return rc;
    if (cfg->image_size != H || cfg->channels != C)
        return sc_fail(err, SC_ERR_FORMAT, "%s: architecture image_size/num_channels do not match shape", path);
    fetch_ctx ctx = {.f = f, .path = path};
    net_weights_src src = {.fetch = fetch, .ctx = &ctx};
    return net_build(n, cfg, &src, err);
}

/* A path next to base: dir(base)/name. */
static void sibling(const char *base, const char *name, char *out, size_t len)
{
    const char *slash = strrchr(base, '/');
    if (name[0] == '/' || !slash) snprintf(out, len, "%s", name);
    else snprintf(out, len, "%.*s/%s", (int)(slash - base), base, name);
}

int net_model_load(const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    st_file *f = NULL;
    json_t *root = NULL;
    sc_model *m = NULL;
    net_impl *ni = NULL;
    int rc = open_model_file(path, "network", &f, &root, err);
    if (rc) return rc;
    if ((rc = model_json_common(root, path, &m, err))) goto fail;
    if (m->ndim != 3 || m->shape[1] != m->shape[2]) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: a network model needs a square image shape [C, H, W]", path);
        goto fail;
    }
    ni = calloc(1, sizeof *ni);
    if (!ni) {
        rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    net_init(&ni->net);
    if ((rc = build_from_file(path, root, f, m->shape[0], m->shape[1], m->centered, m->sde.N, &ni->net, &ni->cfg, err)))
        goto fail;
    const json_t *cont = json_object_get(root, "continuous");
    ni->continuous = cont ? json_is_true(cont) : 1;
    if ((rc = load_sigmas(ni, f, m, err))) goto fail;
    if (m->sde.type == SDE_VP && !ni->continuous) {
        ni->sqrt_1m_acp = malloc(sizeof(double) * (size_t)m->sde.N);
        if (!ni->sqrt_1m_acp) {
            rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        double cum = 1;
        for (int k = 0; k < m->sde.N; k++) {
            cum *= 1.0 - sde_vp_discrete_beta(&m->sde, k);
            ni->sqrt_1m_acp[k] = sqrt(1.0 - cum);
        }
    }
    const char *clf = json_string_value(json_object_get(root, "classifier"));
    if (clf) {
        char cpath[2048];
        sibling(path, clf, cpath, sizeof cpath);
        if ((rc = net_classifier_load(cpath, &ni->clf, err))) goto fail;
        if (ni->clf->D != m->D) {
            rc = sc_fail(err, SC_ERR_FORMAT, "%s: classifier %s takes %d values, the model %d", path, cpath, ni->clf->D, m->D);
            goto fail;
        }
        m->guidable = 1;
        m->n_classes = ni->clf->num_classes;
        if (m->n_labels == 0 && ni->clf->n_labels > 0) { /* the classifier names the classes */
            free(m->labels);
            m->labels = ni->clf->labels;
            m->n_labels = ni->clf->n_labels;
            ni->clf->labels = NULL;
            ni->clf->n_labels = 0;
        }
    }
    m->ops = &net_ops;
    m->impl = ni;
    json_decref(root);
    st_close(f);
    *out = m;
    return 0;
fail:
    if (ni) net_impl_destroy(ni);
    if (m) sc_model_free(m);
    json_decref(root);
    st_close(f);
    return rc;
}

/* ---- classifiers ----------------------------------------------------------------------------- */

int net_classifier_load(const char *path, net_classifier **out, sc_error *err)
{
    *out = NULL;
    st_file *f = NULL;
    json_t *root = NULL;
    int rc = open_model_file(path, "classifier", &f, &root, err);
    if (rc) return rc;
    net_classifier *c = calloc(1, sizeof *c);
    const json_t *shape = json_object_get(root, "shape");
    int C = (int)json_integer_value(json_array_get(shape, 0)), H = (int)json_integer_value(json_array_get(shape, 1));
    const json_t *cen = json_object_get(root, "centered");
    net_config cfg;
    if (!c) rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
    else if (json_array_size(shape) != 3 || C < 1 || H < 1)
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: metadata shape must be [C, H, W]", path);
    else {
        net_init(&c->net);
        rc = build_from_file(path, root, f, C, H, cen ? json_is_true(cen) : 1, 1000, &c->net, &cfg, err);
    }
    if (!rc && strcmp(cfg.name, "classifier") != 0)
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: a classifier file needs architecture name \"classifier\"", path);
    if (!rc) rc = model_json_labels(json_object_get(root, "labels"), path, &c->labels, &c->n_labels, err);
    if (!rc && c->n_labels && c->n_labels != cfg.num_classes) /* none, or one name per class */
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: %d labels for %d classes", path, c->n_labels, cfg.num_classes);
    json_decref(root);
    st_close(f);
    if (rc) {
        net_classifier_free(c);
        return rc;
    }
    c->num_classes = cfg.num_classes;
    c->D = C * H * H;
    *out = c;
    return 0;
}

void net_classifier_free(net_classifier *c)
{
    if (!c) return;
    net_free(&c->net);
    for (int i = 0; i < c->n_labels; i++) free(c->labels[i]);
    free(c->labels);
    free(c);
}

size_t net_classifier_scratch_bytes(const net_classifier *c, int max_batch)
{
    return net_workspace_bytes(&c->net, max_batch);
}

void net_classifier_log_prob_grad(const net_classifier *c, const float *x, const double *sigma, const int *y, int N,
                                  float *logp, float *grad, void *scratch)
{
    const net *nt = &c->net;
    net_workspace ws;
    net_workspace_bind(&ws, nt, N, scratch);
    memcpy(net_data(nt, &ws, nt->input, N), x, sizeof(float) * (size_t)N * c->D);
    float *tin = net_data(nt, &ws, nt->time_input, N);
    for (int i = 0; i < N; i++) tin[i] = (float)log(sigma[i]);
    net_forward(nt, &ws, N);
    const float *logits = net_data(nt, &ws, nt->output, N);
    float *dl = net_grad(nt, &ws, nt->output, N);
    const int K = c->num_classes;
    for (int i = 0; i < N; i++) { /* d log softmax[y] / d logits = onehot(y) - softmax */
        const float *l = logits + (size_t)i * K;
        double mx = l[0], z = 0;
        for (int k = 1; k < K; k++) mx = fmax(mx, l[k]);
        for (int k = 0; k < K; k++) z += exp(l[k] - mx);
        logp[i] = (float)(l[y[i]] - mx - log(z));
        for (int k = 0; k < K; k++) dl[(size_t)i * K + k] = (float)((k == y[i]) - exp(l[k] - mx) / z);
    }
    net_backward(nt, &ws, N, NULL);
    memcpy(grad, net_grad(nt, &ws, nt->input, N), sizeof(float) * (size_t)N * c->D);
}

const net *net_model_net(const sc_model *m) { return &impl_of(m)->net; }
