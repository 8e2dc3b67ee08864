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
    free(ni->sigmas);
    free(ni->sqrt_1m_acp);
    free(ni);
}

/* Per-call scratch: the network workspace for max_batch, then (max_batch) per-sample
 * coefficients. */
static size_t net_scratch_bytes(const sc_model *m, int max_batch)
{
    const net_impl *ni = impl_of(m);
    return net_workspace_bytes(&ni->net, max_batch) + sizeof(double) * (size_t)max_batch + 64;
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
    for (int i = 0; i < n; i++) {
        if (q[i].label >= 0 && q[i].guidance != 0.0f)
            return sc_fail(err, SC_ERR_UNSUPPORTED, "model %s has no classifier for guidance", m->name);
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

int net_model_load(const char *path, sc_model **out, sc_error *err)
{
    *out = NULL;
    st_file *f = NULL;
    int rc = st_open(path, &f, err);
    if (rc) return rc;
    sc_model *m = NULL;
    net_impl *ni = NULL;
    json_t *root = NULL;
    const char *meta = st_metadata(f, "scored");
    if (!meta) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s has no \"scored\" metadata: convert it with tools/convert_checkpoint.py", path);
        goto fail;
    }
    json_error_t jerr;
    root = json_loads(meta, 0, &jerr);
    if (!root || !json_is_object(root)) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: the \"scored\" metadata is not a JSON object", path);
        goto fail;
    }
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (!kind || strcmp(kind, "network") != 0) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: metadata kind must be \"network\"", path);
        goto fail;
    }
    if ((rc = model_json_common(root, path, &m, err))) goto fail;
    if (m->ndim != 3) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: a network model needs an image shape [C, H, W]", path);
        goto fail;
    }
    ni = calloc(1, sizeof *ni);
    if (!ni) {
        rc = sc_fail(err, SC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    net_init(&ni->net);
    json_t *arch = json_deep_copy(json_object_get(root, "architecture"));
    if (!arch) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: metadata has no \"architecture\" object", path);
        goto fail;
    }
    /* fields the architecture may leave to the top level */
    if (!json_object_get(arch, "image_size")) json_object_set_new(arch, "image_size", json_integer(m->shape[1]));
    if (!json_object_get(arch, "num_channels")) json_object_set_new(arch, "num_channels", json_integer(m->shape[0]));
    if (!json_object_get(arch, "centered")) json_object_set_new(arch, "centered", json_boolean(m->centered));
    if (!json_object_get(arch, "num_scales")) json_object_set_new(arch, "num_scales", json_integer(m->sde.N));
    rc = net_config_from_json(&ni->cfg, arch, err);
    json_decref(arch);
    if (rc) goto fail;
    if (ni->cfg.image_size != m->shape[1] || m->shape[1] != m->shape[2] || ni->cfg.channels != m->shape[0]) {
        rc = sc_fail(err, SC_ERR_FORMAT, "%s: architecture image_size/num_channels do not match shape", path);
        goto fail;
    }
    const json_t *cont = json_object_get(root, "continuous");
    ni->continuous = cont ? json_is_true(cont) : 1;
    fetch_ctx ctx = {.f = f, .path = path};
    net_weights_src src = {.fetch = fetch, .ctx = &ctx};
    if ((rc = net_build(&ni->net, &ni->cfg, &src, err))) goto fail;
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

const net *net_model_net(const sc_model *m) { return &impl_of(m)->net; }
