/* A finished job's answer: PNG images or grids, JSON with base64 PNGs, float tensors,
 * likelihood and anomaly results, .npy latents.  Runs on the loop thread once per job.
 * Builds both the synchronous response body and the JSON kept for GET /v1/jobs/{id}. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "image.h"
#include "npy.h"
#include "srv.h"
#include "tensor_json.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

static double mean_nfe(const job *j)
{
    double s = 0;
    for (int i = 0; i < j->n; i++) s += (double)j->lik[i].nfe;
    return j->n ? s / j->n : 0;
}

/* outputs (n, C, H, W) in data units -> 8-bit PNG of item i, or of the grid. */
static int encode_png(const job *j, int item, int grid, uint8_t **png, size_t *len, sc_error *err)
{
    const sc_model *m = j->sm->model;
    const int C = m->shape[0], H = m->shape[1], W = m->shape[2], D = m->D;
    const int count = item < 0 ? j->n : 1;
    float *unit = malloc(sizeof(float) * (size_t)count * D);
    if (!unit) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    const float *src = j->outputs + (item < 0 ? 0 : (size_t)item * D);
    for (size_t k = 0; k < (size_t)count * D; k++) unit[k] = sc_model_to_unit(m, src[k]);
    uint8_t *pix = NULL;
    int gw = W, gh = H, rc;
    if (grid && count > 1) {
        rc = image_grid(unit, count, C, H, W, 0, 2, &pix, &gw, &gh, err);
    } else {
        pix = malloc((size_t)D);
        rc = pix ? 0 : sc_fail(err, SC_ERR_NOMEM, "out of memory");
        if (!rc) image_float_to_u8(pix, unit, W, H, C);
    }
    if (!rc) rc = image_write_png_mem(pix, gw, gh, C, png, len, err);
    free(pix);
    free(unit);
    return rc;
}

static json_t *images_json(const job *j, sc_error *err)
{
    json_t *arr = json_array();
    for (int i = 0; i < j->n; i++) {
        uint8_t *png = NULL;
        size_t len = 0;
        if (encode_png(j, i, 0, &png, &len, err)) {
            json_decref(arr);
            return NULL;
        }
        char *b64 = b64_encode(png, len);
        free(png);
        if (!b64) {
            json_decref(arr);
            sc_fail(err, SC_ERR_NOMEM, "out of memory");
            return NULL;
        }
        json_array_append_new(arr, json_pack("{s:i, s:I, s:s}", "index", i, "seed",
                                             (json_int_t)j->seed,
                                             "png_base64", b64));
        free(b64);
    }
    return arr;
}

static json_t *outputs_tensor(const job *j)
{
    const sc_model *m = j->sm->model;
    int64_t shape[4] = {j->n};
    for (int i = 0; i < m->ndim; i++) shape[i + 1] = m->shape[i];
    return tensor_to_json(j->outputs, m->ndim + 1, shape);
}

static int set_body(job *j, unsigned char *body, size_t len, const char *type)
{
    free(j->body);
    j->body = body;
    j->body_len = len;
    j->content_type = type;
    return 0;
}

static int set_json_body(job *j, json_t *o, sc_error *err)
{
    char *text = json_dumps(o, DUMP_FLAGS);
    if (!text) return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    j->result_json = strdup(text);
    if (!j->result_json) {
        free(text);
        return sc_fail(err, SC_ERR_NOMEM, "out of memory");
    }
    return set_body(j, (unsigned char *)text, strlen(text), "application/json");
}

/* outputs (n, *shape) as the .npy body */
static int set_npy_body(job *j, sc_error *err)
{
    const sc_model *m = j->sm->model;
    int64_t shape[4] = {j->n};
    for (int i = 0; i < m->ndim; i++) shape[i + 1] = m->shape[i];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = npy_write_f32_mem(j->outputs, m->ndim + 1, shape, &buf, &len, err);
    return rc ? rc : set_body(j, buf, len, "application/x-npy");
}

/* samples, inpaint, colorize, decode */
static int build_generated(job *j, sc_error *err)
{
    const sc_model *m = j->sm->model;
    json_t *o;
    if (sc_model_is_image(m)) {
        json_t *imgs = images_json(j, err);
        if (!imgs) return err->code;
        o = json_pack("{s:s, s:o, s:f, s:f}", "id", j->id, "images", imgs, "nfe", mean_nfe(j),
                      "seconds", j->seconds);
    } else {
        o = json_pack("{s:s, s:o, s:I, s:f, s:f}", "id", j->id, "samples", outputs_tensor(j),
                      "seed", (json_int_t)j->seed, "nfe", mean_nfe(j),
                      "seconds", j->seconds);
    }
    int rc = set_json_body(j, o, err);
    json_decref(o);
    if (rc) return rc;
    if (j->want_npy) return set_npy_body(j, err);
    if (j->want_png && sc_model_is_image(m)) {
        uint8_t *png = NULL;
        size_t len = 0;
        if ((rc = encode_png(j, j->n == 1 ? 0 : -1, j->grid, &png, &len, err))) return rc;
        if (!j->grid && j->n > 1) { /* several images without a grid: JSON only */
            free(png);
            return 0;
        }
        return set_body(j, png, len, "image/png");
    }
    return 0;
}

static int build_likelihood(job *j, sc_error *err)
{
    json_t *arr = json_array();
    for (int i = 0; i < j->n; i++) {
        const likelihood_result *r = &j->lik[i];
        json_t *o = json_pack("{s:i, s:f, s:I}", "index", i, "log_likelihood_nats", r->log_likelihood,
                              "nfe", (json_int_t)r->nfe);
        if (j->have_pngs && isfinite(r->bits_per_dim))
            json_object_set_new(o, "bits_per_dim", json_real(r->bits_per_dim));
        if (j->lcfg.probes > 1 && !j->lcfg.exact_divergence)
            json_object_set_new(o, "log_likelihood_se", json_real(r->log_likelihood_se));
        if (j->kind == JOB_ANOMALY) {
            double bpd = j->have_pngs ? r->bits_per_dim : -r->log_likelihood / (log(2.0) * j->D);
            double score = j->ascore == SCORE_COMPLEXITY ? bpd - j->complexity[i] : bpd;
            json_object_set_new(o, "score", json_real(score));
            json_object_set_new(o, "threshold", json_real(j->threshold));
            json_object_set_new(o, "is_anomaly", json_boolean(score > j->threshold));
        }
        json_array_append_new(arr, o);
    }
    json_t *o = json_pack("{s:s, s:o, s:f}", "id", j->id, "results", arr, "seconds", j->seconds);
    if (j->kind == JOB_ANOMALY) {
        json_object_set_new(o, "score_kind", json_string(j->ascore == SCORE_COMPLEXITY ? "complexity" : "bpd"));
        json_object_set_new(o, "threshold_source", json_string(j->threshold_source));
    }
    int rc = set_json_body(j, o, err);
    json_decref(o);
    return rc;
}

static int build_encoded(job *j, sc_error *err)
{
    json_t *o = json_pack("{s:s, s:o, s:f, s:f}", "id", j->id, "latents", outputs_tensor(j), "nfe",
                          mean_nfe(j), "seconds", j->seconds);
    int rc = set_json_body(j, o, err);
    json_decref(o);
    if (rc || !j->want_npy) return rc;
    return set_npy_body(j, err);
}

int results_build(srv *s, job *j, sc_error *err)
{
    (void)s;
    switch (j->kind) {
    case JOB_LIKELIHOOD:
    case JOB_ANOMALY: return build_likelihood(j, err);
    case JOB_ENCODE: return build_encoded(j, err);
    default: return build_generated(j, err);
    }
}
